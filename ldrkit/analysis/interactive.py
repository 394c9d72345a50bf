"""Figures that move without a kernel: plotly figures whose every view is precomputed from stored runs.

A chapter displays `WebFigure(fig)`: HTML that draws with the plotly.js the website serves from its own
`_static/` (book/_ext/offline_plotly.py adds it to the pages that hold a figure), so a page needs no CDN and
no Python. plotly.js is loaded once per page and cached across pages, instead of 4.8 MB inlined per figure.
Controls are plotly's own sliders and dropdowns; the saliency explorer's four controls index one table of
views in the page (a short script redraws on each change), since plotly's controls each set one thing.
"""
from __future__ import annotations

import json
import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..probes import ldr as L
from ..probes.estimates import fraction_interval
from ..runs.run import Run
from ..spec.hashing import LDR_LEVELS
from ..systems.categories import CATEGORIES
from ..theory import hypercube as H
from .plots import CATEGORY_COLORS

DIGITS = 4                    # significant digits kept in a page: enough for a plot, a quarter of the bytes
EXPLORER_SAMPLES = 8          # samples per view of the saliency explorer
# sqrt(abar) grid of the K explorer: 0.05 to 0.97 (hypercube.d_star's bracket fails at 0.99)
K_LEVELS = tuple(round(x, 2) for x in np.arange(0.05, 0.971, 0.02))
K_DS = np.linspace(-3, 3, 241)
LEVEL_COLORS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#b5de2b")   # viridis, as the static figures
NO_PLOTLY = ("<p class='ldrkit-no-plotly'>This interactive figure draws with the plotly.js the book's website "
             "serves; in Jupyter or Colab use the explorer below it (ipywidgets) or <code>fig.show()</code>.</p>")


def _round(values) -> list:
    """Floats to DIGITS significant digits (NaN to None), for small pages."""
    out = []
    for v in np.asarray(values, dtype=float).ravel():
        out.append(None if not math.isfinite(v) else float(f"{v:.{DIGITS}g}"))
    return out


class WebFigure:
    """A plotly figure as page HTML (no plotly.js inside: the page provides it), with an optional script run
    after the figure is drawn ({plot_id} names its div)."""

    def __init__(self, fig: go.Figure, post_script: str | None = None):
        self.fig, self.post_script = fig, post_script

    def html(self) -> str:
        guard = ("<script>if (!window.Plotly) { document.currentScript.insertAdjacentHTML('afterend', "
                 f"{json.dumps(NO_PLOTLY)}); }}</script>")
        body = self.fig.to_html(full_html=False, include_plotlyjs=False, post_script=self.post_script,
                                config={"displaylogo": False, "responsive": True})
        return guard + body

    def _repr_html_(self) -> str:
        return self.html()

    def show(self):
        """Plotly's own renderer (Jupyter, Colab); the native controls work there, the explorer's need the page."""
        return self.fig.show()


def _slider(name: str, labels: list[str], y: float, method: str = "skip", args=None, active: int = 0) -> dict:
    steps = [{"label": lab, "method": method, "args": (args[i] if args else [])} for i, lab in enumerate(labels)]
    return {"active": active, "currentvalue": {"prefix": f"{name}: "}, "pad": {"t": 10, "b": 0}, "len": 1.0,
            "x": 0.0, "y": y, "yanchor": "top", "steps": steps, "name": name}


# --- the LDR saliency explorer (chapter "The LDR probe") -----------------------------------------------------

