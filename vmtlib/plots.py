"""Figures of the course. Matplotlib is imported here only, never by the core modules.

The figures of the course's results are drawn by functions of this module (a
few small teaching plots in notebooks 01-03 use matplotlib directly), and every
committed figure is saved with :func:`save_figure` into the repository's
``figures/`` folder, so the notebooks regenerate them. ``VMTLIB_FIGURES=DIR`` sends them to
``DIR`` instead (a run that must leave the committed figures alone).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def save_figure(fig: Figure, name: str, dpi: int = 110, folder: str | Path | None = None
                ) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (modest size) and return the path;
    ``folder`` defaults to ``$VMTLIB_FIGURES`` when set, else ``figures/``."""
    folder = Path(folder or os.environ.get("VMTLIB_FIGURES") or FIGURES)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def plot_parameter_table(rows: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """Horizontal bars of trainable encoder parameters (log scale), O(1) vs O(T) coloured.

    ``rows``: the output of :func:`vmtlib.params.parameter_table`.
    """
    floor = 0.005  # millions: zero-parameter encoders (decoders_only) sit at the axis
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.4))
    names = [r["method"] for r in rows][::-1]
    values = [max(r["encoder"] / 1e6, floor) for r in rows][::-1]
    colors = ["tab:blue" if r["one_pass"] else "tab:orange" for r in rows][::-1]
    ax.barh(names, values, color=colors)
    for y, (v, r) in enumerate(zip(values, rows[::-1])):
        ax.text(v * 1.1, y, f"{r['encoder'] / 1e6:.2f}M", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(floor, max(values) * 10)
    ax.set_xlabel("trainable encoder parameters (millions, log scale)")
    ax.barh([names[0]], [0], color="tab:blue", label="one backbone pass for all tasks, O(1)")
    ax.barh([names[0]], [0], color="tab:orange", label="one pass per task, O(T)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(rows)), ncol=2,
              fontsize=8, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_comparison(rows: Sequence[dict[str, Any]]) -> Figure:
    """One panel per task: each run's headline metric (the training issue's comparison).

    ``rows``: results with ``name``, ``pretrained``, ``metrics`` (as in ``final.json``).
    """
    panels = [("semseg", "mIoU", "semseg mIoU (%) ↑"), ("human_parts", "mIoU", "parts mIoU (%) ↑"),
              ("sal", "mIoU", "saliency mIoU (%) ↑"), ("normals", "mean", "normals mErr (°) ↓")]
    fig, axes = plt.subplots(1, 4, figsize=(13, 0.35 * len(rows) + 1.5), sharey=True)
    names = [r["name"] for r in rows][::-1]
    for ax, (task, key, label) in zip(axes, panels):
        values = [r["metrics"][task][key] for r in rows][::-1]
        colors = ["tab:gray" if not r["pretrained"] else "tab:blue" for r in rows][::-1]
        ax.barh(names, values, color=colors)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_xlim(0, max(values) * 1.25)
    axes[0].barh([names[0]], [0], color="tab:gray", label="random-init backbone (control)")
    axes[0].barh([names[0]], [0], color="tab:blue", label="pretrained swin_nano")
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


# ----------------------------------------------------------------------------- analysis figures
# Inputs are the plain dicts of ``vmtlib.analysis`` and the JSON files of ``benchmarks/``.

_FAMILY_STYLE = {True: ("tab:blue", "o", "one pass for all tasks, O(1)"),
                 False: ("tab:orange", "s", "one pass per task, O(T)")}


def plot_gradient_conflicts(
    methods: dict[str, dict[str, Any]], bins: int = 40, title: str = ""
) -> Figure:
    """Fig. 4 of VMT-Adapter: the distribution of cos phi_ij (Eq. 8) over training.

    ``methods``: ``{method: {"cosines": [...], "summary": conflict_summary(...)}}``
    (the ``methods`` entry of ``benchmarks/results/gradient_conflicts.json``).
    Left: overlaid histograms (density) with P(cos > 0) / P(cos < 0) in the
    legend; right: the mean cosine over the recorded steps when ``"steps"``
    (a list of ``{"step", "mean"}``) is given.
    """
    import numpy as np

    with_steps = any(m.get("steps") for m in methods.values())
    fig, axes = plt.subplots(1, 2 if with_steps else 1, figsize=(11 if with_steps else 6, 3.6))
    axes = np.atleast_1d(axes)
    edges = np.linspace(-1, 1, bins + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, data) in enumerate(methods.items()):
        cos = np.asarray([c for c in data["cosines"] if c == c], dtype=float)
        s = data.get("summary", {})
        label = (f"{name}: P(cos>0)={s.get('P(cos>0)', float('nan')):.2f}, "
                 f"P(cos<0)={s.get('P(cos<0)', float('nan')):.2f}")
        axes[0].hist(cos, bins=edges, density=True, alpha=0.45, color=colors[i % len(colors)],
                     label=label)
        if with_steps and data.get("steps"):
            steps = [r["step"] for r in data["steps"]]
            means = [r["mean"] for r in data["steps"]]
            axes[1].plot(steps, means, color=colors[i % len(colors)], label=name)
    axes[0].axvline(0, color="black", lw=0.8)
    axes[0].set_xlabel(r"$\cos\phi_{ij}$ between task gradients on $\theta_{sh}$ (Eq. 8)")
    axes[0].set_ylabel("density over pairs and steps")
    axes[0].legend(fontsize=7, loc="upper left")
    if with_steps:
        axes[1].axhline(0, color="black", lw=0.8)
        axes[1].set_xlabel("training step")
        axes[1].set_ylabel(r"mean $\cos\phi_{ij}$ over pairs")
        axes[1].legend(fontsize=8)
    fig.suptitle(title or "Gradient conflicts between tasks on the shared parameters")
    fig.tight_layout()
    return fig


def plot_cost_vs_tasks(
    flops_rows: Sequence[dict[str, Any]],
    latency_rows: Sequence[dict[str, Any]] = (),
    title: str = "",
) -> Figure:
    """Cost versus the number of tasks T (MTLoRA supplement Table 3 as a figure).

    ``flops_rows``: :func:`vmtlib.analysis.cost_table` (GFLOPs and activation
    memory per (method, T)); ``latency_rows``: :func:`vmtlib.analysis.measure_latency`
    (training-step and inference latency as ratios to T = 1). Solid lines are
    O(1) methods, dashed ones O(T).
    """
    panels = [("gflops", "forward GFLOPs"), ("activation_mb", "activation memory (MB)")]
    if latency_rows:
        panels += [("train_ratio", "training-step latency / T=1"),
                   ("infer_ratio", "inference latency / T=1")]
    ncols = 2
    nrows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 3.4 * nrows), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in flops_rows))
    methods += [m for m in dict.fromkeys(r["method"] for r in latency_rows) if m not in methods]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(methods) > len(colors):
        colors = list(plt.get_cmap("tab20").colors)
    color = {m: colors[i % len(colors)] for i, m in enumerate(methods)}
    for ax, (key, label) in zip(axes.flat, panels):
        rows = flops_rows if key in ("gflops", "activation_mb") else latency_rows
        for m in methods:
            pts = sorted((r["T"], r[key]) for r in rows if r["method"] == m)
            if not pts:
                continue
            one_pass = next(r["one_pass"] for r in rows if r["method"] == m)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=_FAMILY_STYLE[one_pass][1],
                    ms=3, ls="-" if one_pass else "--", color=color[m], label=m)
        ax.set_xlabel("number of tasks T")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, ncol=2)
    if flops_rows:
        r0 = flops_rows[0]
        axes.flat[0].set_title(f"solid: O(1), dashed: O(T)  ({r0.get('backbone', '')})",
                               fontsize=9)
    fig.suptitle(title or "Cost versus number of tasks")
    fig.tight_layout()
    return fig


