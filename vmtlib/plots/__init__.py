"""Figures of the course. Matplotlib is imported here only, never by the core modules.

The figures of the course's results are drawn by functions of this package (a
few small teaching plots in notebooks 01-03 use matplotlib directly), and every
committed figure is saved with :func:`save_figure` into the repository's
``figures/`` folder, so the notebooks regenerate them. ``VMTLIB_FIGURES=DIR`` sends them to
``DIR`` instead (a run that must leave the committed figures alone). The figures live in
:mod:`~vmtlib.plots.methods`, :mod:`~vmtlib.plots.analysis` and :mod:`~vmtlib.plots.samples`;
every one is importable from ``vmtlib.plots``.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

FIGURES = Path(__file__).resolve().parents[2] / "figures"


def save_figure(fig: Figure, name: str, dpi: int = 110, folder: str | Path | None = None
                ) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (modest size) and return the path;
    ``folder`` defaults to ``$VMTLIB_FIGURES`` when set, else ``figures/``."""
    folder = Path(folder or os.environ.get("VMTLIB_FIGURES") or FIGURES)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


from vmtlib.plots.analysis import (  # noqa: E402  (after save_figure, which they do not need)
    annotate_without_overlap,
    plot_ablation,
    plot_ablation_curve,
    plot_cosine_matrices,
    plot_cost_vs_tasks,
    plot_gradient_conflicts,
    plot_tradeoff,
)
from vmtlib.plots.methods import (  # noqa: E402
    plot_comparison,
    plot_flops_vs_tasks,
    plot_parameter_breakdown,
    plot_parameter_table,
    plot_swin_block,
)
from vmtlib.plots.samples import (  # noqa: E402
    label_to_rgb,
    plot_samples,
    predictions_as_labels,
    voc_palette,
)

__all__ = [
    "FIGURES", "annotate_without_overlap", "label_to_rgb", "plot_ablation",
    "plot_ablation_curve", "plot_comparison", "plot_cosine_matrices", "plot_cost_vs_tasks",
    "plot_flops_vs_tasks", "plot_gradient_conflicts", "plot_parameter_breakdown",
    "plot_parameter_table", "plot_samples", "plot_swin_block", "plot_tradeoff",
    "predictions_as_labels", "save_figure", "voc_palette",
]