def saliency_views(run: Run, samples: int = EXPLORER_SAMPLES, levels=LDR_LEVELS, seed: int = 0) -> dict:
    """Saliency (squared Jacobian column norms, eps and x0) of `samples` noised training inputs for every
    checkpoint of the run, level and region (symbol position), cached in the run folder ("saliency_explorer").

    The inputs and probe are `ldr_probe.explorer_view`'s: sample s at a level is row s of
    `ldr.noised_inputs(train_data, ..., samples, Generator(seed))`. Returns {"steps", "levels", "positions",
    "samples", "views": {"c,l,r,s": [eps heat, x0 heat, eps LDR, x0 LDR]}} with indexes into those lists.
    """
    setup = run.setup
    length = setup.renderer.length
    params = {"samples": samples, "levels": list(levels), "seed": seed}

    def compute(model, _step: int) -> dict:
        out = {}
        for li, level in enumerate(levels):
            t = setup.schedule.timestep_for(level)
            x = L.noised_inputs(setup.train_data, setup.schedule, t, samples, torch.Generator().manual_seed(seed))
            for r in range(length):
                res = L.ldr(model, setup.schedule, setup.renderer.region(r), inputs=x, t=t, outputs=("eps", "x0"),
                            return_saliency=True)
                for s in range(samples):
                    out[f"{li},{r},{s}"] = [_round(res["eps"].saliency[s]), _round(res["x0"].saliency[s]),
                                            _round([res["eps"].values[s]])[0], _round([res["x0"].values[s]])[0]]
        return out

    rows = run.cached("saliency_explorer", params, None, compute)
    views = {f"{c},{k}": v for c, row in enumerate(rows) for k, v in row.items() if k != "step"}
    return {"steps": [r["step"] for r in rows], "levels": list(levels), "positions": list(range(length)),
            "samples": list(range(samples)), "views": views}