def annotate_without_overlap(ax: Any, xy: Sequence[tuple[float, float]],
                             labels: Sequence[str], fontsize: float = 7) -> list[Any]:
    """Label each point at the first of a few offsets (right, below, left, further
    out) whose text box overlaps no marker and no label placed before, so that
    points in a cluster (the trade-off figure's adapters) stay readable; a label
    placed further out than the nearest ring gets a thin leader line to its point.
    Set the axes' scales before calling."""
    offsets = [(dx, dy, ha) for dy in (3, -9, 13, -19, 23, -29, 33, -39)
               for dx, ha in ((5, "left"), (-5, "right"))]
    from matplotlib.transforms import Bbox

    ax.autoscale_view()
    renderer = ax.figure.canvas.get_renderer()
    markers = ax.transData.transform(np.asarray(xy, dtype=float).reshape(-1, 2))
    placed = [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in markers]  # the markers

    def text_box(label: str, xy: tuple[float, float], dx: float, dy: float, ha: str) -> Bbox:
        trial = ax.annotate(label, xy, xytext=(dx, dy), textcoords="offset points",
                            fontsize=fontsize, ha=ha)
        box = trial.get_window_extent(renderer)
        trial.remove()
        return box

    texts = []
    for (x, y), label in sorted(zip(xy, labels), key=lambda t: (-t[0][1], t[0][0])):
        for dx, dy, ha in offsets:
            box = text_box(label, (x, y), dx, dy, ha)
            if not any(box.overlaps(b) for b in placed):
                break
        else:  # every offset collides: keep the first one
            dx, dy, ha = offsets[0]
            box = text_box(label, (x, y), dx, dy, ha)
        # beyond the nearest ring, a leader line says whose label it is
        leader = ({"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 0, "shrinkB": 3}
                  if abs(dy) > 9 else None)
        text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points",
                           fontsize=fontsize, ha=ha, arrowprops=leader)
        placed.append(box)
        texts.append(text)
    return texts


