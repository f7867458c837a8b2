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
