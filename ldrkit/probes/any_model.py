"""The LDR probe for any diffusers denoiser: `probe(model_or_pipeline, regions, levels, ...)`.

A model folder or pipeline folder written by `save_pretrained` (or the objects themselves) holding a UNet2DModel,
UNet2DConditionModel, DiTTransformer2DModel or SD3Transformer2DModel is probed with its own scheduler through
`denoisers.diffusers_adapter` and the book's own probe (`probes.ldr`: the same exact Jacobian rows, the same
random-probe estimator with its error bar, the same noised inputs for the same seed). At each sqrt(alpha_bar)
level, n clean signals drawn from `data` (the model's input space: VAE latents for a latent model) are noised with
the model's scheduler, and the result holds those inputs, the model's eps and x0 predictions on them, and per region
and output the LDR (eq. 2) with its saliency map. Outputs: "eps", "x0" (see the adapter for what they are under
flow matching: the implied noise and the clean estimate z - sigma v), "eps_minus_identity", and "net": the
network's own output (eps, v or x0 as its scheduler's prediction_type says; the velocity v = eps - x0 for flow
matching). Saliency is taken with respect to the network's own input.

A folder that `ldrkit.runs.export` wrote carries the book's probe inputs (`ldrkit.json`, `ldrkit_probe.npz`: the
run's centred training signals, its LDR region, its number of noised inputs and any conditioning), so probing it
with no regions and no data repeats `python -m ldrkit ldr` on its run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import diffusers
import numpy as np
import torch

from ..denoisers.diffusers_adapter import REQUIRED_CONDITIONING, DiffusersDenoiser
from ..spec.hashing import LDR_LEVELS
from . import ldr as L

EXPORT_INFO, PROBE_INPUTS = "ldrkit.json", "ldrkit_probe.npz"
OUTPUTS = (*L.OUTPUTS, "net")
MEMORY_MARGIN = 1.25  # weights plus a quarter for the activations of one forward pass
DEFAULT_N = 8


@dataclass(frozen=True)
class LevelProbe:
    """One sqrt(alpha_bar) level: the timestep, the noised inputs (the network's own coordinates), the model's eps
    and x0 predictions on them, and per region {output: LDRResult} (saliency included when asked for)."""

    level: float
    timestep: int
    sqrt_alpha_bar: float
    network_timestep: float
    inputs: torch.Tensor = field(repr=False)
    eps: torch.Tensor = field(repr=False)
    x0: torch.Tensor = field(repr=False)
    ldr: list[dict[str, L.LDRResult]]


@dataclass(frozen=True)
class ProbeResult:
    """Every level's `LevelProbe`, the region masks, and what was probed (prediction: the scheduler's
    prediction_type, or "flow"; source: the folder's name, or the network's class)."""

    levels: list[LevelProbe]
    regions: list[torch.Tensor] = field(repr=False)
    outputs: tuple[str, ...]
    method: str
    probes: int | None
    n: int
    seed: int
    prediction: str
    source: str

    def means(self, region: int = 0) -> dict[str, dict[str, float]]:
        """{output: {level: mean LDR}}, the layout of `probes.ldr.ldr_levels`."""
        return {o: {f"{lv.level:g}": lv.ldr[region][o].mean for lv in self.levels} for o in self.outputs}

    def rows(self) -> list[dict]:
        """One row per region, level and output: the mean LDR, its standard error and the estimator's share."""
        return [{"region": r, "level": lv.level, "timestep": lv.timestep, "sqrt_alpha_bar": lv.sqrt_alpha_bar,
                 "output": o, "ldr": res.mean, "sem": res.sem, "probe_sem": res.probe_sem}
                for lv in self.levels for r, by_output in enumerate(lv.ldr) for o, res in by_output.items()]


# --- loading ---------------------------------------------------------------------------------------------------

