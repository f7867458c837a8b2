"""Training and evaluation: the Trainer, atomic checkpoints, resume, DDP.

Defaults follow the papers (VMT-Adapter Sec. 5.1, Polyhistor Sec. 5): Adam,
learning rate 1e-4, weight decay 1e-4, the learning rate decayed linearly to
zero over the run, batch 12, the PASCAL-Context losses and weights
(``vmtlib.losses``). The CPU course changes only the setting (swin_nano at
128x128 on SyntheticScenes), never the recipe of one method against another.

A run directory holds

- ``config.json``: the :class:`TrainConfig` of the run;
- ``metrics.jsonl``: one line per evaluation, ``{"step", "metrics", "delta_m"}``;
- ``losses.jsonl``: the training loss every ``LOG_EVERY`` steps, ``{"step",
  "lr", "loss", "losses": {task: unweighted loss}, "images_per_second"}``;
- ``checkpoint.pt``: the trainable parameters (and the decoders' buffers),
  optimizer, scheduler, step, training seconds and RNG states, written atomically;
- ``final.json``: per-task metrics, delta_m where a reference exists,
  trainable parameter counts, images per second (of the last invocation) and
  ``train_seconds``: the training loop's wall time over every invocation of a
  resumed run (periodic evaluations included, the final one not).

Under ``torchrun --nproc_per_node N`` the same entry point trains with
DistributedDataParallel: DDP hooks only parameters that require grad, so only
the method's parameters and the decoders are all-reduced; evaluation meters
are summed across ranks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from vmtlib.backbone import weights_fingerprint
from vmtlib.data import PascalContext, SyntheticScenes
from vmtlib.data.transforms import train_transform, val_transform
from vmtlib.losses import multitask_loss
from vmtlib.metrics import TaskMeter, delta_m
from vmtlib.model import MultiTaskModel, build_model, count_parameters
from vmtlib.tasks import ALL_TASKS, TASKS, parse_tasks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT = "checkpoint.pt"
LOG_EVERY = 10  # steps between progress-bar updates: the loop's only per-step host-device sync
# (checkpoints, evaluations and step hooks that read values sync when they run; under
# DDP on GPUs, SyncBatchNorm's forward also syncs once per BatchNorm layer per step)
COURSE_LR = 1e-3
"""The learning rate of the CPU course's measured runs (``benchmarks/``), for every
method alike: ten times the papers' 1e-4, because a course run has 300 steps where
the papers' 60 PASCAL-Context epochs have about 25,000. At 1e-4 a 200-step comparison
left every method near chance (single-task full fine-tuning: 7.0 semseg mIoU in an
earlier ``benchmarks/results/compare.json`` of the git history, against 17.6 at 1e-3 and
300 steps in the current one). ``TrainConfig.lr`` keeps the papers' value."""

