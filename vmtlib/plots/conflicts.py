"""Figures of gradient conflicts between tasks on the shared parameters (Eq. 8 of
VMT-Adapter): the distribution of the cosines and one heat map per method.

Inputs are the plain dicts of ``vmtlib.analysis.conflicts`` and
``benchmarks/results/gradient_conflicts.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


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
