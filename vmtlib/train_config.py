"""``TrainConfig``: everything a training run depends on, checked where it enters.

Each field carries its help text (and, where there is a fixed set, its choices) in
its ``metadata``, so ``python -m vmtlib train``'s options are generated from this one
class (``vmtlib.cli``) and every default is stated once, here. ``__post_init__``
refuses a bad value with a one-line :class:`vmtlib.checks.ConfigError` naming the
field, the value and what was expected, before anything is built or written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmtlib.backbone import BACKBONES
from vmtlib.checks import (
    ConfigError,
    check_bool,
    check_choice,
    check_device,
    check_img_size,
    check_int,
    check_number,
    parse_bool,
)
from vmtlib.decoders import DECODERS
from vmtlib.methods import METHODS
from vmtlib.rundir import RunDirError
from vmtlib.tasks import ALL_TASKS, parse_tasks

#: Fields a resumed run may change: they do not change what the steps already taken
#: mean (the run's length, where it lives, how it is shown, loaded and checkpointed).
RESUMABLE_FIELDS = ("steps", "epochs", "out", "progress", "num_workers", "device", "compile",
                    "eval_every", "checkpoint_every")


def option(default: Any = dataclasses.MISSING, help: str = "", *,  # noqa: A002
           default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
           choices: Any = None, flag: str | None = None, metavar: str | None = None,
           parse: Callable[[str], Any] | None = None) -> Any:
    """A dataclass field with what the CLI needs to offer it as ``--flag``.

    ``parse`` turns the flag's text into the value (default: the type of the default);
    ``flag`` overrides the flag's name (default: the field name with dashes).
    """
    meta = {"help": help, "choices": choices, "flag": flag, "metavar": metavar,
            "parse": parse}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on. The defaults run the CPU course.

    ``steps`` wins over ``epochs`` when both are given; with neither, 300 steps.
    ``data`` is ``"synthetic"`` or the path of a PASCAL_MT folder.
    """

    method: str = option("vmt_adapter", "the method to train", choices=tuple(METHODS))
    backbone: str = option("swin_nano", "the Swin backbone", choices=tuple(BACKBONES))
    pretrained: bool | str = option(
        True, "backbone weights: true (the shipped swin_nano / timm's ImageNet weights), "
        "false (random), or the path of a .pth / .safetensors file", metavar="true|false|PATH")
    data: str = option("synthetic", "training data: synthetic, or the path of a PASCAL_MT "
                       "folder", metavar="synthetic|PATH")
    tasks: tuple[str, ...] = option(ALL_TASKS, "comma-separated task ids", choices=ALL_TASKS,
                                    metavar="TASK[,TASK...]")
    method_kwargs: dict[str, Any] = option(
        default_factory=dict, help="a method hyper-parameter, e.g. rho=4 (repeatable)",
        flag="param", metavar="NAME=VALUE")
    decoder: str = option("segformer", "the decoder of every task", choices=tuple(DECODERS))
    decoder_dim: int | None = option(None, "the decoders' embedding width (default: the "
                                     "backbone's, 64 for swin_nano, 256 for Swin-T)", parse=int)
    img_size: int = option(128, "training and evaluation image size (a multiple of 32)")
    batch_size: int = option(12, "images per step (per process under torchrun)")
    steps: int | None = option(None, "training steps (default: 300, or as many as --epochs "
                               "take)", parse=int)
    epochs: float | None = option(None, "training epochs (instead of --steps; may be "
                                  "fractional)", parse=float)
    lr: float = option(1e-4, "Adam's learning rate, decayed linearly to zero")
    weight_decay: float = option(1e-4, "Adam's weight decay")
    grad_clip: float = option(10.0, "gradient norm clipping threshold")
    eval_every: int = option(0, "evaluate every N steps (0: at the end only)")
    eval_batches: int | None = option(None, "evaluate on at most N batches (default: the "
                                      "whole validation split)", parse=int)
    train_size: int = option(20_000, "synthetic training scenes per epoch")
    val_size: int = option(256, "synthetic validation scenes")
    val_seed: int = option(2, "the seed of the synthetic validation scenes (training "
                           "scenes are seed 1)")
    seed: int = option(0, "the seed of initialisation, batch order and augmentation")
    num_workers: int = option(
        0, "DataLoader worker processes. A resume is bit-identical with 0; with PASCAL_MT "
        "and N >= 1 the augmentations after a resume differ (each worker's random stream "
        "restarts), and 0, 1, 2 ... workers draw different augmentations")
    out: str = option("runs/latest", "the run directory", metavar="DIR")
    reference: dict[str, float] | None = option(
        None, "delta_m reference: a final.json or a JSON {task: score} file (default on "
        "PASCAL_MT: the papers' Swin-T single-task numbers)", metavar="FILE")
    compile: bool = option(False, "torch.compile the model")
    progress: bool = option(True, "show a progress bar")
    device: str = option("auto", "auto (CUDA when available), cpu, cuda or cuda:N",
                         metavar="auto|cpu|cuda[:N]")
    bf16: bool | None = option(None, "bfloat16 autocast: true or false (default: on CUDA "
                               "only; true speeds up a CPU with avx512_bf16)",
                               parse=parse_bool, metavar="true|false")
    checkpoint_every: int | None = option(
        None, "save a checkpoint every N steps (default: a fifth of the run, at most 100)",
        parse=int)

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, (str, list, tuple)) or not all(
                isinstance(t, str) for t in self.tasks):
            raise ConfigError("tasks", f"must be task ids in order (a comma-separated string, "
                              f"list or tuple), got {self.tasks!r}")
        self.tasks = parse_tasks(self.tasks)
        copies = [t for t in self.tasks if "#" in t]
        if copies:
            raise ConfigError("tasks", f"cannot train task copies {copies}: they exist for "
                              "the cost analysis only (no dataset has their labels)")
        check_choice("method", self.method, METHODS)
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("decoder", self.decoder, DECODERS)
        if not isinstance(self.pretrained, bool) and not (
                isinstance(self.pretrained, str) and self.pretrained):
            raise ConfigError("pretrained", f"must be true, false or a file path, got "
                              f"{self.pretrained!r}")
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError("data", f"must be 'synthetic' or a folder path, got {self.data!r}")
        if not isinstance(self.method_kwargs, dict) or not all(
                isinstance(k, str) for k in self.method_kwargs):
            raise ConfigError("method_kwargs", f"must map names to values, got "
                              f"{self.method_kwargs!r}")
        check_img_size("img_size", self.img_size)
        check_int("batch_size", self.batch_size, 1)
        check_int("steps", self.steps, 1, optional=True)
        check_number("epochs", self.epochs, positive=True, optional=True)
        check_number("lr", self.lr, positive=True)
        check_number("weight_decay", self.weight_decay, minimum=0)
        check_number("grad_clip", self.grad_clip, positive=True)
        check_int("eval_every", self.eval_every, 0)
        check_int("eval_batches", self.eval_batches, 1, optional=True)
        check_int("train_size", self.train_size, 1)
        check_int("val_size", self.val_size, 1)
        check_int("val_seed", self.val_seed, 0, 2**32 - 1)
        check_int("decoder_dim", self.decoder_dim, 1, 4096, optional=True)
        if self.bf16 is not None and not isinstance(self.bf16, bool):
            raise ConfigError("bf16", f"must be true, false or unset, got {self.bf16!r}")
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_int("num_workers", self.num_workers, 0)
        check_int("checkpoint_every", self.checkpoint_every, 1, optional=True)
        if self.data == "synthetic" and self.batch_size > self.train_size:
            raise ConfigError("batch_size", f"must be at most train_size ({self.train_size}) "
                              f"on synthetic data, got {self.batch_size}")
        if not isinstance(self.out, str) or not self.out:
            raise ConfigError("out", f"must be a directory path, got {self.out!r}")
        check_bool("compile", self.compile)
        check_bool("progress", self.progress)
        check_device("device", self.device)
        self._check_reference()

    def _check_reference(self) -> None:
        if self.reference is None:
            return
        if not isinstance(self.reference, dict):
            raise ConfigError("reference", f"must map task ids to scores, got "
                              f"{type(self.reference).__name__}")
        missing = [t for t in self.tasks if t not in self.reference]
        if missing:
            raise ConfigError("reference", f"has no score for task(s) {missing} (it has "
                              f"{sorted(self.reference)}); delta_m needs every trained task")
        for t in self.tasks:
            check_number(f"reference[{t!r}]", self.reference[t])
            if self.reference[t] == 0:
                raise ConfigError(f"reference[{t!r}]", "must not be 0 (delta_m divides by it)")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return json.loads(json.dumps(d))  # tuples inside method_kwargs as JSON has them

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def config_differences(saved: dict[str, Any], wanted: dict[str, Any],
                       allowed: tuple[str, ...] = RESUMABLE_FIELDS) -> list[tuple[str, Any, Any]]:
    """``(field, saved value, wanted value)`` for each field outside ``allowed`` that differs.

    Both sides are JSON forms (``TrainConfig.to_json``); a field missing from an older
    ``saved`` counts as its default.
    """
    defaults = TrainConfig.__dataclass_fields__
    out = []
    for name, value in wanted.items():
        if name in allowed:
            continue
        field = defaults[name]
        default = (field.default_factory() if field.default_factory is not dataclasses.MISSING
                   else field.default)
        before = saved.get(name, json.loads(json.dumps(
            list(default) if isinstance(default, tuple) else default)))
        if before != value:
            out.append((name, before, value))
    return out


class ResumeConflict(RunDirError):
    """A resume asked for settings that contradict the run's ``config.json``.

    ``differences``: ``(field, the run's value, the value asked for)``.
    """

    def __init__(self, out: Path, differences: list[tuple[str, Any, Any]]) -> None:
        self.out, self.differences = out, differences
        said = "; ".join(f"{f}={new!r} (the run has {old!r})" for f, old, new in differences)
        super().__init__(f"cannot resume {out} with other settings: {said}; a resumed run "
                         f"keeps its settings (only {', '.join(RESUMABLE_FIELDS)} may change)")


def check_resumable(saved: dict[str, Any] | None, cfg: TrainConfig, out: Path) -> None:
    """Raise :class:`ResumeConflict` when ``cfg`` contradicts the run's saved
    ``config.json`` (``saved``; ``None`` where the run has none) outside
    :data:`RESUMABLE_FIELDS`."""
    if saved is not None:
        differences = config_differences(saved, cfg.to_json())
        if differences:
            raise ResumeConflict(out, differences)
