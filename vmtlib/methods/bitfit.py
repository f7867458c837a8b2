"""BitFit: train the biases only, one set per task ("Multiple") or shared.

BitFit (Ben Zaken et al. 2022; Polyhistor Sec. 5.2) keeps every weight
matrix frozen and trains the additive terms: for a layer y = x W + b only b
moves. In a Swin block that is the bias of ``norm1``, ``attn.qkv``,
``attn.proj``, ``norm2``, ``mlp.fc1`` and ``mlp.fc2``; outside the blocks the
patch projection's and patch-embedding norm's biases and the patch-merging
norms' biases (Polyhistor: "we also tune biases in patch merging layers and
patch projection layers"; timm's merging reduction has no bias). Swin's
relative-position bias tables ``B`` in softmax(Q K^T / sqrt(d) + B) V are
biases too and count.

Per task on Swin-T: 11 sum_l d_l = 48,576 in the blocks, 23,322 in the
relative-position tables, 192 in the patch embedding and 2,688 in the
merging norms: 74,778. ``bitfit`` (four tasks) 0.299M against the papers'
0.30M; ``bitfit_shared`` 0.075M against the VMT-Adapter paper's 0.08M (-6.5%:
the papers' Swin keeps the final LayerNorm before the classifier, whose 768
biases we drop with the head, and 0.0755M would print as 0.08).

``bitfit`` is O(T): task t's pass runs the backbone with the biases b + delta_t
through :func:`torch.func.functional_call`. The trainable tensors delta_t
start at zero, so every task starts from the pretrained network; training
delta_t is training a private copy of b (same count, same gradients; weight
decay pulls towards the pretrained bias instead of towards zero).
``bitfit_shared`` is O(1): the backbone's own biases train.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from vmtlib.backbone import SwinBackbone
from vmtlib.methods.base import OnePassMethod, PerTaskPassMethod, register


def is_bias(name: str) -> bool:
    """BitFit's selection: every ``*.bias`` and every relative-position bias table."""
    last = name.rsplit(".", 1)[-1]
    return last in ("bias", "relative_position_bias_table")


def is_relative_position_table(name: str) -> bool:
    return name.endswith("relative_position_bias_table")


class PerTaskTensors(PerTaskPassMethod):
    """Each task trains its own offset of the backbone tensors that ``select`` picks.

    ``offsets[t][key]`` is delta_t for the tensor ``names[i]`` (key: the name
    with ``.`` replaced by ``-``); task t's pass sees ``p + delta_t``.
    """

    select: Callable[[str], bool]

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: object) -> None:
        super().__init__(backbone, tasks, config)
        params = dict(backbone.named_parameters())
        self.names = [n for n in params if type(self).select(n)]
        self.offsets = nn.ModuleList(
            nn.ParameterDict(
                {self.key(n): nn.Parameter(torch.zeros_like(params[n])) for n in self.names}
            )
            for _ in self.tasks
        )

    @staticmethod
    def key(name: str) -> str:
        return name.replace(".", "-")

    def task_tensors(self, task: int) -> dict[str, torch.Tensor]:
        """``{name: p + delta_task}`` for the selected backbone tensors."""
        params = dict(self.backbone.named_parameters())
        offsets = self.offsets[task]
        return {n: params[n] + offsets[self.key(n)] for n in self.names}

    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        out = {}
        try:
            for i, task in enumerate(self.tasks):
                self.state.task = i
                out[task] = functional_call(self.backbone, self.task_tensors(i), (images,))
        finally:
            self.state.reset()
        return out


def unfreeze(backbone: SwinBackbone, select: Callable[[str], bool]) -> None:
    """Make the backbone tensors that ``select`` picks trainable."""
    for name, p in backbone.named_parameters():
        if select(name):
            p.requires_grad_(True)


@dataclasses.dataclass
class BitFitConfig:
    """BitFit has no hyper-parameters."""


@register
class BitFit(PerTaskTensors):
    """Multiple BitFit: every bias (and relative-position table), one copy per task."""

    method_id = "bitfit"
    description = "BitFit: biases and relative-position tables, one copy per task (O(T))"
    Config = BitFitConfig
    select = staticmethod(is_bias)


@register
class BitFitShared(OnePassMethod):
    """Shared BitFit: the backbone's own biases train, for all tasks at once."""

    method_id = "bitfit_shared"
    description = "BitFit: biases and relative-position tables, shared by all tasks (O(1))"
    Config = BitFitConfig

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: BitFitConfig) -> None:
        super().__init__(backbone, tasks, config)
        unfreeze(backbone, is_bias)
