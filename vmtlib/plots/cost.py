"""Figures of execution cost versus the number of tasks T: forward GFLOPs,
activation memory and latency, O(1) methods solid and O(T) ones dashed.

Inputs are the rows of ``vmtlib.analysis.cost`` (``cost_table``, ``measure_latency``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from vmtlib.plots.common import FAMILY_STYLE


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
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=FAMILY_STYLE[one_pass][1],
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
        style = dict(color=colors[i % len(colors)], marker=FAMILY_STYLE[one_pass][1], ms=4,
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
