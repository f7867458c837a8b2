"""Figures of the course. Matplotlib is imported here only, never by the core modules.

The figures of the course's results are drawn by functions of this package (a
few small teaching plots in notebooks 01-03 use matplotlib directly), and every
committed figure is saved with :func:`save_figure` into the repository's
``figures/`` folder, so the notebooks regenerate them. ``VMTLIB_FIGURES=DIR`` sends them to
``DIR`` instead (a run that must leave the committed figures alone).

One module per topic; every public name is re-exported here, so
``from vmtlib.plots import plot_tradeoff`` is the way in:

- :mod:`~vmtlib.plots.common`: :func:`save_figure`, the figures folder, the O(1)/O(T) style;
- :mod:`~vmtlib.plots.samples`: samples and predictions in the PASCAL conventions;
- :mod:`~vmtlib.plots.results`: parameter counts, comparisons, trade-off, ablation;
- :mod:`~vmtlib.plots.cost`: GFLOPs, memory and latency versus the number of tasks;
- :mod:`~vmtlib.plots.conflicts`: gradient conflicts between tasks (Eq. 8);
- :mod:`~vmtlib.plots.diagrams`: a Swin block, VMT-Adapter's placement, Polyhistor's kernels.
"""

from vmtlib.plots.common import FIGURES, save_figure
from vmtlib.plots.conflicts import plot_cosine_matrices, plot_gradient_conflicts
from vmtlib.plots.cost import plot_cost_vs_tasks, plot_flops_vs_tasks
from vmtlib.plots.diagrams import (
    kronecker_tiles,
    plot_scaling_kernels,
    plot_swin_block,
    plot_vmt_adapter,
)
from vmtlib.plots.results import (
    annotate_without_overlap,
    plot_ablation,
    plot_ablation_curve,
    plot_comparison,
    plot_parameter_breakdown,
    plot_parameter_table,
    plot_tradeoff,
)
from vmtlib.plots.samples import label_to_rgb, plot_samples, predictions_as_labels, voc_palette

__all__ = [
    "FIGURES",
    "annotate_without_overlap",
    "kronecker_tiles",
    "label_to_rgb",
    "plot_ablation",
    "plot_ablation_curve",
    "plot_comparison",
    "plot_cosine_matrices",
    "plot_cost_vs_tasks",
    "plot_flops_vs_tasks",
    "plot_gradient_conflicts",
    "plot_parameter_breakdown",
    "plot_parameter_table",
    "plot_samples",
    "plot_scaling_kernels",
    "plot_swin_block",
    "plot_tradeoff",
    "plot_vmt_adapter",
    "predictions_as_labels",
    "save_figure",
    "voc_palette",
]
