"""One experiment end to end: spec -> Setup -> denoiser (trained, or an exact oracle) -> evaluations.

Each evaluation samples from the model, decodes, sorts the samples into the four categories
and probes the LDR of one symbol's region at the spec's sqrt(alpha_bar) levels; with
eval.oracle_distance it also measures the distance to the rule, product and memoriser denoisers.
Networks and oracles are evaluated by the same `evaluate`.
"""
from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..theory import hypercube as H
from ..probes import ldr as ldr_probe
from .files import atomic_write, write_json
from ..systems.categories import fractions
from ..probes.kappa import exact_cross_rows, kappa_from_rows
from .run import Run
from .setup import Setup
from ..spec.hashing import DEFAULTS
from ..spec.registry import ORACLES
from ..denoisers.symbol_conditioned import SymbolConditioned, bind, token_indices, token_symbols
from .train import train
from ..denoisers.oracles import build_oracle
from ..probes.distances import oracle_distances
from ..theory.stairs import SMOOTH_WINDOW, Distribution, find_plateaus, lr_at, smooth, waiting_time


def _finite(record: dict, where: str) -> None:
    """NaN or inf in an evaluation is an error naming the step, never a number in metrics.json."""
    for output in ("ldr", "ldr_x0"):
        for level, value in record.get(output, {}).items():
            if isinstance(value, float) and math.isinf(value):
                raise FloatingPointError(f"{where}: {output} at sqrt(alpha_bar)={level} is {value}")


def evaluate(setup: Setup, model, eval_config: dict, seed: int, oracles: dict | None = None) -> tuple[dict, torch.Tensor]:
    """Categories and LDR (eps and x0 outputs) of one model, and the oracle distances when `oracles` is given;
    also returns the generated samples.

    eval_config: num_samples, ldr_position, ldr_samples and the optional keys of `spec.hashing.DEFAULTS["eval"]`:
    sampler ("ddpm" or "ddim"), sample_steps, sample_batch (network calls on at most that many samples),
    ldr_method ("exact" or "estimate"), ldr_probes (for "estimate"), ldr_levels, oracle_samples.
    ldr_position is whatever the renderer's `region` takes (a position, a list of positions or a named part).
    """
    ev = {**DEFAULTS["eval"], **eval_config}
    samples = setup.generate(model, ev["num_samples"], seed, ev["sample_steps"], sampler=ev["sampler"],
                             batch_size=ev["sample_batch"])
    if not torch.isfinite(samples).all():
        raise FloatingPointError(f"the model generated non-finite samples (seed {seed}); its weights have diverged")
    region = setup.renderer.region(ev["ldr_position"])
    if isinstance(model, SymbolConditioned):
        table = conditioned_ldr_levels(setup, model, region, ev, seed)
    else:
        table = ldr_probe.ldr_levels(model, setup.schedule, region, setup.train_data, levels=tuple(ev["ldr_levels"]),
                                     n=ev["ldr_samples"], seed=seed, method=ev["ldr_method"], probes=ev["ldr_probes"])
    record = {"categories": fractions(setup.categorize(samples)), "ldr": table["eps"], "ldr_x0": table["x0"]}
    if isinstance(model, SymbolConditioned):
        record["symbols"] = symbol_record(setup, setup.last_tokens, samples)
    if oracles and "memoriser" in oracles:
        record["oracle_distance"] = oracle_distances(model, setup, oracles, n=ev["oracle_samples"], seed=seed)
    if ev["coupling_samples"]:
        if not oracles or not {"rule", "product"} <= set(oracles):
            raise ValueError("eval.coupling_samples needs the rule and product oracles (pass them as `oracles`)")
        kappa = coupling_record(setup, model, oracles["rule"], oracles["product"], region,
                                ev["coupling_levels"] or ev["ldr_levels"], ev["coupling_samples"], seed)
        record["coupling"] = {lv: {k: r[k] for k in ("value", "se", "signal", "energy")} for lv, r in kappa.items()}
    return record, samples


