"""Training: the Trainer, its loop, resume, DDP.

Defaults follow the papers (VMT-Adapter Sec. 5.1, Polyhistor Sec. 5): Adam,
learning rate 1e-4, weight decay 1e-4, the learning rate decayed linearly to
zero over the run, batch 12, the PASCAL-Context losses and weights
(``vmtlib.losses``). The CPU course changes only the setting (swin_nano at
128x128 on SyntheticScenes), never the recipe of one method against another.

A run directory (``vmtlib.rundir``, whose docstring lists its files) holds the
run's ``config.json``, its logs, its checkpoint and ``final.json``.

What a Trainer does with a run directory that already holds something is its
``mode`` (``vmtlib.rundir.MODES``): ``Trainer(cfg)`` replaces a run there
(``overwrite``), ``Trainer(cfg, resume=True)`` continues its checkpoint or starts
afresh without one (``resume_or_new``); the CLI is stricter (``new`` unless
``--resume`` / ``--overwrite``). A resume refuses settings that contradict the
run's ``config.json`` (``vmtlib.train_config.RESUMABLE_FIELDS`` may change) and
backbone weights with another fingerprint, and trims the logs back to the
checkpoint's step. Everything is checked before the first write; one process at
a time holds the run (``.lock``). A non-finite loss stops the run with
:class:`vmtlib.divergence.TrainingDiverged` without saving; SIGINT / SIGTERM save a
checkpoint at the step reached and raise :class:`vmtlib.interrupts.TrainingInterrupted`.

Under ``torchrun --nproc_per_node N`` (``vmtlib.devices``) the same entry point
trains with DistributedDataParallel: DDP hooks only parameters that require grad,
so only the method's parameters and the decoders are all-reduced; evaluation meters
are summed across ranks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from vmtlib.backbone import weights_fingerprint
from vmtlib.batches import (  # noqa: F401  (re-exported: notebooks import them from here)
    IMAGENET_MEAN,
    IMAGENET_STD,
    DevicePlacer,
    StepBatchSampler,
    autocast,
    collate,
    evaluate_model,
    make_loader,
)
from vmtlib.devices import (  # noqa: F401  (re-exported)
    any_rank,
    check_device_available,
    distributed_info,
    init_distributed,
)
from vmtlib.divergence import (  # noqa: F401  (re-exported)
    DivergenceWatch,
    TrainingDiverged,
    check_finite_weights,
)
from vmtlib.evaluate import (  # noqa: F401  (re-exported)
    build_datasets,
    build_model_of,
    check_split_files,
    evaluate_run,
    reference_of,
    run_delta_m,
)
from vmtlib.interrupts import GracefulStop, TrainingInterrupted
from vmtlib.losses import multitask_loss
from vmtlib.model import count_parameters
from vmtlib.rng import RNGState, seed_everything
from vmtlib.rundir import (  # noqa: F401  (re-exported)
    CHECKPOINT,
    CONFIG,
    FINAL,
    LOSSES,
    METRICS,
    NEW,
    OVERWRITE,
    RESUME,
    RESUME_OR_NEW,
    RunDir,
    RunDirError,
    check_weights,
    load_checkpoint,
    save_checkpoint,
    trainable_state,
)
from vmtlib.train_config import (  # noqa: F401  (re-exported)
    RESUMABLE_FIELDS,
    ResumeConflict,
    TrainConfig,
    check_resumable,
    config_differences,
)

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


# ----------------------------------------------------------------------------- set-up


def linear_decay(total_steps: int):
    """The papers' schedule: the learning rate falls linearly to zero over the run."""
    return lambda step: max(0.0, 1.0 - step / max(1, total_steps))


# ----------------------------------------------------------------------------- the Trainer


