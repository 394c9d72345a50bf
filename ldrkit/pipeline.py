"""One experiment end to end: spec -> Setup -> denoiser (trained, or an exact oracle) -> evaluations.

Each evaluation samples from the model, decodes, sorts the samples into the four categories
and probes the LDR of one symbol's region at the spec's sqrt(alpha_bar) levels; with
eval.oracle_distance it also measures the distance to the rule, product and memoriser denoisers.
Networks and oracles are evaluated by the same `evaluate`.
"""
from __future__ import annotations

import math

import torch

from . import ldr as ldr_probe
from .categorize import fractions
from .coupling import exact_cross_rows, kappa_from_rows
from .runs import Run
from .setups import Setup
from .specs import DEFAULTS, ORACLES
from .symbols import SymbolConditioned, bind, token_indices, token_symbols
from .train import train
from .yardsticks import build_oracle, oracle_distances


def _finite(record: dict, where: str) -> None:
    """NaN or inf in an evaluation is an error naming the step, never a number in metrics.json."""
    for output in ("ldr", "ldr_x0"):
        for level, value in record.get(output, {}).items():
            if isinstance(value, float) and math.isinf(value):
                raise FloatingPointError(f"{where}: {output} at sqrt(alpha_bar)={level} is {value}")


def evaluate(setup: Setup, model, eval_config: dict, seed: int, oracles: dict | None = None) -> tuple[dict, torch.Tensor]:
    """Categories and LDR (eps and x0 outputs) of one model, and the oracle distances when `oracles` is given;
    also returns the generated samples.

    eval_config: num_samples, ldr_position, ldr_samples and the optional keys of `specs.DEFAULTS["eval"]`:
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
    """kappa (`ldrkit.coupling`: 0 the product oracle, 1 the rule's) of `model` per sqrt(alpha_bar) level on n noised
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
    `oracle_samples` noised training inputs per level (see ldrkit.yardsticks).
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