# Called after the forward pass and before the backward pass of every step:
# ``hook(trainer, step, batch, outputs, losses)`` with the unweighted per-task
# losses; gradient-conflict recording (``vmtlib.analysis``) is one.
StepHook = Callable[["Trainer", int, dict[str, Any], dict[str, torch.Tensor],
                     dict[str, torch.Tensor]], None]


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on. The defaults run the CPU course.

    ``steps`` wins over ``epochs`` when both are given; with neither, 300 steps.
    ``data`` is ``"synthetic"`` or the path of a PASCAL_MT folder.
    """

    method: str = "vmt_adapter"
    backbone: str = "swin_nano"
    pretrained: bool | str = True
    data: str = "synthetic"
    tasks: tuple[str, ...] = ALL_TASKS
    method_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    decoder: str = "segformer"
    decoder_dim: int | None = None  # None: the backbone's (SwinConfig.decoder_dim)
    img_size: int = 128
    batch_size: int = 12
    steps: int | None = None
    epochs: float | None = None
    lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    eval_every: int = 0  # 0: evaluate at the end only
    eval_batches: int | None = None  # None: the whole validation split
    train_size: int = 20_000  # synthetic scenes per "epoch"
    val_size: int = 256
    val_seed: int = 2  # the held-out synthetic scenes (training scenes are seed 1)
    seed: int = 0
    num_workers: int = 0
    out: str = "runs/latest"
    reference: dict[str, float] | None = None  # delta_m reference; PASCAL: the papers'
    compile: bool = False
    progress: bool = True
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda | cuda:1 ...
    bf16: bool | None = None  # bfloat16 autocast; None: on CUDA only

    def __post_init__(self) -> None:
        self.tasks = parse_tasks(self.tasks)
        if self.img_size % 32:
            raise ValueError(f"img_size must be divisible by 32, got {self.img_size}")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ----------------------------------------------------------------------------- set-up


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def distributed_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str = "auto") -> torch.device:
    """Start the process group when launched by torchrun; return this rank's device.

    ``device="auto"`` takes CUDA when available (rank ``LOCAL_RANK``'s GPU).
    """
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if not cuda:
        return torch.device("cpu")
    if device not in ("auto", "cuda"):  # an explicit cuda:N
        torch.cuda.set_device(device)  # else pinned memory opens a context on GPU 0 too
        return torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """Train and validation datasets of ``cfg.data`` at ``cfg.img_size``."""
    if cfg.data == "synthetic":
        train = SyntheticScenes(cfg.train_size, size=cfg.img_size, seed=1)
        val = SyntheticScenes(cfg.val_size, size=cfg.img_size, seed=cfg.val_seed)
        return train, val
    root = Path(cfg.data)
    train = PascalContext(root, "train", cfg.tasks, transform=train_transform(cfg.img_size,
                                                                               normalize=False))
    val = PascalContext(root, "val", cfg.tasks, transform=val_transform(cfg.img_size,
                                                                         normalize=False))
    return train, val


class StepBatchSampler(Sampler[list[int]]):
    """Batches as a pure function of ``(seed, step, rank)``, so a resumed run
    sees exactly the batches it would have seen without the interruption.

    Epoch e is a permutation drawn from ``seed * 100003 + e``; each rank takes
    every ``world``-th batch-sized slice of it.
    """

    def __init__(self, n: int, batch_size: int, start: int, stop: int, seed: int,
                 rank: int = 0, world: int = 1) -> None:
        self.n, self.batch_size, self.start, self.stop = n, batch_size, start, stop
        self.seed, self.rank, self.world = seed, rank, world
        self.per_epoch = max(1, n // (batch_size * world))

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[int]]:
        perm, epoch = None, -1
        for step in range(self.start, self.stop):
            e, i = divmod(step, self.per_epoch)
            if e != epoch:
                g = torch.Generator().manual_seed(self.seed * 100003 + e)
                perm, epoch = torch.randperm(self.n, generator=g), e
            first = (i * self.world + self.rank) * self.batch_size
            yield perm[first:first + self.batch_size].tolist()


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep ``meta`` as a list."""
    out: dict[str, Any] = {"meta": [s["meta"] for s in samples]}
    for key in samples[0]:
        if key != "meta":
            out[key] = torch.stack([s[key] for s in samples])
    return out


# ----------------------------------------------------------------------------- checkpoints


def trainable_state(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    """The trainable parameters and the decoders' buffers (BatchNorm statistics)."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
        if k in trainable or k.startswith("decoders.")
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file, fsync, rename.

    A kill at any moment leaves either the previous checkpoint or the new one.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: MultiTaskModel) -> dict[str, Any]:
    """Load a checkpoint (``weights_only``) into ``model``; return the whole state.

    Fails with a message naming both sides when the checkpoint was written by
    another method, backbone or task set.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved, here = state["model_info"], model.info
    for key in ("method", "backbone", "tasks", "decoder"):
        if saved[key] != here[key]:
            raise ValueError(
                f"{path} was written by {key}={saved[key]!r} "
                f"(method {saved['method']!r}, backbone {saved['backbone']!r}) and cannot be "
                f"loaded into a model with {key}={here[key]!r} "
                f"(method {here['method']!r}, backbone {here['backbone']!r})"
            )
    missing = set(trainable_state(model)) - set(state["model"])
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
    model.load_state_dict(state["model"], strict=False)
    return state


# ----------------------------------------------------------------------------- the Trainer


def linear_decay(total_steps: int):
    """The papers' schedule: the learning rate falls linearly to zero over the run."""
    return lambda step: max(0.0, 1.0 - step / max(1, total_steps))


class Trainer:
    """Train one method on one task set (see the module docstring).

    ``Trainer(cfg).fit()`` returns the final metrics; it resumes from
    ``cfg.out/checkpoint.pt`` when ``resume=True``.
    """

    def __init__(
        self, cfg: TrainConfig, resume: bool = False, step_hooks: Sequence[StepHook] = ()
    ) -> None:
        self.cfg = cfg
        self.step_hooks = list(step_hooks)
        self.device = init_distributed(cfg.device)
        self.rank, self.world = distributed_info()
        self.out = Path(cfg.out)
        seed_everything(cfg.seed)
        self.model = build_model(
            cfg.method, backbone=cfg.backbone, tasks=cfg.tasks, pretrained=cfg.pretrained,
            decoder=cfg.decoder, decoder_dim=cfg.decoder_dim, img_size=cfg.img_size,
            **cfg.method_kwargs,
        ).to(self.device)
        self.weights = weights_fingerprint(cfg.backbone, cfg.pretrained)  # what was loaded
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_set, self.val_set = build_datasets(cfg)
        self.total_steps = self._total_steps()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay,
            fused=self.device.type == "cuda" or None,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_decay(self.total_steps)
        )
        self.step = 0
        self.train_seconds = 0.0  # the training loop's, over every invocation of a resumed run
        if resume and (self.out / CHECKPOINT).is_file():
            self._restore(load_checkpoint(self.out / CHECKPOINT, self.model))
        if self.rank > 0:
            # Every rank built the same model from cfg.seed (DDP broadcasts it anyway);
            # from here each rank draws its own augmentations and dropout masks. The
            # checkpoint holds rank 0's generators, so a resumed rank > 0 starts a new
            # stream from (seed, rank, step): distinct, reproducible, not a continuation.
            seed_everything(cfg.seed + 1_000_003 * self.rank + self.step)
        self.net: nn.Module = self.model
        if self.world > 1:
            if self.device.type == "cuda":  # decoder BatchNorm statistics over the global batch
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.compile:
            self.net = torch.compile(self.net)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self._normalize = lambda x: (x - mean) / std
        self.reference = cfg.reference
        if self.reference is None and cfg.data != "synthetic":
            self.reference = {t: TASKS[t].reference for t in cfg.tasks}

    # -- bookkeeping

    def _total_steps(self) -> int:
        if self.cfg.steps is not None:
            return self.cfg.steps
        if self.cfg.epochs is not None:
            per_epoch = max(1, len(self.train_set) // (self.cfg.batch_size * self.world))
            return max(1, math.ceil(self.cfg.epochs * per_epoch))
        return 300

    def _restore(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:  # the decoders' dropout
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        np.random.set_state(_numpy_rng_from(state["rng"]["numpy"]))
        random.seed(int(state["rng"]["python_seed"]) + self.step)

    def checkpoint_state(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "model": trainable_state(self.model),
            "model_info": self.model.info,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "train_seconds": self.train_seconds,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached": float(cached)},
                "python_seed": self.cfg.seed,
                **({"cuda": torch.cuda.get_rng_state(self.device)}
                   if self.device.type == "cuda" else {}),
            },
        }

    def save(self) -> None:
        if self.rank == 0:
            save_checkpoint(self.out / CHECKPOINT, self.checkpoint_state())

    def _loader(self, dataset: Dataset, sampler: Sampler) -> DataLoader:
        # Its own generator: the loader's worker seed is not drawn from the global
        # RNG, so a resumed run's dropout stream matches the uninterrupted run's;
        # one per rank, so that the ranks' workers draw different augmentations.
        seed = self.cfg.seed * 7919 + self.step + 104_729 * self.rank
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            dataset, batch_sampler=sampler, num_workers=self.cfg.num_workers,
            collate_fn=collate, pin_memory=self.device.type == "cuda", generator=generator,
        )

    def _autocast(self):
        bf16 = self.device.type == "cuda" if self.cfg.bf16 is None else self.cfg.bf16
        if bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if k != "meta"}
        out["image"] = self._normalize(out["image"])
        if self.device.type == "cuda":
            out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
        return out

    # -- the loop

    def fit(self) -> dict[str, Any]:
        """Train to ``total_steps`` (from wherever a resume left off), evaluate, write results."""
        cfg = self.cfg
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
            if self.step == 0:  # a fresh run: no lines of an earlier run in its logs
                (self.out / "metrics.jsonl").unlink(missing_ok=True)
                (self.out / "losses.jsonl").unlink(missing_ok=True)
        sampler = StepBatchSampler(len(self.train_set), cfg.batch_size, self.step,
                                   self.total_steps, cfg.seed, self.rank, self.world)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not cfg.progress
                   or self.rank != 0, desc=f"{cfg.method}", unit="step", dynamic_ncols=True)
        self.net.train()
        images_seen, start = 0, time.perf_counter()
        seconds_before = self.train_seconds
        save_every = max(1, min(100, self.total_steps // 5))
        params = [p for p in self.model.parameters() if p.requires_grad]
        for batch in self._loader(self.train_set, sampler):
            batch = self._to_device(batch)
            with self._autocast():
                outputs = self.net(batch["image"])
                loss, parts = multitask_loss(outputs, batch, cfg.tasks)
            for hook in self.step_hooks:
                hook(self, self.step, batch, outputs, parts)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            images_seen += batch["image"].shape[0] * self.world
            if self.step % LOG_EVERY == 0 or self.step == self.total_steps:
                value = loss.item()  # waits for the step, so the rate below is its true one
                rate = images_seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{value:.3f}", img_s=f"{rate:.1f}")
                self._log_losses(value, parts, rate)
            bar.update(1)
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < self.total_steps:
                self._log_eval()
                self.net.train()
            if self.step % save_every == 0:
                self.train_seconds = seconds_before + time.perf_counter() - start
                self.save()
            del outputs, loss, parts  # else they stay alive through the next forward pass
        bar.close()
        train_seconds = time.perf_counter() - start if images_seen else 0.0
        self.train_seconds = seconds_before + train_seconds
        self.save()
        metrics = self._log_eval()
        if images_seen:
            rate = images_seen / max(train_seconds, 1e-9)
        else:  # a finished run fitted again: the rate of its earlier invocations
            rate = self.step * cfg.batch_size * self.world / max(self.train_seconds, 1e-9)
        return self._final(metrics, rate)

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Per-task metrics over the validation split (sharded over ranks, then merged)."""
        self.net.eval()
        meters = {t: TaskMeter(t) for t in self.cfg.tasks}
        n_batches = math.ceil(len(self.val_set) / (self.cfg.batch_size * self.world))
        if self.cfg.eval_batches is not None:
            n_batches = min(n_batches, self.cfg.eval_batches)
        sampler = _ShardSampler(len(self.val_set), self.cfg.batch_size, n_batches,
                                self.rank, self.world)
        for batch in self._loader(self.val_set, sampler):
            batch = self._to_device(batch)
            with self._autocast():
                outputs = self.model(batch["image"])
            for t in self.cfg.tasks:
                meters[t].update(outputs[t].float(), batch[t])
        if self.world > 1:
            for meter in meters.values():
                meter.all_reduce_(device=self.device)
        return {t: m.compute() for t, m in meters.items()}

    def _log_losses(self, loss: float, parts: dict[str, torch.Tensor],
                    images_per_second: float) -> None:
        if self.rank != 0:
            return
        line = {"step": self.step, "lr": self.scheduler.get_last_lr()[0], "loss": loss,
                "losses": {t: v.item() for t, v in parts.items()},
                "images_per_second": images_per_second}
        with open(self.out / "losses.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def _log_eval(self) -> dict[str, dict[str, float]]:
        metrics = self.evaluate()
        if self.rank == 0:
            line = {"step": self.step, "metrics": metrics, "delta_m": self._delta_m(metrics)}
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
        return metrics

    def _delta_m(self, metrics: dict[str, dict[str, float]]) -> float | None:
        if self.reference is None:
            return None
        scores = {t: metrics[t][TASKS[t].metric] for t in self.cfg.tasks}
        return delta_m(scores, self.reference)

    def _final(self, metrics: dict[str, dict[str, float]], images_per_second: float):
        counts = count_parameters(self.model)
        result = {
            "method": self.cfg.method,
            "method_kwargs": self.model.info["kwargs"],
            "backbone": self.cfg.backbone,
            "pretrained": self.cfg.pretrained,
            "weights": self.weights,
            "tasks": list(self.cfg.tasks),
            "steps": self.step,
            "metrics": metrics,
            "delta_m": self._delta_m(metrics),
            "parameters": counts,
            "train_images_per_second": images_per_second,
            "train_seconds": self.train_seconds,
        }
        if self.rank == 0:
            (self.out / "final.json").write_text(json.dumps(result, indent=2) + "\n")
        return result


class _ShardSampler(Sampler[list[int]]):
    """Consecutive evaluation batches, every ``world``-th one on this rank."""

    def __init__(self, n: int, batch_size: int, n_batches: int, rank: int, world: int) -> None:
        self.batches = [
            list(range(i * batch_size, min(n, (i + 1) * batch_size)))
            for i in range(rank, n_batches * world, world)
            if i * batch_size < n
        ]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)


def _numpy_rng_from(d: dict[str, Any]) -> tuple:
    return ("MT19937", d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"])


def evaluate_run(run_dir: str | Path, data: str | None = None) -> dict[str, Any]:
    """Re-evaluate a saved run (``python -m vmtlib eval --run DIR``)."""
    run_dir = Path(run_dir)
    cfg = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text()))
    if data is not None:
        cfg.data = data
    cfg.out = str(run_dir)
    trainer = Trainer(cfg, resume=False)
    load_checkpoint(run_dir / CHECKPOINT, trainer.model)
    metrics = trainer.evaluate()
    return {"run": str(run_dir), "data": cfg.data, "metrics": metrics,
            "delta_m": trainer._delta_m(metrics)}
