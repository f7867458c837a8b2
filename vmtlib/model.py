"""The multi-task model: a method's encoder plus one decoder per task.

``build_model`` is the entry point of the library (design.md contract)::

    model = build_model("vmt_adapter", backbone="swin_tiny",
                        tasks=("semseg", "human_parts", "sal", "normals"), rho=4)
    out = model(images)              # {task: (B, K_task, H, W)}
    count_parameters(model)          # {"encoder": ..., "decoders": ..., "total": ...}

The backbone is frozen before the method attaches, so exactly the method's
own parameters and the decoders are trainable.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vmtlib.backbone import build_backbone
from vmtlib.decoders import build_decoder
from vmtlib.methods import Method, get_method_class, make_config
from vmtlib.tasks import ALL_TASKS, get_task, parse_tasks


def check_images(images: object, dtype: torch.dtype) -> None:
    """A clear error for what a model cannot take: not a tensor, not ``(B, 3, H, W)``
    with ``B >= 1``, or another dtype than the model's (cast with ``images.to(dtype)``)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, 3, H, W), got "
                        f"{type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (B, 3, H, W) with B >= 1, got "
                         f"{tuple(images.shape)}")
    if images.dtype != dtype:
        raise ValueError(f"images are {images.dtype} but the model is {dtype}: pass "
                         f"images.to({dtype}) (float images in [0, 1], ImageNet-normalised)")


class MultiTaskModel(nn.Module):
    """``encoder`` (a :class:`~vmtlib.methods.base.Method`) and ``decoders[task]``."""

    def __init__(self, encoder: Method, decoders: nn.ModuleDict, info: dict[str, Any]) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoders = decoders
        self.info = info  # how it was built: method, backbone, tasks, decoder, kwargs

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.encoder.tasks

    @property
    def one_pass(self) -> bool:
        """True when one backbone pass serves every task (the O(1) family)."""
        return self.encoder.one_pass

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images (B, 3, H, W)`` -> ``{task: (B, K_task, H, W)}``."""
        check_images(images, next(self.parameters()).dtype)
        feats = self.encoder(images)
        size = images.shape[-2:]
        return {
            t: F.interpolate(self.decoders[t](feats[t]), size=size, mode="bilinear",
                             align_corners=False)
            for t in self.tasks
        }


def build_model(
    method: str,
    backbone: str = "swin_tiny",
    tasks: str | Iterable[str] = ALL_TASKS,
    pretrained: bool | str | Path = False,
    decoder: str = "segformer",
    img_size: int = 224,
    decoder_dim: int | None = None,
    **method_kwargs: Any,
) -> MultiTaskModel:
    """Build method ``method`` on a frozen ``backbone`` with one decoder per task.

    Args:
        method: a method id of :data:`vmtlib.METHODS`.
        backbone: ``swin_tiny`` | ``swin_small`` | ``swin_base`` | ``swin_nano``.
        tasks: task ids, a tuple or ``"semseg,sal"``.
        pretrained: ``False``, ``True`` (hub / shipped weights) or a local file.
        decoder: ``segformer`` (All-MLP, default).
        img_size: the resolution the windows are laid out for (any multiple of
            32 runs; this one avoids padding).
        decoder_dim: the decoders' embedding width; default the backbone's
            (256 for Swin-T/S/B as in the papers, 64 for swin_nano).
        **method_kwargs: the method's hyper-parameters, e.g. ``rho=4``, ``m=3``.
    """
    method_class = get_method_class(method)  # bad ids fail before any weight is built
    config = make_config(method_class, **method_kwargs)
    task_ids = parse_tasks(tasks)
    bb = build_backbone(backbone, pretrained=pretrained, img_size=img_size)
    encoder = method_class(bb, task_ids, config)
    width = decoder_dim or bb.config.decoder_dim
    decoders = nn.ModuleDict(
        {t: build_decoder(decoder, bb.dims, get_task(t).channels, width) for t in task_ids}
    )
    info = {
        "method": method,
        "backbone": backbone,
        "tasks": list(task_ids),
        "decoder": decoder,
        "img_size": img_size,
        "decoder_dim": width,
        "kwargs": dict(vars(encoder.config)),
    }
    return MultiTaskModel(encoder, decoders, info)


def count_parameters(model: MultiTaskModel) -> dict[str, int]:
    """Trainable parameters: ``encoder`` (the method's), ``decoders`` and ``total``.

    Also ``frozen``: the parameters that do not train. Shared tensors count once.
    """
    if not isinstance(model, MultiTaskModel):
        raise TypeError(f"count_parameters takes a MultiTaskModel (vmtlib.build_model), got "
                        f"{type(model).__name__}")

    def count(module: nn.Module, trainable: bool) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad == trainable)

    encoder = count(model.encoder, True)
    decoders = count(model.decoders, True)
    return {
        "encoder": encoder,
        "decoders": decoders,
        "total": encoder + decoders,
        "frozen": count(model, False),
    }
