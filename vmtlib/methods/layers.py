"""Building blocks that several methods share: block hooks, a low-rank branch, a frozen
linear layer (the mechanisms are listed in :mod:`vmtlib.methods.base`).

- :class:`BlockHooks` / :func:`wrap_blocks`: a method's modules on the two branches
  of every Swin block (:class:`HookedSwinBlock`); :class:`BranchHooks` for adapters
  on the branch outputs; :func:`replace_blocks`, the one way a block is replaced;
- :class:`LowRankBranch`: ``s * N(x) A B``, the LoRA residual (LoRA, MTLoRA).
- :class:`FrozenLinear`: the one way a method replaces a linear layer of the
  backbone. It takes over the wrapped layer's ``weight`` and ``bias`` (so the
  pretrained tensors keep their names, ``attn.qkv.weight``, and a timm state dict
  still loads) and computes ``x W + b`` in :meth:`FrozenLinear.frozen`;
  subclasses add their branches beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vmtlib.backbone import SwinBackbone, block_forward
from vmtlib.methods.base import MethodState


class LowRankBranch(nn.Module):
    """``s * N(x) A B``: A ``(d_in, r)`` like a default linear layer, B ``(r, d_out)`` = 0.

    Args:
        d_in, d_out: the widths of the linear layer the branch sits beside.
        rank: r.
        scale: s, the output scale.
        norm: put a LayerNorm N on the branch input (else N is the identity).
    """

    def __init__(self, d_in: int, d_out: int, rank: int, scale: float, norm: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_in) if norm else nn.Identity()
        bound = 1.0 / math.sqrt(d_in)
        self.a = nn.Parameter(torch.empty(d_in, rank).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(rank, d_out))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * ((self.norm(x) @ self.a) @ self.b)


class FrozenLinear(nn.Linear):
    """A backbone ``nn.Linear`` taken over under its own tensor names (see module docstring).

    ``nn.Linear.__init__`` is skipped on purpose: it would draw a fresh weight.
    """

    def __init__(self, base: nn.Linear) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.register_parameter("weight", base.weight)
        self.register_parameter("bias", base.bias)

    def frozen(self, x: torch.Tensor) -> torch.Tensor:
        """``x W + b`` of the wrapped layer."""
        return F.linear(x, self.weight, self.bias)


# ----------------------------------------------------------------------------- block hooks


class BlockHooks(nn.Module):
    """A method's modules inside one Swin block (identity by default).

    Attributes set by :func:`wrap_blocks`: ``stage`` (0..3), ``index`` (block
    index within the stage) and ``state`` (the method's :class:`MethodState`).
    """

    stage: int
    index: int
    state: MethodState

    def attn_branch(self, h: torch.Tensor) -> torch.Tensor:
        """Attention branch output ``(B, H, W, C)`` before the residual add."""
        return h

    def mlp_branch(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """MLP branch output ``h`` ``(B, N, C)`` before the residual add; ``x`` is
        the MLP's input LN2(x) ``(B, N, C)``."""
        return h

    def pick(self, modules: Sequence[nn.Module]) -> nn.Module:
        """The module of the active task (the only one when shared)."""
        return self.state.active(modules)


def no_inputs(state: MethodState) -> tuple[()]:
    """Branch adapters that take the branch output only."""
    return ()


def condition_input(state: MethodState) -> tuple[Any]:
    """Branch adapters that also take the pass's condition (embedding, rules)."""
    return (state.condition,)


def condition_and_task(state: MethodState) -> tuple[Any, int]:
    """Branch adapters that also take the pass's condition and the active task."""
    return state.condition, state.active_task()


class BranchHooks(BlockHooks):
    """Adapters on the branch outputs: ``h -> adapter(h, *inputs(state))``.

    Keyword arguments ``attn`` and ``mlp`` (registered in the order given) are
    the adapters after attention and after the MLP: ``None`` (no adapter), one
    module (attribute ``attn_adapter`` / ``mlp_adapter``) or, with
    ``per_copy=True``, an ``nn.ModuleList`` with one adapter per copy, the active
    task's picked by :meth:`MethodState.active` (``attn_adapters`` / ``mlp_adapters``).
    """

    def __init__(
        self,
        inputs: Callable[[MethodState], tuple] = no_inputs,
        per_copy: bool = False,
        **branches: nn.Module | None,
    ) -> None:
        super().__init__()
        if set(branches) - {"attn", "mlp"}:
            raise ValueError(f"branches are 'attn' and 'mlp', got {sorted(branches)}")
        self.inputs = inputs
        self.slots = {b: f"{b}_adapters" if per_copy else f"{b}_adapter" for b in ("attn", "mlp")}
        for branch in ("attn", "mlp"):
            if branch not in branches:
                branches[branch] = None
        for branch, module in branches.items():
            setattr(self, self.slots[branch], module)

    def _adapt(self, branch: str, h: torch.Tensor) -> torch.Tensor:
        adapter = getattr(self, self.slots[branch])
        if adapter is None:
            return h
        if isinstance(adapter, nn.ModuleList):
            adapter = self.state.active(adapter)
        return adapter(h, *self.inputs(self.state))

    def attn_branch(self, h: torch.Tensor) -> torch.Tensor:
        return self._adapt("attn", h)

    def mlp_branch(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._adapt("mlp", h)


def branch_adapters(
    make: Callable[[], nn.Module],
    copies: int,
    after_attn: bool,
    inputs: Callable[[MethodState], tuple] = no_inputs,
) -> BranchHooks:
    """``copies`` adapters ``make()`` after the MLP (and after attention when asked),
    the active task's picked in each pass; the MLP's are built first."""
    mlp = nn.ModuleList(make() for _ in range(copies))
    attn = nn.ModuleList(make() for _ in range(copies)) if after_attn else None
    return BranchHooks(inputs, per_copy=True, mlp=mlp, attn=attn)


class HookedSwinBlock(nn.Module):
    """A timm ``SwinTransformerBlock`` with a method's :class:`BlockHooks`.

    The wrapped block is ``self.block`` (its tensors keep timm's names below it).
    """

    def __init__(self, block: nn.Module, hooks: BlockHooks) -> None:
        super().__init__()
        self.block = block
        self.hooks = hooks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return block_forward(self.block, x, self.hooks.attn_branch, self.hooks.mlp_branch)


def replace_blocks(
    backbone: SwinBackbone, make: Callable[[int, int, nn.Module], nn.Module | None]
) -> None:
    """Replace block ``(stage, index)`` by ``make(stage, index, block)`` unless it returns None."""
    for s, stage in enumerate(backbone.layers):
        for b in range(len(stage.blocks)):
            new = make(s, b, stage.blocks[b])
            if new is not None:
                stage.blocks[b] = new


def wrap_blocks(
    backbone: SwinBackbone,
    state: MethodState,
    make_hooks: Callable[[int, int, int], BlockHooks],
) -> list[BlockHooks]:
    """Install ``make_hooks(stage, index, dim)`` into every block of ``backbone``.

    Returns the installed hooks in forward order.
    """
    installed = []

    def hook(s: int, b: int, block: nn.Module) -> HookedSwinBlock:
        hooks = make_hooks(s, b, backbone.dims[s])
        hooks.stage, hooks.index, hooks.state = s, b, state
        installed.append(hooks)
        return HookedSwinBlock(block, hooks)

    replace_blocks(backbone, hook)
    return installed