_EXPLORER_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var V = %s;
function ldrkitRedraw() {
  var a = V.start.slice();
  gd.layout.sliders.forEach(function (s) { a[V.dims.indexOf(s.name)] = s.active || 0; });
  var v = V.views[a.join(',')], r = V.positions[a[2]];
  var colors = v[0].map(function (_, i) { return i === r ? '#d62728' : '#1f77b4'; });
  Plotly.update(gd, {y: [v[0], v[1]], 'marker.color': [colors, colors]},
                {'annotations[0].text': 'eps: LDR ' + v[2].toFixed(3), 'annotations[1].text': 'x0: LDR ' + v[3].toFixed(3)},
                [0, 1]);
}
gd._ldrkitViews = V;
gd.on('plotly_sliderchange', ldrkitRedraw);
"""


def saliency_explorer(run: Run, samples: int = EXPLORER_SAMPLES, seed: int = 0) -> WebFigure:
    """The explorer of `ldr_probe.explorer` for the website: eps and x0 saliency bars per input coordinate
    (the region red), with sliders for checkpoint, sqrt(abar), region and sample; every view precomputed."""
    data = saliency_views(run, samples=samples, seed=seed)
    c0, l0, r0 = len(data["steps"]) - 1, data["levels"].index(0.5) if 0.5 in data["levels"] else 0, \
        run.config["eval"]["ldr_position"]
    first = data["views"][f"{c0},{l0},{r0},0"]
    colors = ["#d62728" if i == r0 else "#1f77b4" for i in data["positions"]]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"eps: LDR {first[2]:.3f}", f"x0: LDR {first[3]:.3f}"))
    for col, heat in ((1, first[0]), (2, first[1])):
        fig.add_trace(go.Bar(x=data["positions"], y=heat, marker_color=colors, showlegend=False,
                             hovertemplate="input %{x}: %{y:.4g}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title_text="input coordinate", row=1, col=col)
    fig.update_yaxes(title_text="squared column norm", row=1, col=1)
    dims = ("checkpoint", "sqrt(abar)", "region (position)", "sample")
    labels = ([str(v) for v in data["steps"]], [str(v) for v in data["levels"]], [str(p) for p in data["positions"]],
              [str(v) for v in data["samples"]])
    start = [c0, l0, r0, 0]
    shown = [i for i in range(4) if len(labels[i]) > 1]  # one checkpoint (a stored run): its step in the title
    sliders = [_slider(dims[i], labels[i], -0.3 - 0.42 * k, active=start[i]) for k, i in enumerate(shown)]
    fig.update_layout(sliders=sliders, height=300 + 110 * len(sliders), margin={"t": 60, "b": 110 * len(sliders),
                                                                                "l": 60, "r": 20},
                      title={"text": f"{run.metrics.get('experiment', '')} at step {data['steps'][c0]}"
                                     if len(data["steps"]) == 1 else None, "font": {"size": 13}})
    data = {**data, "dims": dims, "start": start}
    compact = json.dumps(data, separators=(",", ":"))
    return WebFigure(fig, post_script=_EXPLORER_SCRIPT % compact)


# --- categories and LDR over training (parentheses, Quarter-digits) -----------------------------------------

def category_traces(run: Run) -> list[dict]:
    """Per category: the fractions over training and their 95% Wilson intervals on num_samples samples."""
    n = int(run.config["eval"]["num_samples"])
    ev = run.evaluations
    out = []
    for c in CATEGORIES:
        values = [e["categories"][c] for e in ev]
        lows, highs = zip(*(fraction_interval(v, n) for v in values))
        out.append({"category": c, "steps": [e["step"] for e in ev], "values": values, "low": list(lows),
                    "high": list(highs), "n": n})
    return out


PLOT_PX = 430  # height of the training explorer's two plots together
TITLE_PX = 74  # px from the figure's top to below a one-line title: plotly's tool bar (about 40 px on a phone), the title
BUTTON_PX = 38  # height of one button of a stacked menu


def _title(text: str) -> dict:
    """A title at the top left, under the tool bar (plotly draws it over a centred title on a narrow screen)."""
    return {"text": text, "x": 0.0, "xanchor": "left", "y": 1.0, "yanchor": "top", "yref": "container",
            "pad": {"t": 46, "l": 8}, "font": {"size": 14}}


def training_explorer(runs: dict[str, Run], key: str = "ldr", title: str = "") -> WebFigure:
    """Category fractions (with Wilson intervals as error bars and on hover) and the LDR of the probed region
    per level (`key`: "ldr" for eps, "ldr_x0" for x0) over training, one run at a time, chosen in a dropdown."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("sample categories (95% Wilson intervals)",
                                        f"LDR of the probed region ({'eps' if key == 'ldr' else 'x0'})"))
    owner = []
    for i, (name, run) in enumerate(runs.items()):
        for tr in category_traces(run):
            v, lo, hi = np.array(tr["values"]), np.array(tr["low"]), np.array(tr["high"])
            fig.add_trace(go.Scatter(
                x=tr["steps"], y=_round(v), mode="lines+markers", name=tr["category"].replace("_", " "),
                legendgroup=tr["category"], line={"color": CATEGORY_COLORS[tr["category"]]}, visible=i == 0,
                error_y={"type": "data", "array": _round(hi - v), "arrayminus": _round(v - lo), "visible": True},
                customdata=np.stack([_round(lo), _round(hi)], axis=1).tolist(),
                hovertemplate=(f"{tr['category']}: %{{y:.3f}} [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
                               f"<br>step %{{x}}, n={tr['n']}<extra>{name}</extra>")), row=1, col=1)
            owner.append(name)
        ev = run.evaluations
        for j, level in enumerate(ev[0][key]):
            fig.add_trace(go.Scatter(
                x=[e["step"] for e in ev], y=_round([e[key][level] for e in ev]), mode="lines+markers",
                name=f"sqrt(abar)={level}", line={"color": LEVEL_COLORS[j % len(LEVEL_COLORS)]}, visible=i == 0,
                hovertemplate=f"LDR %{{y:.3f}} at sqrt(abar)={level}<br>step %{{x}}<extra>{name}</extra>"),
                row=2, col=1)
            owner.append(name)
    buttons = [{"label": name, "method": "update",
                "args": [{"visible": [o == name for o in owner]}, {"title.text": f"{title}{name}"}]} for name in runs]
    first = next(iter(runs))
    # Narrow screens: the title on its own line under plotly's tool bar, the run buttons stacked under it (above the
    # plots, whose area keeps PLOT_PX of height), the legend under the plots.
    top = TITLE_PX + BUTTON_PX * len(runs) + 36
    fig.update_layout(updatemenus=[{"buttons": buttons, "type": "buttons", "direction": "down", "x": 0.0,
                                    "xanchor": "left", "y": 1 + (top - TITLE_PX) / PLOT_PX, "yanchor": "top",
                                    "showactive": True, "active": 0, "pad": {"t": 0, "b": 0, "l": 0, "r": 0}}],
                      title=_title(f"{title}{first}"),
                      legend={"orientation": "h", "x": 0.0, "y": -0.16, "yanchor": "top"},
                      height=top + PLOT_PX + 150, margin={"t": top, "l": 60, "r": 20, "b": 150})
    fig.update_annotations(font_size=12)
    fig.update_yaxes(range=[0, 1.02], title_text="fraction", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="LDR", row=2, col=1)
    fig.update_xaxes(title_text="training step", row=2, col=1)
    return WebFigure(fig)


