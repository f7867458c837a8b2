"""The method framework: how a PEFT method declares itself and attaches to a frozen Swin.

A *method* owns the encoder side of the multi-task model. It receives a
backbone whose parameters are all frozen, inserts its own modules (or unfreezes
exactly the backbone parameters it tunes), and turns a batch of images into
one list of four stage features per task.

**Declaring a method.** A subclass of :class:`OnePassMethod` or
:class:`PerTaskPassMethod` that sets ``method_id`` is registered by being
defined (``Method.__init_subclass__``); ``vmtlib.methods`` imports every module
of the package, so a new method is one new file. Its class attributes are all
the rest of the library reads:

- ``method_id``, ``description`` (``vmtlib.METHODS``), ``table_row`` (its place
  in VMT-Adapter's Table 2 / Polyhistor's Table 1, which orders ``METHODS``);
- ``one_pass``: the execution cost (VMT-Adapter Sec. 4.3, Table 1). O(1): one
  backbone pass serves every task, task-specific parts run beside it
  (VMT-Adapter's knowledge extraction, MTLoRA's task-specific LoRA). O(T):
  each task has its own modules inside the backbone and its own pass; the
  active task is set on the shared :class:`MethodState` before each pass;
- ``task_indexed`` (names of tensors whose first dimension indexes the tasks)
  and ``task_module_lists`` (module lists with one entry per task that one
  pass runs together): what the gradient-conflict analysis must not count as
  shared (``vmtlib.analysis.shared_parameters``);
- ``Config``: a frozen :class:`MethodConfig` dataclass of its hyper-parameters,
  paper defaults as field defaults, checked in ``__post_init__``. The registry
  gives every method its own ``Config`` subclass carrying its id, so a bad value
  names the method that rejected it.

**Attaching to the backbone**, one mechanism per kind of place (the building
blocks are in :mod:`vmtlib.methods.layers`):

1. *Block hooks* (the main path): a ``BlockHooks`` per Swin block, put in by
   ``wrap_blocks``; the hooked block computes

       x = x + attn_branch(W-MSA(LN1(x)))
       x = x + mlp_branch(MLP(LN2(x)), LN2(x))

   so a hook acts on a branch output (Houlsby/Pfeiffer adapters, Hyperformer,
   PHM, Polyhistor; ``BranchHooks``) or beside the MLP from its input
   (VMT-Adapter). Used by every method that only needs those two places.
2. *Linear-layer replacement* (``FrozenLinear``): a linear layer that keeps the
   frozen ``weight`` and ``bias`` under their timm names and adds a branch
   beside them (LoRA, MTLoRA).
3. *Block replacement* (``replace_blocks``): a method whose change is inside the
   attention (VPT's prompts) or which runs several streams through a block
   (MTLoRA's last blocks) replaces the whole block. Block hooks are one client.
4. *Per-task tensor offsets* (:class:`PerTaskTensors`): task t's pass runs the
   backbone with some of its tensors plus delta_t (``torch.func.functional_call``;
   BitFit, relative bias).
5. *Unfreezing* (:class:`SharedTensors`, :func:`unfreeze`, ``requires_grad_``): the
   backbone's own tensors train (the ``_shared`` BitFit and relative-bias ids, full
   fine-tuning, MTLoRA's norms and tables).

timm's private API (``_attn``, ``_get_rel_pos_bias``, ``get_attn_mask``) is used
only in :mod:`vmtlib.backbone`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call

from vmtlib.backbone import SwinBackbone

_REGISTRY: dict[str, type[Method]] = {}


class MethodState:
    """Per-forward state shared by a method and the modules it installs.

    Attributes:
        task: index of the active task during a per-task pass; ``None`` during
            a shared pass.
        condition: what the method computed for the active task before its pass
            (:meth:`PerTaskPassMethod.condition`: Hyperformer's projected
            embedding, Polyhistor's task embedding or templates, PHM's shared
            rules); ``None`` outside a pass.
        stage_extras: per stage, task-specific tensors that block hooks emit
            during a shared pass (cleared at the start of every pass).
    """

    def __init__(self) -> None:
        self.task: int | None = None
        self.condition: Any = None
        self.stage_extras: dict[int, torch.Tensor] = {}

    def reset(self) -> None:
        self.task = None
        self.condition = None
        self.stage_extras = {}

    def active_task(self) -> int:
        """The active task's index; ``RuntimeError`` outside a per-task pass."""
        if self.task is None:
            raise RuntimeError("a per-task module was called outside a per-task pass")
        return self.task

    def active(self, copies: Sequence[Any]) -> Any:
        """The active task's entry of ``copies`` (the only one when there is one copy)."""
        return copies[0] if len(copies) == 1 else copies[self.active_task()]