def coupling_record(setup: Setup, model, rule, product, region, levels, n: int, seed: int) -> dict:
    """kappa (`ldrkit.probes.kappa`: 0 the product oracle, 1 the rule's) of `model` per sqrt(alpha_bar) level on n noised
    training inputs (the rows `ldr.noised_inputs` draws with `seed`), exact Jacobian rows, with its s.e.: {level:
    result}. A symbol-conditioned model is bound to each input's own sequence (it denoises p(x | s))."""
    tokens = setup.training_tokens() if isinstance(model, SymbolConditioned) else None
    out = {}
    for level in levels:
        t = setup.schedule.timestep_for(level)
        rows, inputs = ldr_probe.noised_rows(setup.train_data, setup.schedule, t, n, torch.Generator().manual_seed(seed))
        if tokens is None:
            net = exact_cross_rows(model, inputs, t, region)
        else:
            net = torch.cat([exact_cross_rows(bind(model, tokens[i:i + 1]), inputs[k:k + 1], t, region)
                             for k, i in enumerate(rows.tolist())])
        out[f"{level:g}"] = kappa_from_rows(net, exact_cross_rows(rule, inputs, t, region),
                                            exact_cross_rows(product, inputs, t, region), region)
    return out


def conditioned_ldr_levels(setup: Setup, model: SymbolConditioned, region, ev: dict, seed: int) -> dict:
    """The LDR table of a symbol-conditioned denoiser, each noised training input given its own sequence.

    The inputs are the ones `ldr.ldr_levels` draws (same generator, same order); each is probed on its own
    with the model bound to the sequence drawn in it, and the per-input ratios are averaged as `ldr_levels` does.
    """
    tokens = setup.training_tokens()
    table = {"eps": {}, "x0": {}}
    for level in ev["ldr_levels"]:
        t = setup.schedule.timestep_for(level)
        rows, inputs = ldr_probe.noised_rows(setup.train_data, setup.schedule, t, ev["ldr_samples"],
                                             torch.Generator().manual_seed(seed))  # the draws of ldr.ldr_levels
        per_input = [ldr_probe.ldr(bind(model, tokens[i:i + 1]), setup.schedule, region, inputs=inputs[k:k + 1], t=t,
                                   seed=seed, method=ev["ldr_method"], probes=ev["ldr_probes"])
                     for k, i in enumerate(rows.tolist())]
        for o in table:
            table[o][f"{level:g}"] = float(sum(r[o].mean for r in per_input) / len(per_input))
    return table


def symbol_record(setup: Setup, tokens: torch.Tensor, samples: torch.Tensor) -> dict:
    """What the prior drew and how faithfully the images show it: the share of drawn sequences that obey the
    rule and that are training sequences, and the share of samples read back as exactly their sequence."""
    alphabet = tuple(setup.grammar.symbols)
    drawn = tokens.numpy()
    symbols = token_symbols(tokens, alphabet)
    train = {tuple(r) for r in token_indices(setup.split.train, alphabet).tolist()}
    decoded = setup.renderer.decode(samples)
    faithful = decoded.all_legible & (decoded.tokens == symbols).all(1)
    return {"prior_valid": float(setup.grammar.is_valid(symbols).mean()),
            "prior_in_dataset": float(sum(tuple(r) in train for r in drawn.tolist()) / len(drawn)),
            "faithful": float(faithful.mean())}


def evaluation_seed(config: dict, step: int) -> int:
    """Evaluation randomness comes from (seed, step), not from the training stream: a resumed run
    reaches exactly the numbers of an uninterrupted one."""
    return config["train"]["seed"] * 1_000_003 + step