def load(model_or_pipeline, scheduler=None, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
         memory_limit: int | None = None) -> tuple[torch.nn.Module, object, dict]:
    """(network, scheduler, export info) from a folder, a DiffusionPipeline or a network (+ `scheduler`).

    A folder is checked before anything is loaded: it must be a diffusers pipeline (model_index.json) or model
    (config.json) folder of a supported class, and its weights at `dtype` must fit the memory of `device` (or
    `memory_limit` bytes) with `MEMORY_MARGIN`. `scheduler` may be a scheduler or its folder; a model folder
    without one takes the `scheduler` folder beside it.
    """
    if isinstance(scheduler, (str, Path)):
        scheduler = _load_scheduler(Path(scheduler))
    if isinstance(model_or_pipeline, diffusers.DiffusionPipeline):
        parts = model_or_pipeline.components
        name = _denoiser_component({k: ("diffusers", type(v).__name__) for k, v in parts.items() if v is not None},
                                   "the pipeline")
        return parts[name], scheduler or parts.get("scheduler"), {}
    if isinstance(model_or_pipeline, torch.nn.Module):
        if scheduler is None:
            raise ValueError("a network needs its scheduler: pass scheduler= (a diffusers scheduler or its folder)")
        return model_or_pipeline, scheduler, {}
    folder = Path(model_or_pipeline)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a diffusers model or pipeline folder "
                                "(written by save_pretrained, or by `python -m ldrkit export RUN DIR`)")
    info = json.loads((folder / EXPORT_INFO).read_text()) if (folder / EXPORT_INFO).exists() else {}
    if (folder / "model_index.json").exists():
        index = json.loads((folder / "model_index.json").read_text())
        model_dir = folder / _denoiser_component({k: v for k, v in index.items() if isinstance(v, list)}, str(folder))
        cls, scheduler = _model_class(model_dir), scheduler or _load_scheduler(folder / "scheduler")
    else:
        model_dir, cls = folder, _model_class(folder)
        if scheduler is None and not (folder.parent / "scheduler").is_dir():
            raise ValueError(f"{folder} holds a model without its scheduler: pass scheduler= (or --scheduler), or "
                             "give the pipeline folder")
        scheduler = scheduler or _load_scheduler(folder.parent / "scheduler")
    check_memory(model_dir, dtype, device, memory_limit)
    return cls.from_pretrained(model_dir, torch_dtype=dtype).to(device).eval(), scheduler, info


def _denoiser_component(components: dict[str, list], where: str) -> str:
    found = [k for k, (_, cls) in components.items() if cls in REQUIRED_CONDITIONING]
    if not found:
        held = ", ".join(f"{k} ({v[1]})" for k, v in components.items()) or "nothing"
        raise ValueError(f"{where} has no denoiser ldrkit probes ({', '.join(REQUIRED_CONDITIONING)}); it holds {held}")
    return found[0]


def _model_class(folder: Path):
    config = folder / "config.json"
    name = json.loads(config.read_text()).get("_class_name") if config.exists() else None
    if name is None:
        raise ValueError(f"{folder} is not a diffusers model or pipeline folder (no model_index.json, no config.json "
                         "with a _class_name): save one with save_pretrained, or export a book run with "
                         "`python -m ldrkit export RUN DIR`")
    if name not in REQUIRED_CONDITIONING:
        raise ValueError(f"{folder} holds a {name}; ldrkit probes {', '.join(REQUIRED_CONDITIONING)}")
    return getattr(diffusers, name)


def _load_scheduler(folder: Path):
    config = folder / "scheduler_config.json"
    if not config.exists():
        raise ValueError(f"{folder} is not a diffusers scheduler folder (no scheduler_config.json)")
    return getattr(diffusers, json.loads(config.read_text())["_class_name"]).from_pretrained(folder)


def weights_bytes(folder: Path, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a model folder's weights once loaded at `dtype`, read from the safetensors headers (no tensor is
    loaded); the file sizes for .bin weights."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    plain = [f for f in files if f.name.count(".") == 1]  # model.safetensors, not model.fp16.safetensors
    count = 0
    for path in plain or files:
        with safe_open(str(path), framework="pt") as f:
            count += sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    if files:
        return count * torch.finfo(dtype).bits // 8
    return sum(p.stat().st_size for p in Path(folder).glob("*.bin"))