def _type_name(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Base of every method's hyper-parameters (a frozen dataclass).

    ``__post_init__`` checks every field by its annotation: ``int`` fields must be
    positive integers, ``float`` fields positive finite numbers, ``bool`` fields
    booleans; ``TypeError`` / ``ValueError`` name the method, the field, the
    value and what was expected. Subclasses add their own checks after
    ``super().__post_init__()`` with :meth:`fail`.
    """

    method_id: ClassVar[str] = "method"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), _type_name(f.type)
            if kind == "bool" and not isinstance(value, bool):
                self.fail(f.name, value, "True or False", TypeError)
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    self.fail(f.name, value, "a positive integer", TypeError)
                if value < 1:
                    self.fail(f.name, value, "a positive integer")
            elif kind == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    self.fail(f.name, value, "a positive number", TypeError)
                if not (math.isfinite(value) and value > 0):
                    self.fail(f.name, value, "a positive number")

    def fail(self, name: str, value: Any, expected: str, error: type = ValueError) -> None:
        """Raise ``error`` naming the method, the field, its value and what was expected."""
        raise error(f"{self.method_id}: {name} must be {expected}, got {value!r}")


class Method(nn.Module, abc.ABC):
    """Base of every method: a frozen backbone plus the method's own parameters.

    Concrete subclasses set the class attributes of the module docstring and
    install their modules in ``__init__`` after ``super().__init__``.
    """

    method_id: ClassVar[str]
    description: ClassVar[str]
    one_pass: ClassVar[bool]
    table_row: ClassVar[float] = math.inf
    task_indexed: ClassVar[tuple[str, ...]] = ()
    task_module_lists: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "method_id" in cls.__dict__:
            _register(cls)

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: MethodConfig) -> None:
        super().__init__()
        backbone.requires_grad_(False)
        self.tasks = tuple(tasks)
        self.config = config
        self.state = MethodState()
        self.attach(backbone)

    def attach(self, backbone: SwinBackbone) -> None:
        """Keep the backbone (as ``self.backbone``; its state-dict prefix)."""
        self.backbone = backbone

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def copies(self) -> int:
        """How many copies of a per-task module the method keeps: 1 if O(1), else T."""
        return 1 if self.one_pass else self.num_tasks

    @abc.abstractmethod
    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Four NCHW stage features per task, ``{task: [(B, C_s, H_s, W_s)] * 4}``."""

    def forward(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        return self.encode(images)


class OnePassMethod(Method):
    """One backbone pass for all tasks (O(1)); see :meth:`task_features`."""

    one_pass = True

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
    """One backbone pass per task (O(T)): the only per-task loop.

    Before task t's pass ``state.task = t`` and ``state.condition =
    condition(t)``; the pass itself is :meth:`task_pass`.
    """

    one_pass = False

    def condition(self, task: int) -> Any:
        """What task ``task``'s modules need during its pass (default: nothing)."""
        return None

    def task_pass(self, task: int, images: torch.Tensor) -> list[torch.Tensor]:
        """Task ``task``'s four NCHW stage features (default: the backbone as hooked)."""
        return self.backbone(images)

    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        out = {}
        try:
            for i, task in enumerate(self.tasks):
                self.state.task = i
                self.state.condition = self.condition(i)
                out[task] = self.task_pass(i, images)
        finally:
            self.state.reset()
        return out


# ----------------------------------------------------------------------------- backbone tensors


def is_relative_position_table(name: str) -> bool:
    """Swin's relative-position bias tables B_hat (one per block)."""
    return name.endswith("relative_position_bias_table")


def unfreeze(backbone: SwinBackbone, select: Callable[[str], bool]) -> None:
    """Make the backbone tensors that ``select`` picks trainable."""
    for name, p in backbone.named_parameters():
        if select(name):
            p.requires_grad_(True)


class SharedTensors(OnePassMethod):
    """The backbone's own tensors that ``select`` picks train, for every task (O(1))."""

    select: Callable[[str], bool]

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: MethodConfig) -> None:
        super().__init__(backbone, tasks, config)
        unfreeze(backbone, type(self).select)


class PerTaskTensors(PerTaskPassMethod):
    """Each task trains its own offset of the backbone tensors that ``select`` picks.

    ``offsets[t][key]`` is delta_t for the tensor ``names[i]`` (key: the name
    with ``.`` replaced by ``-``); task t's pass sees ``p + delta_t``.
    """

    select: Callable[[str], bool]

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: MethodConfig) -> None:
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

    def task_pass(self, task: int, images: torch.Tensor) -> list[torch.Tensor]:
        return functional_call(self.backbone, self.task_tensors(task), (images,))


# ----------------------------------------------------------------------------- registry


def _register(cls: type[Method]) -> None:
    """Add ``cls`` to the registry under its id, with its own ``Config`` subclass."""
    if cls.method_id in _REGISTRY:
        raise ValueError(f"method id {cls.method_id!r} registered twice")
    base = cls.Config
    cls.Config = type(base.__name__, (base,), {
        "method_id": cls.method_id,
        "__module__": cls.__module__,
        "__qualname__": f"{cls.__qualname__}.Config",
        "__doc__": base.__doc__,
    })
    _REGISTRY[cls.method_id] = cls


def get_method_class(method_id: str) -> type[Method]:
    """The class of ``method_id``; ``ValueError`` naming the valid ids."""
    try:
        return _REGISTRY[method_id]
    except KeyError:
        raise ValueError(
            f"unknown method {method_id!r}; valid methods are: {', '.join(_REGISTRY)}"
        ) from None


def registered_methods() -> dict[str, type[Method]]:
    """Every registered method class, in the papers' table order (``table_row``)."""
    ordered = sorted(_REGISTRY.items(), key=lambda kv: (kv[1].table_row, kv[0]))
    return dict(ordered)


def make_config(cls: type[Method], **kwargs: Any) -> MethodConfig:
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
