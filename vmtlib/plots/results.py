"""Figures of trained and counted results: parameter tables and breakdowns, the
per-task comparison, the trade-off (Delta_m against parameters) and the ablation.

Inputs are the plain dicts of ``vmtlib.analysis``, ``vmtlib.params`` and the JSON
files of ``benchmarks/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from vmtlib.plots.common import FAMILY_STYLE


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
        color, marker, label = FAMILY_STYLE[one_pass]
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
