"""Small questions the course asks of a model: how many parameters, how many backbone passes.

Everything here builds models on PyTorch's ``meta`` device (shapes without storage),
so the answers cost no memory and take well under a second on Swin-T:

* :func:`encoder_count`: the trainable encoder parameters of a method, the papers'
  "Encoder" column (``vmtlib.count_parameters(model)["encoder"]``);
* :func:`backbone_passes`: how often the backbone runs for one forward of the encoder,
  counted by a forward hook on the patch embedding (the first layer of every pass).
  A "Multiple" method runs it T times for T tasks, a one-pass method once;
* :func:`encoder_cost`: the encoder's forward FLOPs for one image together with its
  passes (``torch.utils.flop_counter``: 2 FLOPs per multiply-accumulate of every matrix
  product and convolution, element-wise work not counted), decoders left out;
* :func:`block_parameters`: the trainable tensors a method puts into one Swin block,
  with their names inside that block;
* :func:`count_flops`: the FLOPs of one call, counted the same way.

The notebooks and tests import these instead of defining their own copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vmtlib.model import MultiTaskModel, build_model, count_parameters
from vmtlib.tasks import ALL_TASKS


def meta_model(method: str, backbone: str = "swin_tiny",
               tasks: str | Iterable[str] = ALL_TASKS, **kwargs: Any) -> MultiTaskModel:
    """``build_model(method, backbone=..., tasks=..., **kwargs)`` on the ``meta`` device."""
    with torch.device("meta"):
        return build_model(method, backbone=backbone, tasks=tasks, **kwargs)


def count_flops(fn: Callable[..., Any], *args: Any) -> int:
    """FLOPs of ``fn(*args)`` as ``FlopCounterMode`` counts them (2 per multiply-accumulate
    of every matrix product and convolution); on ``meta`` tensors it costs no memory."""
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def encoder_count(method: str, backbone: str = "swin_tiny",
                  tasks: str | Iterable[str] = ALL_TASKS, **kwargs: Any) -> int:
    """Trainable encoder parameters of ``method`` (the papers' "Encoder" column), counted
    on the ``meta`` device; ``kwargs`` go to the method (``rho=4``, ``m=12``, ...)."""
    return count_parameters(meta_model(method, backbone, tasks, **kwargs))["encoder"]


def _image_size(model: MultiTaskModel, img_size: int | None) -> int:
    if img_size is not None:
        return int(img_size)
    size = model.info.get("img_size") if isinstance(model.info, dict) else None
    if size is None:
        raise ValueError("backbone_passes: pass img_size (the model does not record one)")
    return int(size)


def backbone_passes(model: MultiTaskModel, img_size: int | None = None) -> int:
    """How often the backbone runs in one forward of ``model.encoder`` on one image.

    A forward hook on the backbone's patch embedding counts the calls; the image is
    an empty tensor on the model's device (``meta`` models run without memory).
    ``img_size`` defaults to the size the model was built for.
    """
    size = _image_size(model, img_size)
    device = next(model.parameters()).device
    images = torch.empty(1, 3, size, size, device=device)
    calls: list[int] = []
    hook = model.encoder.backbone.patch_embed.register_forward_hook(
        lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            model.encoder(images)
    finally:
        hook.remove()
    return len(calls)


def encoder_cost(method: str, tasks: str | Iterable[str] = ALL_TASKS,
                 backbone: str = "swin_tiny", img_size: int = 224,
                 **kwargs: Any) -> dict[str, Any]:
    """``{"gflops", "passes", "one_pass"}`` of ``method``'s encoder (backbone + method,
    no decoders) for one ``img_size`` image: forward GFLOPs counted by
    ``FlopCounterMode`` on the ``meta`` device, backbone passes, and whether the method
    declares itself one-pass (O(1))."""
    model = meta_model(method, backbone, tasks, img_size=img_size, **kwargs)
    calls: list[int] = []
    hook = model.encoder.backbone.patch_embed.register_forward_hook(
        lambda *args: calls.append(1))
    with torch.device("meta"):
        images = torch.empty(1, 3, img_size, img_size)
    try:
        flops = count_flops(model.encoder, images)
    finally:
        hook.remove()
    return {"gflops": flops / 1e9, "passes": len(calls), "one_pass": model.one_pass}


def block_parameters(method: str, backbone: str = "swin_tiny",
                     tasks: str | Iterable[str] = ("semseg",), stage: int = 0,
                     index: int = 1, **kwargs: Any) -> dict[str, tuple[int, ...]]:
    """``{name inside the block: shape}`` of the trainable tensors ``method`` puts into
    block ``index`` of stage ``stage`` (both 0-based), for ``tasks``.

    Names are those below the block (``hooks.mlp_adapters.0.down.weight``,
    ``attn.qkv.branches.0.a``, ...); a task's private copy of a backbone tensor
    (BitFit, relative bias) is listed as ``offsets.<task>.<name>``.
    """
    model = meta_model(method, backbone, tasks, **kwargs)
    keys = (f"layers.{stage}.blocks.{index}.", f"layers-{stage}-blocks-{index}-")
    found: dict[str, tuple[int, ...]] = {}
    for name, p in model.encoder.named_parameters():
        if not p.requires_grad:
            continue
        for key in keys:
            if key in name:
                prefix, rest = name.split(key)
                if "offsets" in prefix:  # a task's copy of a backbone tensor
                    rest = "offsets." + prefix.split("offsets.")[1] + rest.replace("-", ".")
                found[rest] = tuple(p.shape)
    return found


__all__ = ["backbone_passes", "block_parameters", "encoder_cost", "encoder_count",
           "meta_model"]