def available_memory(device: str) -> int:
    """Free bytes on the device: the GPU's free memory, or the machine's available RAM."""
    if str(device).startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(folder: Path, dtype: torch.dtype, device: str, memory_limit: int | None = None) -> int:
    """The folder's weight bytes at dtype; a ValueError naming the sizes when they do not fit (see `load`)."""
    need, have = weights_bytes(folder, dtype), memory_limit or available_memory(device)
    if need * MEMORY_MARGIN > have:
        gib = 2.0 ** 30
        raise ValueError(f"the model in {folder} needs about {need * MEMORY_MARGIN / gib:.2f} GiB ({need / gib:.2f} "
                         f"GiB of weights at {dtype} and a quarter more for activations), more than the "
                         f"{have / gib:.2f} GiB free on {device}: use a GPU with more memory (device=), a smaller "
                         "dtype (float16 / bfloat16) or a smaller model")
    return need


# --- regions ---------------------------------------------------------------------------------------------------

def region_masks(regions, signal_shape: tuple[int, int, int]) -> list[torch.Tensor]:
    """Boolean masks (C, H, W) from one region or a list of them: a rectangle (top, left, bottom, right) of the
    input grid (rows top:bottom, columns left:right, every channel), a mask (H, W) or (C, H, W), or a mask image
    (white = inside) of the grid's size or an integer multiple of it (a pixel-space mask of a latent model: a
    latent cell is inside when at least half of its pixels are)."""
    if _is_single_region(regions):
        regions = [regions]
    return [L.check_region(_mask(r, tuple(signal_shape)), tuple(signal_shape)) for r in regions]


def _is_single_region(region) -> bool:
    rect = isinstance(region, (tuple, list)) and len(region) == 4 and all(isinstance(v, Integral) for v in region)
    return rect or isinstance(region, (str, Path, np.ndarray, torch.Tensor))


def _mask(region, shape: tuple[int, int, int]) -> torch.Tensor:
    c, h, w = shape
    if isinstance(region, (str, Path)):
        return _mask(_image_mask(Path(region), h, w), shape)
    if isinstance(region, (tuple, list)):
        top, left, bottom, right = (int(v) for v in region)
        if not (0 <= top < bottom <= h and 0 <= left < right <= w):
            raise ValueError(f"region (top, left, bottom, right) = {tuple(region)} lies outside the {h}x{w} input "
                             f"grid: need 0 <= top < bottom <= {h} and 0 <= left < right <= {w}")
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[:, top:bottom, left:right] = True
        return mask
    mask = torch.as_tensor(np.asarray(region)).bool()
    if tuple(mask.shape) == (h, w):
        mask = mask.expand(c, h, w).clone()
    if tuple(mask.shape) != shape:
        raise ValueError(f"a region mask of shape {tuple(mask.shape)} does not fit the input ({c}, {h}, {w}); give "
                         f"({h}, {w}) or ({c}, {h}, {w})")
    return mask


def _image_mask(path: Path, h: int, w: int) -> np.ndarray:
    from PIL import Image

    if not path.exists():
        raise FileNotFoundError(f"no mask image at {path}")
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    ph, pw = pixels.shape
    if ph % h or pw % w or ph // h != pw // w:
        raise ValueError(f"mask image {path} is {ph}x{pw} pixels; the input grid is {h}x{w}: give a mask of that "
                         "size or of an integer multiple of it")
    k = ph // h
    return pixels.reshape(h, k, w, k).mean(axis=(1, 3)) >= 0.5


# --- the probe -------------------------------------------------------------------------------------------------

