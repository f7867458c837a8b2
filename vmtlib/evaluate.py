"""The datasets of a run, its device, and re-evaluating a saved run.

:func:`evaluate_run` (``python -m vmtlib eval --run DIR``) builds only what evaluation
needs: the model (the frozen backbone rebuilt from the run's seed and weights, the
trainable tensors from ``checkpoint.pt``) and the validation set. It writes nothing,
and refuses a backbone whose weights fingerprint differs from the run's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vmtlib.backbone import weights_fingerprint
from vmtlib.batches import evaluate_model
from vmtlib.data import PascalContext, SyntheticScenes
from vmtlib.data.transforms import train_transform, val_transform
from vmtlib.devices import resolve_device
from vmtlib.metrics import delta_m
from vmtlib.model import MultiTaskModel, build_model
from vmtlib.rng import seed_everything
from vmtlib.rundir import CHECKPOINT, RunDir, apply_checkpoint, check_weights, read_checkpoint
from vmtlib.tasks import TASKS
from vmtlib.train_config import TrainConfig


def build_model_of(cfg: TrainConfig, device: torch.device) -> MultiTaskModel:
    """The run's model, seeded as the Trainer seeds it (a random frozen backbone is
    rebuilt from ``cfg.seed``); a bad hyper-parameter gives a ``ValueError``."""
    seed_everything(cfg.seed)
    try:
        model = build_model(
            cfg.method, backbone=cfg.backbone, tasks=cfg.tasks, pretrained=cfg.pretrained,
            decoder=cfg.decoder, decoder_dim=cfg.decoder_dim, img_size=cfg.img_size,
            **cfg.method_kwargs,
        )
    except TypeError as err:  # a hyper-parameter of the wrong type reaching the method
        raise ValueError(f"{cfg.method} with {cfg.method_kwargs}: {err}") from err
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def check_split_files(dataset: Dataset) -> None:
    """Every image id of a PASCAL_MT split has its JPEG (checked before training, not when
    the id is first drawn); other datasets pass."""
    if not isinstance(dataset, PascalContext):
        return
    missing = [i for i in dataset.ids if not dataset.path("image", i).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} id(s) of split {dataset.split!r} have no image file, e.g. "
            f"{dataset.path('image', missing[0])} (ids {missing[:3]})")


def build_train_set(cfg: TrainConfig) -> Dataset:
    if cfg.data == "synthetic":
        return SyntheticScenes(cfg.train_size, size=cfg.img_size, seed=1)
    return PascalContext(Path(cfg.data), "train", cfg.tasks,
                         transform=train_transform(cfg.img_size, normalize=False))


def build_val_set(cfg: TrainConfig) -> Dataset:
    if cfg.data == "synthetic":
        return SyntheticScenes(cfg.val_size, size=cfg.img_size, seed=cfg.val_seed)
    return PascalContext(Path(cfg.data), "val", cfg.tasks,
                         transform=val_transform(cfg.img_size, normalize=False))


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """Train and validation datasets of ``cfg.data`` at ``cfg.img_size``."""
    return build_train_set(cfg), build_val_set(cfg)


def reference_of(cfg: TrainConfig) -> dict[str, float] | None:
    """The delta_m reference: the config's, else on PASCAL_MT the papers' numbers."""
    if cfg.reference is None and cfg.data != "synthetic":
        return {t: TASKS[t].reference for t in cfg.tasks}
    return cfg.reference


def run_delta_m(metrics: dict[str, dict[str, float]], cfg: TrainConfig) -> float | None:
    reference = reference_of(cfg)
    if reference is None:
        return None
    return delta_m({t: metrics[t][TASKS[t].metric] for t in cfg.tasks}, reference)


def evaluate_run(run_dir: str | Path, data: str | None = None) -> dict[str, Any]:
    """Re-evaluate a saved run (``python -m vmtlib eval --run DIR``); writes nothing."""
    run = RunDir(run_dir)
    saved = run.saved_config()
    if saved is None:
        raise FileNotFoundError(f"{run.path / 'config.json'} not found: {run.path} is not a "
                                f"run directory")
    cfg = TrainConfig.from_json(saved)
    cfg = dataclasses.replace(cfg, out=str(run.path), **({"data": data} if data else {}))
    device = resolve_device(cfg.device)
    state = read_checkpoint(run.path / CHECKPOINT)
    weights = weights_fingerprint(cfg.backbone, cfg.pretrained)
    check_weights(state, run, weights, cfg.pretrained)
    val_set = build_val_set(cfg)
    check_split_files(val_set)
    model = build_model_of(cfg, device)
    apply_checkpoint(state, model, run.path / CHECKPOINT)
    metrics = evaluate_model(model, val_set, cfg.tasks, cfg.batch_size,
                             cfg.eval_batches, device, cfg.num_workers, cfg.seed * 7919,
                             bf16=cfg.bf16)
    return {"run": str(run.path), "data": cfg.data, "metrics": metrics,
            "delta_m": run_delta_m(metrics, cfg)}
