"""Figures of the course. Matplotlib is imported here only, never by the core modules.

Every figure a notebook shows is drawn by a function of this module and saved
with :func:`save_figure` into the repository's ``figures/`` folder, so the
notebooks regenerate every committed figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def save_figure(fig: Figure, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` (modest size) and return the path."""
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / f"{name}.png"
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
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = list(dict.fromkeys(r["method"] for r in flops_rows))
    methods += [m for m in dict.fromkeys(r["method"] for r in latency_rows) if m not in methods]
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
    for p in points:
        ax.annotate(p["label"], (max(p["params_m"], floor), p["delta_m"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
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