def probe(model_or_pipeline, regions=None, levels=None, *, data=None, conditioning: dict | None = None,
          scheduler=None, outputs: tuple[str, ...] = ("eps", "x0"), method: str = "exact", probes: int = 32,
          n: int | None = None, seed: int = 0, saliency: bool = True, device: str = "cpu",
          dtype: torch.dtype = torch.float32, memory_limit: int | None = None,
          max_batch: int | None = None) -> ProbeResult:
    """LDR of a diffusers denoiser on each region at each sqrt(alpha_bar) level (default `LDR_LEVELS`).

    `data`: clean signals (N, C, H, W) in the model's input space, of which n (default 8) are drawn and noised per
    level with `seed`; `conditioning`: the keyword tensors the network takes, batch 1 (encoder_hidden_states for a
    UNet2DConditionModel, encoder_hidden_states and pooled_projections for SD3, class_labels for a DiT);
    `method` "exact" (all |R| Jacobian rows) or "estimate" (`probes` random probes, with the error bar). A folder
    that ldrkit exported supplies regions, data, levels, n and conditioning by default. See `load` for the rest.
    """
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown or method not in L.METHODS:
        raise ValueError(f"outputs must come from {OUTPUTS} (got {unknown}) and method from {L.METHODS} "
                         f"(got {method!r})")
    net, scheduler, info = load(model_or_pipeline, scheduler, device=device, dtype=dtype, memory_limit=memory_limit)
    stored = _export_inputs(Path(model_or_pipeline)) if info else {}
    regions = stored.get("region") if regions is None else regions
    data = stored.get("data") if data is None else data
    if regions is None or data is None:
        raise ValueError("give regions (rectangles or masks) and data (clean signals (N, C, H, W) in the model's "
                         "input space, e.g. VAE latents)")
    levels = tuple(info.get("levels", LDR_LEVELS) if levels is None else levels)
    n = int(info.get("n", DEFAULT_N) if n is None else n)
    if n < 1:
        raise ValueError(f"the LDR needs n >= 1 noised inputs per level, got {n}")
    model = DiffusersDenoiser(net, scheduler, {**info.get("conditioning", {}), **(conditioning or {})})
    data = _check_data(data, net)
    masks = region_masks(regions, tuple(data.shape[1:]))
    budget = available_memory(device) if memory_limit is None else memory_limit
    if method == "exact":
        _check_rows_fit(max(int(m.sum()) for m in masks), n, data[0].numel(), budget)
    found = [_probe_level(model, data, masks, level, outputs, method, probes, n, seed, saliency, max_batch, budget)
             for level in levels]
    source = Path(model_or_pipeline).name if isinstance(model_or_pipeline, (str, Path)) else type(net).__name__
    return ProbeResult(found, masks, tuple(outputs), method, int(probes) if method == "estimate" else None, n, seed,
                       model.levels.prediction, source)


def _probe_level(model, data, masks, level, outputs, method, probes, n, seed, saliency, max_batch, budget):
    levels = model.levels
    t = levels.timestep_for(level)
    x = L.noised_inputs(data, levels, t, n, torch.Generator().manual_seed(seed))  # as probes.ldr.ldr draws them
    a, scale = float(levels.sqrt_alpha_bar(t)), float(levels.input_scale(t))
    with torch.no_grad():
        eps = model(x, torch.full((n,), t, dtype=torch.long))
    per_region = [_region_ldr(model, x, t, m, a, scale, outputs, method, probes, seed, saliency, max_batch, budget)
                  for m in masks]
    return LevelProbe(float(level), t, a, float(levels.network_timesteps[t]), x * scale, eps,
                      (x - (1 - a * a) ** 0.5 * eps) / a, per_region)


def _region_ldr(model, x, t, mask, a, scale, outputs, method, probes, seed, saliency, max_batch, budget):
    """{output: LDRResult} from one set of VJPs (probes.ldr.probe_rows), rows taken w.r.t. the network's input."""
    eps_rows, weights = L.probe_rows(model, x, t, mask, method=method, probes=probes, seed=seed, max_batch=max_batch,
                                     memory_budget=budget)
    results = {}
    for o in outputs:
        if o == "net":
            ce, cx = model.levels.output_in_eps_x0(t)
            rows = ce * eps_rows + cx * L.output_rows(eps_rows, mask, a, "x0", weights)
        else:
            rows = L.output_rows(eps_rows, mask, a, o, weights)
        rows = rows / scale
        estimate = method == "estimate"
        results[o] = L.LDRResult(L.ratio(rows, mask), method=method, probes=int(probes) if estimate else None,
                                 estimator_se=L.ratio_se(rows, mask) if estimate else None,
                                 saliency=L.saliency(rows, tuple(x.shape[1:])) if saliency else None)
    return results


