"""Scores at each image's native resolution, the protocol of the papers' final tables.

The Trainer's evaluation (``Trainer.evaluate``, ``python -m vmtlib eval``) scores at
the training resolution: the validation transform resizes the labels to
``img_size x img_size`` (nearest-exact for the class maps, validity-aware for the
normals). MTI-Net's final offline evaluation, which the MTI-Net / MTLoRA line of
work reports, instead scores each prediction against the label **as stored**:

1. the image is resized as for validation (bilinear to ``img_size x img_size``,
   ImageNet normalisation) and the model predicts;
2. each task's raw output (logits; the normals field) is resized bilinearly
   (``align_corners=False``) to the stored label's ``H x W``;
3. the meters of :mod:`vmtlib.metrics` are fed the stored labels, unresized.

So no label pixel is resampled: the offsets of the resized protocol (labels
resized with torch ``nearest-exact`` where the peers use cv2 ``INTER_NEAREST``, and
the peers' bicubic normals resize) do not arise. One difference to MTI-Net's code
remains: it writes predictions as 8-bit PNGs (saliency ``255 * sigmoid``, normals
``255 * (n + 1) / 2``) before scoring them; here the float predictions are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from vmtlib.devices import resolve_device
from vmtlib.metrics import TaskMeter, delta_m
from vmtlib.model import MultiTaskModel
from vmtlib.tasks import TASKS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@torch.no_grad()
def evaluate_native(model: MultiTaskModel, dataset: Dataset, img_size: int | None = None,
                    batch_size: int = 8, device: str | torch.device | None = None,
                    max_images: int | None = None, progress: bool = False
                    ) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` on ``dataset`` at each image's native resolution.

    ``dataset`` returns untransformed samples (``PascalContext(root, "val", tasks)``
    without a transform, or ``SyntheticScenes``): ``image`` float ``3 x H x W`` in
    [0, 1] and the labels at the same ``H x W``. ``img_size``: the model's input side
    (default ``model.info["img_size"]``). Returns ``{task: TaskMeter.compute()}``.
    """
    size = int(img_size or model.info["img_size"])
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    tasks = model.tasks
    meters = {t: TaskMeter(t) for t in tasks}
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    model.eval()
    bar = tqdm(total=n, desc="eval (native)", unit="image", disable=not progress)
    for start in range(0, n, batch_size):
        samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
        images = torch.stack([
            F.interpolate(s["image"][None].float(), size=(size, size), mode="bilinear",
                          align_corners=False)[0] for s in samples]).to(device)
        outputs = model((images - mean) / std)
        for i, s in enumerate(samples):
            hw = tuple(s["image"].shape[-2:])
            for t in tasks:
                pred = F.interpolate(outputs[t][i:i + 1].float(), size=hw, mode="bilinear",
                                     align_corners=False)
                meters[t].update(pred, s[t][None].to(device))
        bar.update(len(samples))
    bar.close()
    return {t: m.compute() for t, m in meters.items()}


def _val_dataset(data: str, tasks: Sequence[str], cfg: dict[str, Any]) -> Dataset:
    if data == "synthetic":
        from vmtlib.data import SyntheticScenes

        # the Trainer's validation scenes (vmtlib.train.build_datasets)
        return SyntheticScenes(int(cfg.get("val_size", 256)), size=int(cfg.get("img_size", 128)),
                               seed=2)
    from vmtlib.data import PascalContext

    return PascalContext(data, "val", tasks)


def evaluate_run_native(run_dir: str | Path, data: str | None = None, batch_size: int = 8,
                        device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """``python -m vmtlib eval --run DIR --native-resolution``: a saved run scored at each
    validation image's native resolution (``data``: default the run's)."""
    from vmtlib.adapter_file import model_from_run

    model, cfg = model_from_run(run_dir)
    device = resolve_device(device)
    model = model.to(device)
    data = data or cfg.get("data", "synthetic")
    dataset = _val_dataset(data, model.tasks, cfg)
    metrics = evaluate_native(model, dataset, batch_size=batch_size, device=device,
                              progress=progress)
    reference = cfg.get("reference")
    if reference is None and data != "synthetic":
        reference = {t: TASKS[t].reference for t in model.tasks}
    scores = {t: metrics[t][TASKS[t].metric] for t in model.tasks}
    return {"run": str(run_dir), "data": data, "protocol": "native resolution",
            "metrics": metrics, "delta_m": delta_m(scores, reference) if reference else None}

