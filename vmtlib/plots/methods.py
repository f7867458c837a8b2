"""Figures of the methods: the parameter table, the comparison of runs, FLOPs and
parameters of VMT-Adapter(-Lite) versus T, and where each method acts in a Swin block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from vmtlib.plots.analysis import _FAMILY_STYLE


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