def plot_tradeoff(points: Sequence[dict[str, Any]], title: str = "",
                  xlabel: str = "trainable encoder parameters (millions, log scale)") -> Figure:
    """VMT-Adapter Fig. 1: Delta_m against trainable parameters (log x).

    ``points``: :func:`vmtlib.analysis.tradeoff_points`. Circles: O(1) methods,
    squares: O(T) ones; zero-parameter encoders sit at a floor on the axis.
    """
    floor = 1e-3  # millions
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for one_pass in (True, False):
        color, marker, label = _FAMILY_STYLE[one_pass]
        pts = [p for p in points if p["one_pass"] == one_pass]
        if pts:
            ax.scatter([max(p["params_m"], floor) for p in pts], [p["delta_m"] for p in pts],
                       c=color, marker=marker, label=label, zorder=3)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    annotate_without_overlap(ax, [(max(p["params_m"], floor), p["delta_m"]) for p in points],
                             [p["label"] for p in points])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$\Delta_m$ (%)")
    ax.grid(alpha=0.3, which="both")
    if points:
        ax.legend(fontsize=8)
    ax.set_title(title or r"Trade-off: $\Delta_m$ versus trainable parameters")
    fig.tight_layout()
    return fig


def plot_ablation(rows: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """VMT-Adapter Table 3 as a figure: Delta_m of each rho / m setting, ours next to
    the paper's (PASCAL-Context, Swin-T). ``rows``: :func:`vmtlib.analysis.load_ablation`."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels = [r["key"] for r in rows]
    x = np.arange(len(rows))
    ours = [r.get("delta_m") if r.get("delta_m") is not None else np.nan for r in rows]
    paper = [(r.get("paper") or {}).get("delta_m", np.nan) for r in rows]
    ax.bar(x - 0.2, ours, 0.4, label="ours (SyntheticScenes, swin_nano)")
    ax.bar(x + 0.2, paper, 0.4, label="paper (PASCAL-Context, Swin-T)")
    ax.set_xticks(x, labels, rotation=25, ha="right", fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(r"$\Delta_m$ (%)")
    ax.legend(fontsize=8)
    ax.set_title(title or "Ablation: VMT-Adapter rho and VMT-Adapter-Lite m")
    fig.tight_layout()
    return fig


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved class ids), ``(n, 3)`` in [0, 1]."""
    cmap = np.zeros((n, 3))
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap / 255.0


def label_to_rgb(key: str, x: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` picture of a sample entry in the PASCAL conventions.

    ``image``: ``(3, H, W)`` in [0, 1]; ``semseg`` / ``human_parts``: class ids,
    VOC colours, 255 (ignore) white; ``sal``: {0, 1} grey, 255 white;
    ``normals``: ``(3, H, W)`` as the normals_distill PNG shows them,
    (n + 1) / 2, black where invalid (all-zero).
    """
    if key == "image":
        return np.clip(x.transpose(1, 2, 0), 0, 1)
    if key.startswith("normals"):
        vis = (x.transpose(1, 2, 0) + 1.0) / 2.0
        vis[(x == 0).all(0)] = 0.0
        return np.clip(vis, 0, 1)
    out = np.ones((*x.shape, 3))
    known = x != 255
    if key.startswith("sal"):
        out[known] = x[known, None].astype(float)
    else:
        out[known] = voc_palette()[x[known]]
    return out


def plot_samples(
    samples: Sequence[dict[str, Any]],
    keys: Sequence[str] = ("image", "semseg", "human_parts", "sal", "normals"),
    row_titles: Sequence[str] | None = None,
    size: float = 2.0,
) -> Figure:
    """A grid: one row per sample (a dict of tensors or arrays), one column per key."""
    fig, axes = plt.subplots(len(samples), len(keys), figsize=(size * len(keys),
                                                              size * len(samples)))
    axes = np.atleast_2d(axes)
    for r, sample in enumerate(samples):
        for c, key in enumerate(keys):
            ax = axes[r, c]
            x = sample[key]
            x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
            ax.imshow(label_to_rgb(key, x), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(key, fontsize=10)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- VMT-Adapter(-Lite)


def plot_flops_vs_tasks(
    rows: Sequence[dict[str, Any]],
    reference: dict[str, Sequence[float]] | None = None,
    title: str = "",
) -> Figure:
    """Forward GFLOPs versus the number of tasks T, and the same as a ratio to T = 1.

    ``rows``: ``{"method", "one_pass", "T", "gflops"}`` per (method, T) (e.g. from
    :func:`vmtlib.analysis.cost_table`). ``reference``: ``{label: [ratio or GFLOPs
    at T = 1, 2, ...]}`` drawn in black on the ratio panel, divided by its first value
    (MTLoRA supplement Table 3: ``{"individual": [...], "shared": [...]}``).
    Solid lines: one pass for all tasks (O(1)); dashed: one pass per task (O(T)).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, m in enumerate(methods):
        pts = sorted((r["T"], r["gflops"], r["one_pass"]) for r in rows if r["method"] == m)
        one_pass = pts[0][2]
        ts = [p[0] for p in pts]
        style = dict(color=colors[i % len(colors)], marker=_FAMILY_STYLE[one_pass][1], ms=4,
                     ls="-" if one_pass else "--", label=f"{m} ({'O(1)' if one_pass else 'O(T)'})")
        axes[0].plot(ts, [p[1] for p in pts], **style)
        axes[1].plot(ts, [p[1] / pts[0][1] for p in pts], **style)
    for j, (label, values) in enumerate((reference or {}).items()):
        ts = list(range(1, len(values) + 1))
        axes[1].plot(ts, [v / values[0] for v in values], color="black", marker="x", ms=7,
                     ls=(0, (1, 2)) if j % 2 else "-", lw=1, label=label)
    axes[0].set_ylabel("forward GFLOPs per image")
    axes[1].set_ylabel("GFLOPs / GFLOPs at T = 1")
    for ax in axes:
        ax.set_xlabel("number of tasks T")
        ax.grid(alpha=0.3)
        ax.set_xticks(sorted({r["T"] for r in rows}))
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "Cost versus number of tasks: one pass per task (dashed) or one for all "
                 "(solid)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_parameter_breakdown(
    bars: Sequence[dict[str, Any]],
    sweep: dict[str, Any] | None = None,
    title: str = "",
) -> Figure:
    """Trainable encoder parameters split into their terms, next to the paper's totals.

    ``bars``: ``{"label", "parts": {term: count}, "paper": millions or None}`` per
    setting (VMT-Adapter Table 3: rho = 1..8, m = 3, 6, 12), drawn as stacked bars
    with the paper's total as a black tick. ``sweep`` (optional, a second panel):
    ``{"x": [m, ...], "xlabel": str, "curves": {label: [count, ...]}}``, counts
    against a hyper-parameter on a log-2 axis.
    """
    fig, axes = plt.subplots(1, 2 if sweep else 1, figsize=(12 if sweep else 7, 4),
                             squeeze=False, gridspec_kw={"width_ratios": [3, 2]} if sweep else None)
    ax = axes[0, 0]
    terms = list(dict.fromkeys(t for b in bars for t in b["parts"]))
    x = np.arange(len(bars))
    bottom = np.zeros(len(bars))
    for term in terms:
        vals = np.array([b["parts"].get(term, 0) / 1e6 for b in bars])
        ax.bar(x, vals, 0.6, bottom=bottom, label=term)
        bottom += vals
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.2f}", ha="center", va="bottom", fontsize=8)
    paper = [(i, b["paper"]) for i, b in enumerate(bars) if b.get("paper") is not None]
    if paper:
        ax.scatter([p[0] + 0.38 for p in paper], [p[1] for p in paper], marker="<", color="black",
                   s=30, zorder=3, label="paper (Table 3)")
    ax.set_xticks(x, [b["label"] for b in bars], fontsize=8)
    ax.set_ylabel("trainable encoder parameters (M)")
    ax.set_ylim(0, bottom.max() * 1.12)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    if sweep:
        ax2 = axes[0, 1]
        for label, counts in sweep["curves"].items():
            ax2.plot(sweep["x"], [c / 1e6 for c in counts], marker="o", ms=4, label=label)
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(sweep["x"], [str(v) for v in sweep["x"]])
        ax2.set_xlabel(sweep.get("xlabel", ""))
        ax2.set_ylabel("trainable encoder parameters (M)")
        ax2.grid(alpha=0.3, which="both")
        ax2.legend(fontsize=7)
    fig.suptitle(title or "Where the trainable parameters go", fontsize=11)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ a Swin block (notebook 01)


def plot_swin_block(
    sites: dict[str, Sequence[tuple[str, str]]],
    dots: tuple[Sequence[str], str, str] | None = None,
    title: str = "",
) -> Figure:
    """One Swin block as boxes, with the places where PEFT methods act written beside them.

    ``sites`` maps a place to ``[(label, colour), ...]``. Places: ``"norm1"``,
    ``"qkv"``, ``"softmax"`` (window attention with the relative-position bias
    B), ``"proj"``, ``"attn_out"`` (the attention branch before its residual
    add), ``"norm2"``, ``"fc1"``, ``"fc2"``, ``"mlp_parallel"`` (beside the MLP,
    fed with LN2's output) and ``"mlp_out"`` (the MLP branch before its add).
    ``dots``: ``(places, colour, label)`` puts a dot on each of those boxes
    (e.g. the boxes whose biases BitFit trains).
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    boxes = {  # place: (y, text, face colour)
        "input": (13.0, r"$x$  (B, H, W, d)", "white"),
        "norm1": (12.0, "LN1", "#e8e8e8"),
        "qkv": (10.9, "qkv: Linear d → 3d  (per window of M×M tokens)", "#dbe9f6"),
        "softmax": (9.9, r"SoftMax$(QK^\top/\sqrt{d_h} + B)\,V$", "#dbe9f6"),
        "proj": (8.9, "proj: Linear d → d", "#dbe9f6"),
        "add1": (7.9, "", "white"),
        "norm2": (6.9, "LN2", "#e8e8e8"),
        "fc1": (5.8, "fc1: Linear d → 4d, GELU", "#fde7d4"),
        "fc2": (4.8, "fc2: Linear 4d → d", "#fde7d4"),
        "add2": (3.8, "", "white"),
        "output": (2.8, r"$x'$  (B, H, W, d)", "white"),
    }
    ys = {k: v[0] for k, v in boxes.items()}
    ys["attn_out"] = (ys["proj"] + ys["add1"]) / 2
    ys["mlp_out"] = (ys["fc2"] + ys["add2"]) / 2
    ys["mlp_parallel"] = (ys["fc1"] + ys["fc2"]) / 2
    cx, width, r = 3.0, 4.2, 0.22
    fig, ax = plt.subplots(figsize=(10, 7.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(2.4, 13.4)
    ax.axis("off")

    def top(k: str) -> float:
        return ys[k] + (r if k.startswith("add") else 0.3)

    def bottom(k: str) -> float:
        return ys[k] - (r if k.startswith("add") else 0.3)

    for key, (y, text, face) in boxes.items():
        if key.startswith("add"):
            ax.add_patch(plt.Circle((cx, y), r, fc="white", ec="black"))
            ax.text(cx, y, "+", ha="center", va="center", fontsize=12)
            continue
        edge = "none" if key in ("input", "output") else "black"
        ax.add_patch(FancyBboxPatch((cx - width / 2, y - 0.3), width, 0.6,
                                    boxstyle="round,pad=0.02", fc=face, ec=edge))
        ax.text(cx, y, text, ha="center", va="center", fontsize=9)
    order = list(boxes)
    for a, b in zip(order, order[1:]):
        ax.add_patch(FancyArrowPatch((cx, bottom(a)), (cx, top(b)), arrowstyle="-|>",
                                     mutation_scale=10))
    x0 = cx - width / 2 - 0.3  # residual connections on the left
    for branch_y, end in (((bottom("input") + top("norm1")) / 2, "add1"),
                          ((bottom("add1") + top("norm2")) / 2, "add2")):
        ax.plot([cx, x0, x0], [branch_y, branch_y, ys[end]], color="gray", lw=1)
        ax.add_patch(FancyArrowPatch((x0, ys[end]), (cx - r, ys[end]), arrowstyle="-|>",
                                     mutation_scale=10, color="gray"))
    ax.text(x0 - 0.1, (ys["qkv"] + ys["proj"]) / 2, "(S)W-MSA", rotation=90, ha="right",
            va="center", fontsize=8, color="#3b6ea5")
    ax.text(x0 - 0.1, (ys["fc1"] + ys["fc2"]) / 2, "MLP", rotation=90, ha="right",
            va="center", fontsize=8, color="#b5651d")
    if dots is not None:
        places, color, label = dots
        for key in places:
            ax.plot(cx - width / 2 + 0.15, ys[key], "o", color=color, ms=6)
        ax.plot([], [], "o", color=color, ms=6, label=label)
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    for key, labels in sites.items():
        if key not in ys:
            raise ValueError(f"unknown place {key!r}; places: {sorted(ys)}")
        for i, (label, color) in enumerate(labels):
            ty = ys[key] + 0.2 * (len(labels) - 1) - 0.4 * i
            ax.annotate(label, xy=(cx + width / 2 + 0.05, ys[key]),
                        xytext=(cx + width / 2 + 0.8, ty), fontsize=8.5, color=color,
                        va="center", arrowprops=dict(arrowstyle="-", color=color, lw=0.8))
    ax.set_title(title or "Where each method acts in one Swin block", fontsize=11)
    fig.tight_layout()
    return fig


def predictions_as_labels(outputs: dict[str, Any]) -> dict[str, Any]:
    """Raw model outputs of one image (``{task: (C, H, W)}``) in the label conventions,
    for :func:`plot_samples`: class ids (argmax), saliency ``sigmoid > 0.5``,
    unit normals."""
    import torch

    out = {}
    for task, y in outputs.items():
        y = y.detach().float().cpu()
        base = task.split("#")[0]
        if base in ("semseg", "human_parts"):
            out[task] = y.argmax(0)
        elif base == "sal":
            out[task] = (torch.sigmoid(y[0]) > 0.5).long()
        else:
            out[task] = torch.nn.functional.normalize(y, dim=0)
    return out


# ------------------------------------------------------- gradient conflicts and ablation (08, 09)


def plot_cosine_matrices(
    matrices: dict[str, tuple[Any, Sequence[str]]], title: str = ""
) -> Figure:
    """Eq. 8 for every pair of tasks, one heat map per method.

    ``matrices``: ``{label: (C, tasks)}`` with ``C`` the ``(T, T)`` output of
    :func:`vmtlib.analysis.cosine_matrix` (a tensor or an array) and its task order.
    Red: the tasks' gradients on theta_sh agree (cos > 0); blue: they conflict.
    """
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.3 * len(matrices) + 1.8, 3.6),
                             squeeze=False, layout="constrained")
    image = None
    for k, (ax, (label, (cos, tasks))) in enumerate(zip(axes[0], matrices.items())):
        c = cos.detach().cpu().numpy() if hasattr(cos, "detach") else np.asarray(cos, float)
        image = ax.imshow(c, cmap="RdBu_r", vmin=-1, vmax=1)
        for i in range(c.shape[0]):
            for j in range(c.shape[1]):
                ax.text(j, i, "-" if c[i, j] != c[i, j] else f"{c[i, j]:+.2f}", ha="center",
                        va="center", fontsize=8, color="white" if abs(c[i, j]) > 0.6 else "black")
        ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(tasks)), tasks if k == 0 else [], fontsize=8)
        ax.set_title(label, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label=r"$\cos\phi_{ij}$ (Eq. 8)")
    fig.suptitle(title or r"Task-gradient cosines on $\theta_{sh}$", fontsize=11)
    return fig


def plot_ablation_curve(points: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """VMT-Adapter Table 3 as curves: Delta_m against trainable encoder parameters.

    ``points``: ``{"source", "method", "label", "params_m", "delta_m"}`` (e.g.
    :func:`vmtlib.widgets.table3_points`); one panel per source (the paper's
    PASCAL-Context numbers and ours are not on one scale), one line per method
    through its settings, each point labelled (``rho=4``, ``m=3``).
    """
    sources = list(dict.fromkeys(p["source"] for p in points))
    fig, axes = plt.subplots(1, max(1, len(sources)), figsize=(5.2 * max(1, len(sources)), 3.8),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = list(dict.fromkeys(p["method"] for p in points))
    for ax, source in zip(axes[0], sources):
        for i, method in enumerate(methods):
            pts = sorted((p for p in points if p["source"] == source and p["method"] == method),
                         key=lambda p: p["params_m"])
            if not pts:
                continue
            ax.plot([p["params_m"] for p in pts], [p["delta_m"] for p in pts], marker="o",
                    ms=5, color=colors[i % len(colors)], label=method)
            for p in pts:
                ax.annotate(p["label"], (p["params_m"], p["delta_m"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.12)
        lo, hi = ax.get_xlim()
        ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("trainable encoder parameters (millions, log scale)")
        ax.set_ylabel(r"$\Delta_m$ (%)")
        ax.set_title(source, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title or r"Ablation (Table 3): $\Delta_m$ against trainable parameters",
                 fontsize=11)
    fig.tight_layout()
    return fig