# --- the K(w,b) explorer (chapter "The theory of section 5") ------------------------------------------------

def k_axis_grid(levels=K_LEVELS, ds=K_DS) -> dict:
    """K on the axis direction (e_1, D)/sqrt(1+D^2), sqrt(1-abar)/2 f(D), for every sqrt(abar) of the grid,
    with the maximiser D*, K(D*) and the bound sqrt(1-abar) of Lemma A.5."""
    rows = []
    for sab in levels:
        k = math.sqrt(1 - sab ** 2) / 2 * np.asarray(H.f_on_axis(ds, sab))
        ds_star = H.d_star(sab)
        rows.append({"sqrt_alpha_bar": sab, "K": k, "D*": ds_star,
                     "K(D*)": math.sqrt(1 - sab ** 2) / 2 * float(H.f_on_axis(ds_star, sab)),
                     "bound": math.sqrt(1 - sab ** 2)})
    return {"D": np.asarray(ds), "rows": rows}


def k_explorer(levels=K_LEVELS, ds=K_DS, start: float = 0.9) -> WebFigure:
    """K on the axis against D with D* and the bound, a slider over sqrt(abar) (every position precomputed)."""
    grid = k_axis_grid(levels, ds)
    d = _round(grid["D"])
    top = max(r["bound"] for r in grid["rows"]) * 1.05
    active = int(np.argmin([abs(r["sqrt_alpha_bar"] - start) for r in grid["rows"]]))

    def traces(r):
        return {"x": [d, [r["D*"], r["D*"]], [d[0], d[-1]], [r["D*"]]],
                "y": [_round(r["K"]), [-top, top], [r["bound"], r["bound"]], [r["K(D*)"]]]}

    r0 = grid["rows"][active]
    t0 = traces(r0)
    fig = go.Figure()
    names = ("K on the axis", "D*", "bound sqrt(1-abar)", "max K")
    styles = ({"color": "#1f77b4"}, {"color": "#2ca02c", "dash": "dot"}, {"color": "grey", "dash": "dash"}, {})
    for i, (name, style) in enumerate(zip(names, styles)):
        fig.add_trace(go.Scatter(x=t0["x"][i], y=t0["y"][i], name=name, mode="markers" if i == 3 else "lines",
                                 line=style, marker={"size": 9, "color": "#d62728"},
                                 hovertemplate="D=%{x:.3f}, K=%{y:.4f}<extra>" + name + "</extra>"))
    args = [[traces(r), {"title.text": f"sqrt(abar) = {r['sqrt_alpha_bar']:.2f}<br>D* = {r['D*']:.3f}, "
                                       f"max K = {r['K(D*)']:.4f}"}] for r in grid["rows"]]
    # Narrow screens: a two-line title at the top left, the legend under the axis, the slider under the legend.
    fig.update_layout(sliders=[_slider("sqrt(abar)", [f"{r['sqrt_alpha_bar']:.2f}" for r in grid["rows"]], -0.7,
                                       method="update", args=args, active=active)],
                      title=_title(args[active][1]["title.text"]), height=660,
                      legend={"orientation": "h", "x": 0.0, "y": -0.3, "yanchor": "top"},
                      xaxis={"title": "D = b / w_1"}, yaxis={"title": "K", "range": [-0.05, top]},
                      margin={"t": TITLE_PX + 46, "b": 300, "l": 60, "r": 20})
    return WebFigure(fig)