class Trainer:
    """Train one method on one task set (see the module docstring).

    ``Trainer(cfg).fit()`` returns the final metrics; ``resume=True`` continues from
    ``cfg.out/checkpoint.pt`` when there is one. ``mode`` (``vmtlib.rundir.MODES``)
    overrides what ``resume`` implies for the run directory.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False,
                 step_hooks: Sequence[StepHook] = (), *, mode: str | None = None) -> None:
        self.cfg = cfg
        self.step_hooks = list(step_hooks)
        self.mode = mode or (RESUME_OR_NEW if resume else OVERWRITE)
        self.run = RunDir(cfg.out)
        self.out = self.run.path
        self.device = init_distributed(cfg.device)
        self.rank, self.world = distributed_info()
        self.run.check_start(self.mode)  # reads only: nothing is written before fit()
        resuming = self.mode in (RESUME, RESUME_OR_NEW) and (self.out / CHECKPOINT).is_file()
        if resuming:
            check_resumable(self.run.saved_config(), self.cfg, self.out)
        seed_everything(cfg.seed)
        self.model = build_model_of(cfg, self.device)
        self.weights = weights_fingerprint(cfg.backbone, cfg.pretrained)  # what was loaded
        self.train_set, self.val_set = build_datasets(cfg)
        check_split_files(self.train_set)
        check_split_files(self.val_set)
        if cfg.batch_size * self.world > len(self.train_set):
            raise ValueError(f"batch_size {cfg.batch_size} x {self.world} process(es) exceeds "
                             f"the {len(self.train_set)} training images of {cfg.data}")
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
        self.saved_step: int | None = None  # the step of the checkpoint on disk
        self._restored_from: tuple[int, int] | None = None
        if resuming:
            path = self.out / CHECKPOINT
            stat = path.stat()
            state = load_checkpoint(path, self.model)
            check_weights(state, self.run, self.weights, cfg.pretrained)
            self._restore(state)
            self._restored_from = (stat.st_mtime_ns, stat.st_size)
            if self.step > self.total_steps:
                raise RunDirError(f"{self.out} is already at step {self.step}, past the "
                                  f"{self.total_steps} steps asked for; give more steps")
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
        self._to_device = DevicePlacer(self.device)
        self.reference = reference_of(cfg)

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
        self.step = self.saved_step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        RNGState.from_dict(state["rng"]).restore(self.device, self.step)

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": trainable_state(self.model),
            "model_info": self.model.info,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "train_seconds": self.train_seconds,
            "rng": RNGState.capture(self.device, self.cfg.seed).to_dict(),
            "weights": self.weights,
        }

    def save(self) -> None:
        """Write the checkpoint (rank 0), never from non-finite weights."""
        check_finite_weights((p for p in self.model.parameters() if p.requires_grad),
                             self.step, self.out / CHECKPOINT, self.saved_step)
        if self.rank == 0:
            save_checkpoint(self.out / CHECKPOINT, self.checkpoint_state())
        self.saved_step = self.step

    def _loader_seed(self) -> int:
        # A loader's own generator: its worker seed is not drawn from the global RNG,
        # so a resumed run's dropout stream matches the uninterrupted run's; one per
        # rank, so that the ranks' workers draw different augmentations.
        return self.cfg.seed * 7919 + self.step + 104_729 * self.rank

    def _loader(self, dataset: Dataset, sampler: Sampler) -> DataLoader:
        return make_loader(dataset, sampler, self.cfg.num_workers, self.device,
                           self._loader_seed())

    # -- the run directory, under the lock

    def _open_run(self) -> None:
        """Recheck the folder under the lock, then clear it (a new run) or trim its logs
        (a resume) and write config.json."""
        if self.mode == NEW:
            self.run.check_start(NEW)  # another process may have started one meanwhile
        if self._restored_from is not None:
            stat = (self.out / CHECKPOINT).stat()
            if (stat.st_mtime_ns, stat.st_size) != self._restored_from:
                raise RunDirError(f"{self.out / CHECKPOINT} changed while this process was "
                                  f"starting; start it again")
            self.run.trim_logs(self.step, finished=self.step >= self.total_steps)
        else:
            self.run.clear()  # a new run: no file of an earlier run stays
        self.run.write_json(CONFIG, self.cfg.to_json())

    # -- the loop

    def fit(self) -> dict[str, Any]:
        """Train to ``total_steps`` (from wherever a resume left off), evaluate, write results."""
        lock = self.run.lock().acquire() if self.rank == 0 else None
        try:
            if self.rank == 0:
                self._open_run()
            with GracefulStop() as stop:
                return self._fit(stop)
        finally:
            if lock is not None:
                lock.release()

    def _stop_requested(self, stop: GracefulStop, log_point: bool) -> bool:
        if self.world == 1:
            return stop.requested
        if not log_point:  # ranks agree on when to stop at the log points only
            return False
        return any_rank(stop.requested, self.device)

    def _fit(self, stop: GracefulStop) -> dict[str, Any]:
        cfg = self.cfg
        sampler = StepBatchSampler(len(self.train_set), cfg.batch_size, self.step,
                                   self.total_steps, cfg.seed, self.rank, self.world)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not cfg.progress
                   or self.rank != 0, desc=f"{cfg.method}", unit="step", dynamic_ncols=True)
        self.net.train()
        images_seen, start = 0, time.perf_counter()
        seconds_before = self.train_seconds
        save_every = cfg.checkpoint_every or max(1, min(100, self.total_steps // 5))
        params = [p for p in self.model.parameters() if p.requires_grad]
        watch = DivergenceWatch(cfg.tasks, self.device)
        for batch in self._loader(self.train_set, sampler):
            batch = self._to_device(batch)
            with autocast(self.device, cfg.bf16):
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
            watch.update(self.step, loss, parts)
            images_seen += batch["image"].shape[0] * self.world
            log_point = self.step % LOG_EVERY == 0 or self.step == self.total_steps
            if log_point:
                watch.check(self.out / CHECKPOINT, self.saved_step)
                value = loss.item()  # waits for the step, so the rate below is its true one
                rate = images_seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{value:.3f}", img_s=f"{rate:.1f}")
                self._log_losses(value, parts, rate)
            bar.update(1)
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < self.total_steps:
                watch.check(self.out / CHECKPOINT, self.saved_step)
                self._log_eval()
                self.net.train()
            interrupted = self._stop_requested(stop, log_point)
            if self.step % save_every == 0 or interrupted:
                watch.check(self.out / CHECKPOINT, self.saved_step)
                self.train_seconds = seconds_before + time.perf_counter() - start
                self.save()
            del outputs, loss, parts  # else they stay alive through the next forward pass
            if interrupted:
                bar.close()
                raise TrainingInterrupted(stop.signum or 2, self.step, self.out)
        bar.close()
        watch.check(self.out / CHECKPOINT, self.saved_step)
        train_seconds = time.perf_counter() - start if images_seen else 0.0
        self.train_seconds = seconds_before + train_seconds
        self.save()
        try:
            metrics = self._log_eval(should_stop=(lambda: stop.requested)
                                     if self.world == 1 else None)
        except KeyboardInterrupt:
            if stop.signum is None:
                raise
            raise TrainingInterrupted(stop.signum, self.step, self.out) from None
        if images_seen:
            rate = images_seen / max(train_seconds, 1e-9)
        else:  # a finished run fitted again: the rate of its earlier invocations
            rate = self.step * cfg.batch_size * self.world / max(self.train_seconds, 1e-9)
        return self._final(metrics, rate)

    def evaluate(self, should_stop: Callable[[], bool] | None = None
                 ) -> dict[str, dict[str, float]]:
        """Per-task metrics over the validation split (sharded over ranks, then merged)."""
        return evaluate_model(self.model, self.val_set, self.cfg.tasks, self.cfg.batch_size,
                              self.cfg.eval_batches, self.device, self.cfg.num_workers,
                              self._loader_seed(),
                              self.rank, self.world, should_stop, self.cfg.bf16)

    def _log_losses(self, loss: float, parts: dict[str, torch.Tensor],
                    images_per_second: float) -> None:
        if self.rank != 0:
            return
        self.run.append(LOSSES, {
            "step": self.step, "lr": self.scheduler.get_last_lr()[0], "loss": loss,
            "losses": {t: v.item() for t, v in parts.items()},
            "images_per_second": images_per_second})

    def _log_eval(self, should_stop: Callable[[], bool] | None = None
                  ) -> dict[str, dict[str, float]]:
        metrics = self.evaluate(should_stop)
        if self.rank == 0:
            self.run.append(METRICS, {"step": self.step, "metrics": metrics,
                                      "delta_m": self._delta_m(metrics)})
        return metrics

    def _delta_m(self, metrics: dict[str, dict[str, float]]) -> float | None:
        return run_delta_m(metrics, self.cfg) if self.reference is not None else None

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
            self.run.write_json(FINAL, result)
        return result
