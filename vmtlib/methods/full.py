"""The reference points of every table: full fine-tuning and decoders only.

- ``single_task_full``: one backbone per task, every weight trained (O(T);
  T x 27.52M on Swin-T). The reference S_t of Delta_m.
- ``decoders_only``: the backbone frozen, only the task decoders trained (O(1)).
- ``multi_task_full``: one shared backbone trained by all tasks (O(1)).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from vmtlib.backbone import SwinBackbone
from vmtlib.methods.base import Method, OnePassMethod, register


@register
class SingleTaskFull(Method):
    """T independent backbones, each fully fine-tuned for its own task."""

    method_id = "single_task_full"
    description = "one fully fine-tuned backbone per task (O(T))"
    one_pass = False

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: Config) -> None:
        super().__init__(backbone, tasks, config)
        copies = [backbone] + [copy.deepcopy(backbone) for _ in tasks[1:]]
        self.backbones = nn.ModuleList(copies)
        self.backbones.requires_grad_(True)

    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        return {t: bb(images) for t, bb in zip(self.tasks, self.backbones)}


@register
class DecodersOnly(OnePassMethod):
    """Frozen backbone; nothing in the encoder is trained."""

    method_id = "decoders_only"
    description = "frozen backbone, train the task decoders only (O(1))"

    @dataclasses.dataclass
    class Config:
        pass


@register
class MultiTaskFull(OnePassMethod):
    """One backbone shared by all tasks, every weight trained."""

    method_id = "multi_task_full"
    description = "one shared backbone, fully fine-tuned by all tasks (O(1))"

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: Config) -> None:
        super().__init__(backbone, tasks, config)
        backbone.requires_grad_(True)
