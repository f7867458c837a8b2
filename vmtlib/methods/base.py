"""The method framework: how a PEFT method attaches to a frozen Swin backbone.

A *method* owns the encoder side of the multi-task model. It receives a
backbone whose parameters are all frozen, inserts its own modules (or unfreezes
exactly the backbone parameters it tunes), and turns a batch of images into
one list of four stage features per task.

Execution cost is part of the method (VMT-Adapter Sec. 4.3, Table 1):

- :class:`OnePassMethod` (O(1) in the number of tasks T): one backbone pass
  serves every task. Task-specific parts, if any, run beside the shared pass
  (VMT-Adapter's knowledge extraction modules, MTLoRA's task-specific LoRA).
- :class:`PerTaskPassMethod` (O(T)): the "Multiple" variants. Each task has its
  own modules inside the backbone, so each task needs its own pass; the
  active task is set on the shared :class:`MethodState` before each pass.

Most modules that live inside Swin blocks (adapters, VMT-Adapter, Hyperformer,
PHM, Polyhistor) derive from :class:`BlockHooks` and are installed with
:func:`wrap_blocks` (LoRA and MTLoRA replace linear layers, VPT wraps the
block); a hooked block computes

    x = x + attn_branch(W-MSA(LN1(x)))
    x = x + mlp_branch(MLP(LN2(x)), LN2(x))

so a hook can act sequentially on a branch output (Houlsby/Pfeiffer adapters)
or in parallel to the MLP from the MLP's input (AdaptFormer, VMT-Adapter).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from vmtlib.backbone import SwinBackbone

_REGISTRY: dict[str, type[Method]] = {}


class MethodState:
    """Per-forward state shared by a method and the modules it installs.

    Attributes:
        task: index of the active task during a per-task pass; ``None`` during
            a shared pass.
        stage_extras: per stage, task-specific tensors that block hooks emit
            during a shared pass (cleared at the start of every pass).
    """

    def __init__(self) -> None:
        self.task: int | None = None
        self.stage_extras: dict[int, torch.Tensor] = {}

    def reset(self) -> None:
        self.task = None
        self.stage_extras = {}


class Method(nn.Module, abc.ABC):
    """Base of every method: a frozen backbone plus the method's own parameters.

    Subclasses set ``method_id``, ``description``, ``one_pass`` and a
    ``Config`` dataclass of their hyper-parameters (paper defaults as field
    defaults), and implement :meth:`encode`.
    """

    method_id: ClassVar[str]
    description: ClassVar[str]
    one_pass: ClassVar[bool]

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: Any) -> None:
        super().__init__()
        backbone.requires_grad_(False)
        self.tasks = tuple(tasks)
        self.config = config
        self.state = MethodState()

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @abc.abstractmethod
    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Four NCHW stage features per task, ``{task: [(B, C_s, H_s, W_s)] * 4}``."""

    def forward(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        return self.encode(images)


class OnePassMethod(Method):
    """One backbone pass for all tasks (O(1)); see :meth:`task_features`."""

    one_pass = True

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: Any) -> None:
        super().__init__(backbone, tasks, config)
        self.backbone = backbone

    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        self.state.reset()
        feats = self.backbone.forward_nhwc(images)
        per_task = self.task_features(feats)
        self.state.reset()
        return {t: [f.permute(0, 3, 1, 2) for f in fs] for t, fs in per_task.items()}

    def task_features(self, feats: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """Per-task NHWC stage features from the shared ones (default: shared as is)."""
        return {t: feats for t in self.tasks}


class PerTaskPassMethod(Method):
    """One backbone pass per task (O(T)); task-indexed modules read ``state.task``."""

    one_pass = False

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: Any) -> None:
        super().__init__(backbone, tasks, config)
        self.backbone = backbone

    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        out = {}
        try:
            for i, task in enumerate(self.tasks):
                self.state.task = i
                out[task] = self.backbone(images)
        finally:
            self.state.reset()
        return out


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

    def pick(self, modules: nn.ModuleList) -> nn.Module:
        """The module of the active task (the only one when shared)."""
        if len(modules) == 1:
            return modules[0]
        if self.state.task is None:
            raise RuntimeError("a per-task module was called outside a per-task pass")
        return modules[self.state.task]


class HookedSwinBlock(nn.Module):
    """A timm ``SwinTransformerBlock`` with a method's :class:`BlockHooks`."""

    def __init__(self, block: nn.Module, hooks: BlockHooks) -> None:
        super().__init__()
        self.block = block
        self.hooks = hooks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blk = self.block
        b, h, w, c = x.shape
        x = x + blk.drop_path1(self.hooks.attn_branch(blk._attn(blk.norm1(x))))
        x = x.reshape(b, -1, c)
        mlp_in = blk.norm2(x)
        x = x + blk.drop_path2(self.hooks.mlp_branch(blk.mlp(mlp_in), mlp_in))
        return x.reshape(b, h, w, c)


def wrap_blocks(
    backbone: SwinBackbone,
    state: MethodState,
    make_hooks: Callable[[int, int, int], BlockHooks],
) -> list[BlockHooks]:
    """Install ``make_hooks(stage, index, dim)`` into every block of ``backbone``.

    Returns the installed hooks in forward order.
    """
    installed = []
    for s, stage in enumerate(backbone.layers):
        for b in range(len(stage.blocks)):
            hooks = make_hooks(s, b, backbone.dims[s])
            hooks.stage, hooks.index, hooks.state = s, b, state
            stage.blocks[b] = HookedSwinBlock(stage.blocks[b], hooks)
            installed.append(hooks)
    return installed


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a method to the registry under ``cls.method_id``."""
    if cls.method_id in _REGISTRY:
        raise ValueError(f"method id {cls.method_id!r} registered twice")
    _REGISTRY[cls.method_id] = cls
    return cls


def get_method_class(method_id: str) -> type[Method]:
    """The class of ``method_id``; ``ValueError`` naming the valid ids."""
    try:
        return _REGISTRY[method_id]
    except KeyError:
        raise ValueError(
            f"unknown method {method_id!r}; valid methods are: {', '.join(_REGISTRY)}"
        ) from None


def registered_methods() -> dict[str, type[Method]]:
    return dict(_REGISTRY)


def make_config(cls: type[Method], **kwargs: Any) -> Any:
    """``cls.Config(**kwargs)``; an unknown hyper-parameter names the valid ones."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        valid = ", ".join(sorted(fields)) or "none"
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for method {cls.method_id!r}; "
            f"valid ones: {valid}"
        )
    return cls.Config(**kwargs)


class DivisorError(ValueError):
    """A hyper-parameter that must divide the backbone's widths does not.

    ``name`` and ``value`` say which, ``valid`` lists the values that would fit.
    """

    def __init__(self, message: str, name: str, value: int, valid: list[int]) -> None:
        super().__init__(message)
        self.name, self.value, self.valid = name, value, valid


def divisor_check(name: str, value: int, dims: Sequence[int], method_id: str) -> None:
    """Raise :class:`DivisorError` unless ``value`` divides every dimension in ``dims``."""
    bad = [d for d in dims if d % value]
    if bad:
        valid = sorted({v for v in range(1, min(dims) + 1) if all(d % v == 0 for d in dims)})
        raise DivisorError(
            f"{method_id}: {name}={value} does not divide the dimensions {sorted(set(bad))}; "
            f"valid values of {name} for this backbone: {valid}", name, value, valid
        )