def _check_data(data, net) -> torch.Tensor:
    data = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data).float()
    channels = net.config.in_channels
    if data.dim() != 4 or data.shape[1] != channels:
        raise ValueError(f"data must be clean signals of shape (N, {channels}, H, W) in the model's input space, got "
                         f"{tuple(data.shape)}")
    return data


def _check_rows_fit(rows: int, n: int, d: int, budget: int) -> None:
    need = rows * n * d * 4 * 2  # the eps rows and one derived output's rows, float32
    if need > budget:
        raise ValueError(f"the exact LDR of a {rows}-element region on {n} inputs of {d} elements needs "
                         f"{need / 2**30:.1f} GiB of Jacobian rows, more than the {budget / 2**30:.1f} GiB free: use "
                         "method='estimate' (memory of K probes, not |R| rows), a smaller region or fewer inputs")


# --- the probe inputs of an exported book run ------------------------------------------------------------------

def write_probe_inputs(folder: Path, data: torch.Tensor, region: torch.Tensor, info: dict) -> None:
    """Write ldrkit.json (`info`: what the export knows, levels and n for the probe included) and ldrkit_probe.npz
    (the clean signals in the model's space and the LDR region) into an exported folder."""
    folder = Path(folder)
    np.savez(folder / PROBE_INPUTS, data=data.numpy().astype(np.float32), region=region.numpy())
    (folder / EXPORT_INFO).write_text(json.dumps(info, indent=1) + "\n")


def _export_inputs(folder: Path) -> dict:
    if not (folder / PROBE_INPUTS).exists():
        return {}
    with np.load(folder / PROBE_INPUTS) as stored:
        return {"data": torch.as_tensor(stored["data"]), "region": torch.as_tensor(stored["region"])}


# --- files of the command line ---------------------------------------------------------------------------------

def load_tensors(path: str | Path) -> dict[str, torch.Tensor] | torch.Tensor:
    """A .npy array, or the tensors of a .safetensors or .pt file (a dict, or one tensor)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if path.suffix == ".npy":
        return torch.as_tensor(np.load(path))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, weights_only=True)


def load_data(path: str | Path) -> torch.Tensor:
    """The one tensor of a data file (see `load_tensors`)."""
    data = load_tensors(path)
    if isinstance(data, dict):
        if len(data) != 1:
            raise ValueError(f"{path} holds {len(data)} tensors ({', '.join(data)}); a data file holds one")
        data = next(iter(data.values()))
    return data


def save_result(result: ProbeResult, path: str | Path) -> None:
    """The region masks, and per level the inputs, eps, x0 and per region and output the LDR values and saliency
    maps, as one .npz file (keys like "saliency/r0/x0@0.5")."""
    arrays = {"regions": torch.stack(result.regions).numpy()}
    for lv in result.levels:
        at = f"@{lv.level:g}"
        arrays.update({f"inputs{at}": lv.inputs.numpy(), f"eps{at}": lv.eps.numpy(), f"x0{at}": lv.x0.numpy()})
        for r, by_output in enumerate(lv.ldr):
            for o, res in by_output.items():
                arrays[f"ldr/r{r}/{o}{at}"] = res.values.numpy()
                if res.saliency is not None:
                    arrays[f"saliency/r{r}/{o}{at}"] = res.saliency
    np.savez(path, **arrays)


def format_table(result: ProbeResult) -> str:
    """A plain-text table: one line per region, one column per output and level (the layout of `ldrkit ldr`)."""
    head = ["region"] + [f"{o}@{lv.level:g}" for o in result.outputs for lv in result.levels]
    lines = [head]
    for r in range(len(result.regions)):
        cells = [str(r)]
        for o in result.outputs:
            for lv in result.levels:
                res = lv.ldr[r][o]
                cells.append(f"{res.mean:.3f}" + (f"±{res.sem:.3f}" if res.sem == res.sem else ""))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    title = (f"LDR of {result.source} ({result.method}" + (f", {result.probes} probes" if result.probes else "")
             + f", n={result.n}, seed {result.seed}, {result.prediction} prediction; columns output@sqrt(alpha_bar))")
    body = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join([title, body[0], "  ".join("-" * w for w in widths), *body[1:]])
