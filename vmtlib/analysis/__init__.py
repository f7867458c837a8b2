"""Analysis beyond the accuracy table, one module per question:

- :mod:`~vmtlib.analysis.conflicts`: gradient conflicts between tasks (VMT-Adapter
  Eq. 7-8, Fig. 4): theta_sh, per-task gradients, cosine matrices, a recorder;
- :mod:`~vmtlib.analysis.cost`: FLOPs and memory versus the number of tasks
  (MTLoRA supplement Table 3), exact, on the meta device;
- :mod:`~vmtlib.analysis.latency`: wall-clock training-step and inference latency
  versus the number of tasks;
- :mod:`~vmtlib.analysis.results`: the rho / m ablation (VMT-Adapter Table 3),
  results files and the Delta_m / parameters trade-off (Fig. 1).

No plotting here (``vmtlib.plots`` draws); every function returns plain numbers,
tensors or JSON-ready dicts, so notebooks and widgets read the results files
without training. Results paths are arguments: the library does not know the
repository's layout. Every public name is importable from ``vmtlib.analysis``.
"""

from vmtlib.analysis.conflicts import (
    TASK_INDEXED_NAMES,
    TASK_MODULE_LISTS,
    GradientConflictRecorder,
    conflict_summary,
    cosine_matrix,
    is_task_indexed,
    pair_key,
    pairwise_cosines,
    shared_parameters,
    task_gradients,
)
from vmtlib.analysis.cost import (
    DEFAULT_COST_METHODS,
    available_methods,
    cost_markdown,
    cost_table,
    decoder_flops,
    forward_flops,
    model_cost,
    task_set,
)
from vmtlib.analysis.latency import copies_loss, latency_of, measure_latency, random_targets
from vmtlib.analysis.results import (
    PAPER_TABLE3,
    PAPER_TABLE3_TASKS,
    AblationSetting,
    ablation_settings,
    collect_results,
    headline_scores,
    iter_results,
    load_ablation,
    reference_from_compare,
    tradeoff_points,
)
from vmtlib.utils import sync_device, write_json_atomic

__all__ = [
    "DEFAULT_COST_METHODS", "PAPER_TABLE3", "PAPER_TABLE3_TASKS", "TASK_INDEXED_NAMES",
    "TASK_MODULE_LISTS", "AblationSetting", "GradientConflictRecorder", "ablation_settings",
    "available_methods", "collect_results", "conflict_summary", "copies_loss", "cosine_matrix",
    "cost_markdown", "cost_table", "decoder_flops", "forward_flops", "headline_scores",
    "is_task_indexed", "iter_results", "latency_of", "load_ablation", "measure_latency",
    "model_cost", "pair_key", "pairwise_cosines", "random_targets", "reference_from_compare",
    "shared_parameters", "sync_device", "task_gradients", "task_set", "tradeoff_points",
    "write_json_atomic",
]
