"""Command line.

    python -m ldrkit list
    python -m ldrkit run NAME --profile {smoke,cpu,paper} [--seed S] [--out DIR] [--fresh] [--fast] [--kappa]
                                  (--kappa: runs NAME-kappa, kappa at every evaluation, for any image experiment)
    python -m ldrkit ldr RUN_DIR [--method exact|estimate] [--probes K] [--n N]
    python -m ldrkit coupling RUN_DIR [--n N] [--method exact|estimate] [--probes K]  (0 = product oracle, 1 = rule)
    python -m ldrkit resample RUN_DIR [--sampler ddpm|ddim] [--steps K] [--n N] [--seed S]  (last checkpoint, other sampler)
    python -m ldrkit detect NAME [--profile cpu] [--seed S] [--n N] [--json]  (hallucination detectors: AUROC table)
    python -m ldrkit sweep NAME... [--profile cpu] [--seeds 0 1 2] [--workers N] [--store] [--fast] [--out FILE]
                                  [--launcher submitit [--cluster slurm|local] [--partition P] [--gpus G]]
    python -m ldrkit bench ldr [--json] [--out DIR]
    python -m ldrkit bench samples [NAME...] [--n 32] [--target 0.01] [--out DIR]  (LDR inputs for a target s.e.; estimator at equal error)
    python -m ldrkit bench train [NAME...] [--profile paper] [--steps 300] [--device cuda] [--out DIR]
    python -m ldrkit bench step [NAME...] [--profile cpu] [--steps 40] [--threads N] [--variants V...] [--out DIR]
    python -m ldrkit bench roofline [NAME...] [--profile cpu] [--steps 15] [--out DIR]  (peaks; each model against them)
    python -m ldrkit theory {k-table,waiting,tilt} [--profile cpu] [--json]  (waiting, tilt: from the stored runs)
    python -m ldrkit chapter run book/NAME.md --out DIR [-p KEY VALUE ...]
    python -m ldrkit chapter batch book/NAME.md --out DIR --seeds 0 1 2 [-p KEY VALUE ...]
    python -m ldrkit store NAME... [--profile cpu] [--seed S] [--keep-steps S...] [--drop-kept]  (keep runs in results/)
    python -m ldrkit reproduce [NAME...] [--profile cpu] [--out reproduce]  (retrain stored runs, compare)
    python -m ldrkit probe PATH [--region T L B R]... [--mask PNG]... [--method exact|estimate] [--json]  (any diffusers model)
    python -m ldrkit export RUN_DIR OUT [--step S]  (a run's model and scheduler as a diffusers pipeline folder)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager

from .runs import request
from .runs.files import RunFolderError
from .runs.run import ConfigMismatchError
from .spec.hashing import PROFILES, check_profile
from .spec.registry import EXPERIMENTS, KAPPA_SUFFIX, get_experiment

# --- the commands: (name, help, add_arguments, handler), in the order --help lists them ---------------------

def add_list(p) -> None:
    pass


def cmd_list(args) -> None:
    print("\n".join(sorted(EXPERIMENTS)))


def add_run(p) -> None:
    p.add_argument("name")
    p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default runs/NAME/PROFILE-seedS)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--fresh", action="store_true",
                   help="train from scratch even when the folder or results/ holds a run of this spec")
    p.add_argument("--fast", action="store_true", help="train with fused Adam and torch.compile (not bit for bit "
                   "the default run; same spec; recorded in launches.jsonl): $LDRKIT_FAST=1")
    p.add_argument("--kappa", action="store_true", help="record the coupling score kappa at every evaluation: runs "
                   "NAME-kappa (any image experiment; its own spec, run folder and stored runs)")


def cmd_run(args) -> None:
    if args.kappa and not args.name.endswith(KAPPA_SUFFIX):
        args.name += KAPPA_SUFFIX
    get_experiment(args.name)
    metrics = request.run_experiment(args.name, args.profile, args.seed, args.out, progress=not args.quiet,
                                     fresh=args.fresh)
    print(json.dumps({"experiment": args.name, "profile": args.profile, "seed": args.seed,
                      "wall_seconds": metrics["wall_seconds"], "run_dir": metrics.get("run_dir"),
                      "final": metrics.get("final", {})}, indent=1))


def add_store(p) -> None:
    p.add_argument("names", nargs="+")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-steps", type=int, nargs="*", default=[],
                   help="checkpoints to keep besides the last (those a chapter loads)")
    p.add_argument("--samples-per-step", type=int, default=64, help="generated samples kept per evaluation")
    p.add_argument("--drop-kept", action="store_true",
                   help="do not keep the checkpoints the stored run already kept (default: keep them)")


def cmd_store(args) -> None:
    from .runs.store import store_run
    for name in args.names:
        get_experiment(name)
        print(store_run(request.run_dir_for(name, args.profile, args.seed), samples_per_step=args.samples_per_step,
                        keep_steps=tuple(args.keep_steps), drop_kept=args.drop_kept))


def add_reproduce(p) -> None:
    p.add_argument("names", nargs="*", help="default: every stored run of the profile")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reproduce", help="folder of the fresh runs and reproduce.md")
    p.add_argument("--headline", action="store_true",
                   help="only the runs behind the chapters' headline numbers (specs.REPRODUCE_HEADLINE)")
    p.add_argument("--workers", type=int, default=1,
                   help="one-thread worker processes training at once (default 1: one after another)")


def cmd_reproduce(args) -> None:
    """The names (given, the headline set, or every stored run), their projected wall time from the stored runs
    (printed first), then the retraining on `--workers` processes."""
    from .runs import reproduce
    from .runs.sweep import check_workers
    from .spec.selections import REPRODUCE_HEADLINE
    check_workers(args.workers)
    if args.headline and args.names:
        raise ValueError("give either experiment names or --headline, not both")
    names = list(REPRODUCE_HEADLINE) if args.headline else args.names or None
    todo = names or reproduce.stored_names(args.profile, args.seed)
    _, seconds = reproduce.plan(reproduce.stored_wall_seconds(todo, args.profile, args.seed), args.workers)
    print(f"reproducing {len(todo)} runs on {args.workers} worker(s): about {seconds / 3600:.1f} h projected from "
          "their stored wall times (one thread each, recorded beside another run)", file=sys.stderr, flush=True)
    fresh = None
    if args.workers > 1:
        from .runs.sweep import pooled_fresh
        fresh = pooled_fresh(args.profile, args.seed, args.workers)
    print(reproduce.reproduce(names, args.profile, args.seed, args.out, fresh=fresh))


def add_sweep(p) -> None:
    p.add_argument("names", nargs="+")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=1, help="worker processes, one torch thread each (default 1)")
    p.add_argument("--store", action="store_true", help="copy each finished run into the results store")
    p.add_argument("--out", default=None, help="also write the summary to this file (.md, or .json)")
    p.add_argument("--launcher", choices=("pool", "submitit"), default="pool",
                   help="pool: local worker processes (default); submitit: one Slurm job per run (a job array)")
    p.add_argument("--cluster", choices=("slurm", "local", "debug"), default=None,
                   help="submitit's cluster (default: Slurm where sbatch exists, else local processes)")
    p.add_argument("--partition", default=None, help="Slurm partition (submitit)")
    p.add_argument("--timeout-min", type=int, default=60, help="per-job time limit in minutes (submitit)")
    p.add_argument("--array-parallelism", type=int, default=None, help="jobs running at once (submitit)")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per job (submitit)")
    p.add_argument("--fast", action="store_true", help="train with fused Adam and torch.compile (as run --fast)")
    p.add_argument("--submitit-folder", default="submitit", help="job scripts and logs (submitit)")


def cmd_sweep(args) -> None:
    from .runs.files import atomic_write, writable_file
    from .runs.sweep import format_summary, run_grid, summarise
    for seed in args.seeds:
        request.check_seed(seed)
    if args.out:
        writable_file(args.out)  # before the grid trains, not after
    cluster = {"folder": args.submitit_folder, "cluster": args.cluster, "partition": args.partition,
               "timeout_min": args.timeout_min, "array_parallelism": args.array_parallelism, "gpus_per_node": args.gpus}
    rows = summarise(run_grid(args.names, args.profile, args.seeds, args.workers, args.store,
                              launcher=args.launcher, cluster=cluster))
    text = format_summary(rows)
    print(text)
    if args.out:
        atomic_write(args.out, json.dumps(rows, indent=1) if args.out.endswith(".json") else text)


def add_ldr(p) -> None:
    p.add_argument("run_dir")
    p.add_argument("--method", choices=("exact", "estimate"), default="exact")
    p.add_argument("--probes", type=int, default=32, help="random probes per sample (estimate)")
    p.add_argument("--n", type=int, default=None, help="noised inputs per level (default: the run's ldr_samples)")


def cmd_ldr(args) -> None:
    from .analysis.overtraining import format_ldr_table, ldr_over_training
    from .runs.run import Run
    _positive(args.n, "--n")
    _positive(args.probes, "--probes", 2)
    run = Run(args.run_dir)
    run.last_step()  # a folder with no checkpoint is an error, not an empty table
    print(format_ldr_table(ldr_over_training(run, method=args.method, probes=args.probes, n=args.n)))


def add_coupling(p) -> None:
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=16, help="noised inputs per level (default 16)")
    p.add_argument("--method", choices=("exact", "estimate"), default="exact")
    p.add_argument("--probes", type=int, default=32, help="shared random probes per input (estimate)")


def cmd_coupling(args) -> None:
    from .analysis.kappa_calibration import format_calibration_table, oracle_calibration
    from .runs.run import Run
    _positive(args.n, "--n", 2)
    _positive(args.probes, "--probes", 2)
    run = Run(args.run_dir)
    run.refuse_stored()
    run.last_step()
    print(format_calibration_table(oracle_calibration(run, n=args.n, method=args.method, probes=args.probes)))


def add_resample(p) -> None:
    p.add_argument("run_dir")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: all T for ddpm, 50 for ddim)")
    p.add_argument("--n", type=int, default=None, help="samples (default: the run's evaluation count)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def cmd_resample(args) -> None:
    from .analysis.samplers import format_rows, sampler_rows
    from .runs.run import Run
    _positive(args.n, "--n")
    _positive(args.steps, "--steps")
    run = Run(args.run_dir)
    run.refuse_stored()
    if not run.is_finished():
        raise FileNotFoundError(f"{run.path} holds no finished run (no completion record, finished.json); "
                                "`python -m ldrkit run NAME --out RUN_DIR` finishes or checks it")
    run.last_step()
    label = f"{run.metrics['experiment']} ({run.metrics['profile']}, seed {run.metrics['seed']})"
    print(format_rows(sampler_rows({label: [run]}, n=args.n, seed=args.seed, sampler=args.sampler,
                                   num_steps=args.steps)))


def add_detect(p) -> None:
    p.add_argument("name")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=None, help="samples to score (default: enough for 50 of each class)")
    p.add_argument("--json", action="store_true")


def cmd_detect(args) -> None:
    from .analysis import detectors
    from .spec.selections import analysis_sizes
    if get_experiment(args.name).kind in ("stairs", "oracle"):
        raise ValueError(f"{args.name} is not a trained sampling experiment; detect needs one")
    _positive(args.n, "--n", 2)
    run = request.get_run(args.name, args.profile, args.seed, progress=False)
    run.last_step()
    n = args.n or detectors.sample_count(run, analysis_sizes(args.profile)["detector_samples"])
    rows = detectors.detection_rows(detectors.cached_scores(run, n, args.seed), args.name)
    print(json.dumps([{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows],
                     indent=1) if args.json else detectors.format_table(rows))

def add_bench(p) -> None:
    p.add_argument("what", choices=("ldr", "train", "step", "samples", "roofline"),
                   help="step: the training step against a bare PyTorch step and its speed-ups, and one "
                        "evaluation part by part; samples: how many noised inputs each LDR level needs for a "
                        "target standard error (stored runs, last checkpoint); roofline: the machine's GEMM and "
                        "convolution peaks and each model's training and sampling step against them")
    p.add_argument("names", nargs="*", help="train, step: experiments to time (default: the image experiments)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--profile", default=None, help="train, step: whose model sizes (default paper; step: cpu)")
    p.add_argument("--steps", type=int, default=None, help="train, step: timed steps (default 300; step: 40)")
    p.add_argument("--threads", type=int, default=None, help="step: torch threads (default: torch's)")
    p.add_argument("--no-eval", action="store_true", help="step: time the training step only")
    p.add_argument("--n", type=int, default=32, help="samples: noised inputs the spread is measured on (default 32)")
    p.add_argument("--target", type=float, default=None, help="samples: target standard error (default 0.01)")
    p.add_argument("--variants", nargs="+", default=None,
                   help="step: bare-step variants to time (default all: ldrkit-fast bare fused-adam channels-last compile fused+compile bf16)")
    p.add_argument("--warmup", type=int, default=10, help="train: untimed steps first (default 10)")
    p.add_argument("--eval-batch", type=int, default=64, help="train: samples in the timed sample batch")
    p.add_argument("--device", default=None, help="train: cpu or cuda (default $LDRKIT_DEVICE, else cuda if any)")
    p.add_argument("--substitute-mnist", action="store_true",
                   help="train: without MNIST's IDX files, time quarter-digits on scikit-learn digits of the same size")
    p.add_argument("--out", default=None, help="train, step, ldr: folder for the report (bench_WHAT.json and bench_WHAT.md)")


def cmd_bench(args) -> None:
    """One benchmark (`args.what`); the names and profile are checked before anything is timed."""
    if args.what == "ldr":
        from .bench.ldr import run_benchmark
        return run_benchmark(json_output=args.json, out=args.out)
    args.profile = args.profile or ("paper" if args.what == "train" else "cpu")
    check_profile(args.profile)
    for name in args.names:
        get_experiment(name)
    if args.what == "roofline":
        from .bench.roofline import run_roofline
        steps = 15 if args.steps is None else args.steps
        _positive(steps, "--steps")
        run_roofline(args.names, args.profile, steps, out=args.out, json_output=args.json)
    elif args.what == "samples":
        from .bench.samples import TARGET_SE, run_sample_benchmark
        _positive(args.n, "--n", 2)
        target = TARGET_SE if args.target is None else args.target
        if not target > 0:
            raise ValueError(f"--target must be a positive standard error, got {target}")
        run_sample_benchmark(args.names, args.profile, args.n, target, out=args.out, json_output=args.json)
    elif args.what == "step":
        _bench_step(args)
    else:
        from .bench.train import run_training_benchmark
        args.steps = 300 if args.steps is None else args.steps
        _positive(args.steps, "--steps")
        try:
            run_training_benchmark(args.names, args.profile, args.steps, args.warmup, args.eval_batch, args.device,
                                   args.substitute_mnist, args.out, args.json)
        except RuntimeError as err:  # e.g. no GPU where --device cuda asks for one
            raise ValueError(str(err)) from None


def _bench_step(args) -> None:
    from .bench.step import VARIANTS, run_step_benchmark
    steps = 40 if args.steps is None else args.steps
    _positive(steps, "--steps")
    if args.threads is not None:
        _positive(args.threads, "--threads")
        import torch
        torch.set_num_threads(args.threads)
    unknown = [v for v in args.variants or () if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    run_step_benchmark(args.names, args.profile, steps, variants=tuple(args.variants or VARIANTS),
                       evaluation=not args.no_eval, out=args.out, json_output=args.json)


def add_theory(p) -> None:
    p.add_argument("what", choices=("k-table", "waiting", "tilt"),
                   help="k-table: K(w,b) of Theorem 5.3; waiting: steps on the univariate plateau against d "
                        "(stairs-wait-d*, seeds 0 1 2) and the fits; tilt: the stairs network on parity with a "
                        "pairwise dependence (stairs-tilt-*)")
    p.add_argument("--profile", default="cpu", help="waiting, tilt: whose runs (default cpu)")
    p.add_argument("--json", action="store_true")


def cmd_theory(args) -> None:
    if args.what == "k-table":
        from .theory.hypercube import format_k_table, k_table
        rows = k_table()
        print(json.dumps(rows, indent=1) if args.json else format_k_table(rows))
        return
    from .analysis import three_stairs as S
    if args.what == "waiting":
        rows = S.waiting_rows(S.waiting_runs(args.profile))
        fit, lr = S.waiting_fit(rows), S.waiting_lr(args.profile)
        out = {"runs": rows, "fit": fit, "lr": lr, "fit_rows": S.waiting_fit_rows(fit, lr)}
    else:
        out = {"runs": S.tilt_rows(S.tilt_runs(args.profile))}
    print(json.dumps(out, indent=1, default=float) if args.json else S.format_rows(out))


def add_chapter(p) -> None:
    p.add_argument("action", choices=("run", "batch"))
    p.add_argument("path", help="a chapter, e.g. book/parity-mlp.md")
    p.add_argument("--out", required=True, help="folder for the executed notebook(s), runs and summary")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="parameter injected into the chapter's parameters cell (repeatable)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of a batch (default 0 1)")


def cmd_chapter(args) -> None:
    from .chapters import format_summary, parse_parameters, run_batch, run_chapter
    params = parse_parameters(args.parameter)
    if args.action == "run":
        print(run_chapter(args.path, args.out, params))
    else:
        print(format_summary(run_batch(args.path, args.out, params, {"seed": args.seeds})))


def add_probe(p) -> None:
    p.add_argument("path", help="a diffusers model or pipeline folder (save_pretrained), e.g. one `export` wrote")
    p.add_argument("--region", type=int, nargs=4, action="append", default=[],
                   metavar=("TOP", "LEFT", "BOTTOM", "RIGHT"),
                   help="a rectangle of the model's input grid: rows TOP:BOTTOM, columns LEFT:RIGHT (repeatable)")
    p.add_argument("--mask", action="append", default=[],
                   help="a mask image (white inside) of the input grid's size or a multiple of it (repeatable)")
    p.add_argument("--data", default=None, help="clean signals (N, C, H, W) in the model's input space (latents for "
                   "a latent model): .npy, .pt or .safetensors (default: an export's training signals)")
    p.add_argument("--conditioning", default=None, help="the network's keyword tensors, batch 1 "
                   "(encoder_hidden_states, pooled_projections, class_labels): .pt or .safetensors")
    p.add_argument("--scheduler", default=None, help="a scheduler folder, for a model folder without one beside it")
    p.add_argument("--levels", type=float, nargs="+", default=None, help="sqrt(alpha_bar) levels (default the five)")
    p.add_argument("--outputs", nargs="+", default=["eps", "x0"], help="of eps, x0, eps_minus_identity, net "
                   "(the network's own output: eps, v or x0)")
    p.add_argument("--method", choices=("exact", "estimate"), default="exact")
    p.add_argument("--probes", type=int, default=32, help="random probes per input (estimate)")
    p.add_argument("--n", type=int, default=None, help="noised inputs per level (default: the export's, else 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    p.add_argument("--json", action="store_true", help="one JSON row per region, level and output")
    p.add_argument("--save", default=None, help="write the inputs, eps, x0 and saliency maps to this .npz file")


def cmd_probe(args) -> None:
    import torch
    from .probes import any_model
    _positive(args.n, "--n")
    _positive(args.probes, "--probes", 2)
    result = any_model.probe(
        args.path, [tuple(r) for r in args.region] + args.mask or None, args.levels,
        data=any_model.load_data(args.data) if args.data else None, scheduler=args.scheduler,
        conditioning=any_model.load_tensors(args.conditioning) if args.conditioning else None,
        outputs=tuple(args.outputs), method=args.method, probes=args.probes, n=args.n, seed=args.seed,
        saliency=bool(args.save), device=args.device, dtype=getattr(torch, args.dtype))
    if args.save:
        any_model.save_result(result, args.save)
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in result.rows()]
    print(json.dumps(rows, indent=1) if args.json else any_model.format_table(result))


def add_export(p) -> None:
    p.add_argument("run_dir", help="a run folder (runs/NAME/PROFILE-seedS)")
    p.add_argument("out", help="the pipeline folder to write (new, empty, or an earlier export)")
    p.add_argument("--step", type=int, default=None, help="the checkpoint to export (default: the last)")


def cmd_export(args) -> None:
    from .runs.export import export_run
    from .runs.run import Run
    folder = export_run(Run(args.run_dir), args.out, args.step)
    info = json.loads((folder / "ldrkit.json").read_text())
    print(f"wrote {folder}: load it with {info['pipeline']}.from_pretrained({str(folder)!r}); it samples the "
          f"centred signals, renderer pixels = sample + {info['shift']:.6g} (ldrkit.json's shift); "
          f"`python -m ldrkit probe {folder}` repeats `python -m ldrkit ldr {args.run_dir}`")


COMMANDS = (
    ("list", "print the experiment names, one a line", add_list, cmd_list),
    ("run", "train and evaluate an experiment; writes OUT/metrics.json", add_run, cmd_run),
    ("store", "copy finished runs (runs/NAME/PROFILE-seedS) into the results store", add_store, cmd_store),
    ("reproduce", "retrain stored runs from scratch; table of stored against fresh numbers", add_reproduce,
     cmd_reproduce),
    ("sweep", "run experiments x seeds on a pool of one-thread workers; summary table", add_sweep, cmd_sweep),
    ("ldr", "LDR at the five sqrt(alpha_bar) levels for every checkpoint of a run folder", add_ldr, cmd_ldr),
    ("coupling", "coupling kappa of a run's last checkpoint beside its exact oracles (0 = product of marginals, "
                 "1 = rule), at the five sqrt(alpha_bar) levels", add_coupling, cmd_coupling),
    ("resample", "the last checkpoint's categories under another sampler (default: the paper's ancestral DDPM on "
                 "all T steps) beside the run's last evaluation; cached in RUN/resampled.json", add_resample,
     cmd_resample),
    ("detect", "per-sample hallucination detectors on a run's samples (Aithal et al.'s x0 variance, "
               "product-likeness): AUROC with 95%% bootstrap intervals per window", add_detect, cmd_detect),
    ("bench", "benchmarks", add_bench, cmd_bench),
    ("theory", "section 5 computations", add_theory, cmd_theory),
    ("chapter", "execute a chapter with papermill (one run or a grid of seeds)", add_chapter, cmd_chapter),
    ("probe", "LDR, saliency and x0/eps of any diffusers denoiser folder (UNet, DiT, SD3 transformer) at "
              "sqrt(alpha_bar) levels, with its own scheduler", add_probe, cmd_probe),
    ("export", "write a run's last checkpoint and schedule as a diffusers pipeline folder", add_export, cmd_export),
)
ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, RunFolderError, ConfigMismatchError,
          FloatingPointError)  # a one-line error and exit status 2 (UnknownNameError is a ValueError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ldrkit", description="Experiments of the Local Generation Bias book.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text, add_arguments, handler in COMMANDS:
        command = sub.add_parser(name, help=text)
        add_arguments(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _fast_training(getattr(args, "fast", False)):
            if hasattr(args, "seed"):
                request.check_seed(args.seed)
            if hasattr(args, "profile") and args.command != "bench":
                check_profile(args.profile)
            args.handler(args)
            return 0
    except ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


@contextmanager
def _fast_training(on: bool):
    """$LDRKIT_FAST=1 while a `--fast` command runs (its worker processes inherit it), as it was afterwards."""
    from .runs.train import FAST_ENV
    before = os.environ.get(FAST_ENV)
    if on:
        os.environ[FAST_ENV] = "1"
    try:
        yield
    finally:
        if on and before is None:
            os.environ.pop(FAST_ENV, None)
        elif on:
            os.environ[FAST_ENV] = before


def _positive(value: int | None, what: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")


if __name__ == "__main__":
    sys.exit(main())