def run_training(config: dict, run: Run | str, progress: bool = True, stop_after: int | None = None) -> list[dict]:
    """Train the spec's model in the run folder (a Run or a path; resuming if possible); returns the records.

    With config["eval"]["coupling_samples"] = n, each record also holds "coupling": {level: {"value", "se",
    "signal", "energy"}}, the calibrated locality score kappa of the network on n noised training inputs
    (`coupling_record`; value None where the oracles do not differ), at config["eval"]["coupling_levels"]
    (default: the LDR levels). With config["eval"]["oracle_distance"] true,
    each record also holds "oracle_distance":
    {"rule"|"product"|"memoriser": {level: mean per-coordinate (eps_net - eps_oracle)^2}} on
    `oracle_samples` noised training inputs per level (see ldrkit.probes.distances).
    """
    run = run if isinstance(run, Run) else Run(run)
    setup = Setup.from_config(config)
    model = setup.build_model(config)
    if config.get("symbols") and config["eval"].get("oracle_distance"):
        raise ValueError("eval.oracle_distance compares p(x) denoisers; a symbol-conditioned model denoises p(x | s): "
                         "turn it off")
    tokens = None
    if isinstance(model, SymbolConditioned):  # the prior first (seconds; a resumed run reloads it with the weights)
        model.prior.fit(token_indices(setup.split.train, tuple(setup.grammar.symbols)),
                        seed=config["train"]["seed"], **(config["symbols"].get("fit") or {}))
        tokens = setup.training_tokens()
    oracles = evaluation_oracles(setup, config["eval"])

    def evaluate_step(model, step: int) -> dict:
        record, samples = evaluate(setup, model, config["eval"], evaluation_seed(config, step), oracles)
        _finite(record, f"{run.path}, step {step}")
        run.save_samples(step, samples)
        return record

    return train(run, config, model, setup.schedule, setup.train_data, evaluate_step,
                 stop_after=stop_after, progress=progress, tokens=tokens)


def evaluation_oracles(setup: Setup, eval_config: dict) -> dict | None:
    """The exact denoisers `evaluate` needs, built once per run: all three for the oracle distances, the rule and
    the product for the coupling score alone; None when it needs none."""
    wanted = (ORACLES if eval_config.get("oracle_distance") else
              ("rule", "product") if eval_config.get("coupling_samples") else ())
    return {w: build_oracle(setup, w) for w in wanted} or None


def run_oracle(config: dict, run: Run, progress: bool = True) -> dict:
    """Sample from the exact denoiser config["oracle"] through the ordinary `evaluate`; one evaluation at step 0."""
    setup = Setup.from_config(config)
    oracle = build_oracle(setup, config["oracle"])
    run.prepare(config)
    wanted = ("rule", "product") if config["eval"].get("coupling_samples") else ()
    record, samples = evaluate(setup, oracle, config["eval"], config["train"]["seed"],
                               {w: build_oracle(setup, w) for w in wanted} or None)
    record = {"step": 0, **record}
    run.save_oracle_samples(samples)
    return {"oracle": config["oracle"], "evaluations": [record], "final": record}


