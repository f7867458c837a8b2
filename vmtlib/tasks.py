"""Task specifications of the PASCAL-Context multi-task benchmark.

One place for what every other module needs to know about a task: the number
of output channels of its decoder, the loss weight of the papers' protocol,
the headline metric with its direction, and the Swin-T single-task full
fine-tuning reference used by Delta_m (VMT-Adapter Table 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TaskSpec:
    """What defines one dense prediction task.

    Attributes:
        name: task id (``semseg``, ``human_parts``, ``sal``, ``normals``).
        channels: output channels of the task's decoder.
        metric: the headline metric key of ``TaskMeter(name).compute()``.
        higher_is_better: direction of ``metric`` (False for the normals' mean angle).
        reference: single-task full fine-tuning on Swin-T (VMT-Adapter Table 2).
        loss_weight: weight of the task's loss in the multi-task sum.
    """

    name: str
    channels: int
    metric: str
    higher_is_better: bool
    reference: float
    loss_weight: float

    @property
    def base(self) -> str:
        """The PASCAL task this one is (``semseg`` for ``semseg`` and its copy ``semseg#2``)."""
        return self.name.partition("#")[0]


TASKS: dict[str, TaskSpec] = {
    "semseg": TaskSpec("semseg", 21, "mIoU", True, 67.21, 1.0),
    "human_parts": TaskSpec("human_parts", 7, "mIoU", True, 61.93, 2.0),
    "sal": TaskSpec("sal", 1, "mIoU", True, 62.35, 5.0),
    "normals": TaskSpec("normals", 3, "mean", False, 17.97, 10.0),
}

ALL_TASKS: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; a clear ``ValueError`` for an unknown id.

    ``"semseg#2"`` names a copy of ``semseg`` (same spec, its own decoder and
    task-specific modules): the cost-versus-number-of-tasks analysis uses
    copies to go beyond the four PASCAL-Context tasks.
    """
    base, _, copy = name.partition("#")
    if base in TASKS and (not copy or copy.isdigit()):
        return TASKS[base] if not copy else replace(TASKS[base], name=name)
    raise ValueError(
        f"unknown task {name!r}; valid tasks are: {', '.join(TASKS)} "
        f"(or a numbered copy such as 'semseg#2')"
    )


def parse_tasks(tasks: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise ``"semseg,sal"`` or an iterable of ids into a validated tuple.

    Raises ``ValueError`` naming the bad id, an empty selection or a duplicate.
    """
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if not isinstance(tasks, list | tuple) or not all(isinstance(t, str) for t in tasks):
        raise ValueError(f"tasks must be task ids in order, as a comma-separated string, a "
                         f"list or a tuple (a set has no order), got {tasks!r}")
    out = tuple(tasks)
    if not out:
        raise ValueError(f"no task given; valid tasks are: {', '.join(TASKS)}")
    for t in out:
        get_task(t)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate task in {out!r}")
    return out
