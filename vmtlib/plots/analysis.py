"""Figures of the analysis (``vmtlib.analysis``): gradient conflicts, cost versus T, the
trade-off and the ablation. Inputs are its plain dicts and the JSON files of ``benchmarks/``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

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