def run_stairs(config: dict, run: Run, progress: bool = True) -> dict:
    """Train the network of `config` on y_i of its distribution; write curve, snapshots and functions into run_dir.

    Returns the metrics body: sqrt_alpha_bar, levels {zero, linear, univariate} (losses against the
    exact target, computed without training), loss_curve [[step, loss]] (each loss the mean of the
    training losses since the previous record), plateaus (find_plateaus), weights [[step, on_axis,
    off_axis]] with on_axis = mean_j |a_j w_j^(i)|, off_axis = mean_j ||a_j (w_j - w_j^(i) e_i)||,
    axis_weights [[step, mean_j |a_j w_j^(k)| for each k]], waiting (waiting_time), final_loss, wall_seconds.
    The optional `stop_below` ends training once the smoothed loss is below that fraction of the
    univariate level (a waiting-time run need not train past its escape).
    """
    torch.set_num_threads(1)
    run.prepare(config)  # refuses a folder made by another spec
    run_dir = run.path
    start = time.time()
    d, sab, i = config["d"], config["sqrt_alpha_bar"], config["coordinate"]
    data = Distribution(d, config.get("distribution"))
    dtype = getattr(torch, config["dtype"])
    levels = H.plateau_levels(data.support, sab, i=i, probs=data.probs, n=config["level_samples"],
                              seed=config["seed"] + 1)
    level_values = levels.as_dict()
    if data.pair is not None:  # the best function of the tilted pair: a local solution that reads two coordinates
        level_values["pair"] = H.pair_level(data.support, sab, *data.pair, probs=data.probs, n=config["level_samples"],
                                            seed=config["seed"] + 1)  # the same samples as the other levels
    stop = config.get("stop_below")
    g = torch.Generator().manual_seed(config["seed"])
    params = H.init_balanced(config["width"], d, config["sigma_init"], config["r"], g, dtype=dtype)
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    total = sum(p["steps"] for p in config["phases"])
    snap_every = max(1, total // config["snapshots"])
    curve, weights, axis, snapshots, since = [], [], [], [], []
    bar = tqdm(total=total, disable=not progress, desc=f"three stairs d={d}")
    step, stopped = 0, False
    for phase in config["phases"]:
        opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[phase["optimizer"]]
        opt = opt_cls(list(params.values()), lr=phase["lr"])
        for k in range(phase["steps"]):
            for group in opt.param_groups:
                group["lr"] = lr_at(phase, k)
            x, _ = H.noise(data.sample(config["batch"], g), sab, g)
            y = data.target(x, sab)[:, i].to(dtype)
            loss = ((H.network(params, x.to(dtype)) - y) ** 2).mean()
            since.append(float(loss.detach()))
            if step % config["record_every"] == 0:
                curve.append([step, float(np.mean(since))])
                since = []
                weights.append([step, *H.weight_masses(params, i)])
                axis.append([step, *(params["a"].detach().abs()[:, None] * params["w"].detach().abs()).mean(0).tolist()])
                bar.set_postfix(loss=f"{curve[-1][1]:.4f}", refresh=False)
                if stop is not None and len(curve) >= SMOOTH_WINDOW and \
                        np.mean([c[1] for c in curve[-SMOOTH_WINDOW:]]) < stop * levels.univariate:
                    stopped = True
            if step % snap_every == 0:
                snapshots.append((step, {k: v.detach().clone() for k, v in params.items()}))
            if stopped:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
        if stopped:
            break
    bar.close()
    snapshots.append((step, {k: v.detach().clone() for k, v in params.items()}))
    # The final loss on a large fresh batch (less noisy than one training batch).
    with torch.no_grad():
        x, _ = H.noise(data.sample(1 << 16, g), sab, g)
        y = data.target(x, sab)[:, i]
        final = float(((H.network(params, x.to(dtype)).double() - y) ** 2).mean())
    curve.append([step, final])
    weights.append([step, *H.weight_masses(params, i)])
    curve_np = np.array(curve)
    smoothed = smooth(curve_np, SMOOTH_WINDOW)
    plateaus = find_plateaus(smoothed, level_values)
    _write_functions(run_dir, snapshots, plateaus, curve_np, data, sab, i, dtype, g)
    metrics = {"sqrt_alpha_bar": sab, "d": d, "levels": level_values, "levels_se": levels.zero_se,
               "loss_curve": curve, "plateaus": plateaus, "weights": weights, "axis_weights": axis,
               "waiting": waiting_time(smoothed, level_values), "stopped_early": stopped,
               "final_loss": final, "wall_seconds": time.time() - start}
    write_json(run_dir / "stairs.json", {**metrics, "config": config}, indent=None)
    return metrics


def _write_functions(run_dir: Path, snapshots, plateaus, curve, data: Distribution, sab, i, dtype, g) -> None:
    """Save s(x) against x^(1) at the middle of each plateau and at the end (functions.npz), for Fig. 22."""
    x, _ = H.noise(data.sample(4000, g), sab, g)
    y = data.target(x, sab)[:, i]
    steps = np.array([s for s, _ in snapshots])
    picks = {p["level"]: (p["first_step"] + p["last_step"]) // 2 for p in plateaus if p["level"] != "zero"}
    picks["final"] = int(curve[-1, 0])
    out = {"x1": x[:, i].numpy(), "target": y.numpy(),
           "univariate": H.univariate_target(x[:, i], sab).numpy()}
    for name, want in picks.items():
        step, params = snapshots[int(np.argmin(np.abs(steps - want)))]
        with torch.no_grad():
            out[f"s_{name}"] = H.network(params, x.to(dtype)).double().numpy()
        out[f"step_{name}"] = np.array(step)
    data = io.BytesIO()
    np.savez(data, **out)
    atomic_write(run_dir / "functions.npz", data.getvalue())
