"""The reference points of every table: full fine-tuning and decoders only.

- ``single_task_full``: one backbone per task, every weight trained (O(T);
  T x 27.52M on Swin-T). The reference S_t of Delta_m.
- ``decoders_only``: the backbone frozen, only the task decoders trained (O(1)).
- ``multi_task_full``: one shared backbone trained by all tasks (O(1)).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from vmtlib.backbone import SwinBackbone
from vmtlib.methods.base import OnePassMethod, PerTaskPassMethod


class SingleTaskFull(PerTaskPassMethod):
    """T independent backbones, each fully fine-tuned for its own task.

    Keeps them as ``backbones`` (task t's pass runs ``backbones[t]``), not as
    ``backbone``: the first copy is the backbone it was given.
    """

    method_id = "single_task_full"
    description = "one fully fine-tuned backbone per task (O(T))"
    table_row = 0

    def attach(self, backbone: SwinBackbone) -> None:
        copies = [backbone] + [copy.deepcopy(backbone) for _ in self.tasks[1:]]
        self.backbones = nn.ModuleList(copies)
        self.backbones.requires_grad_(True)

    def task_pass(self, task: int, images: torch.Tensor) -> list[torch.Tensor]:
        return self.backbones[task](images)


class DecodersOnly(OnePassMethod):
    """Frozen backbone; nothing in the encoder is trained."""

    method_id = "decoders_only"
    description = "frozen backbone, train the task decoders only (O(1))"
    table_row = 1


class MultiTaskFull(OnePassMethod):
    """One backbone shared by all tasks, every weight trained."""

    method_id = "multi_task_full"
    description = "one shared backbone, fully fine-tuned by all tasks (O(1))"
    table_row = 2

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config) -> None:
        super().__init__(backbone, tasks, config)
        backbone.requires_grad_(True)
