"""Where does a run's normals error come from? Background planes versus objects.

For each run directory (``config.json`` + ``checkpoint.pt`` of ``vmtlib.train``)
this re-evaluates the normals head on the run's validation split and splits the
mean angular error (degrees, per valid pixel, as ``vmtlib.metrics``) into
*background* pixels (semseg 0: wall, floor, decals) and *object* pixels
(semseg > 0)::

    .venv/bin/python scripts/normals_by_region.py runs/compare/decoders_only \\
        runs/compare/decoders_only_random_init runs/compare/single_task_full

SyntheticScenes only (its semseg says which pixels are background).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmtlib.batches import DevicePlacer  # noqa: E402
from vmtlib.evaluate import build_model_of, build_val_set  # noqa: E402
from vmtlib.train import TrainConfig, load_checkpoint  # noqa: E402


@torch.no_grad()
def normals_by_region(run: Path, batch: int = 32) -> dict[str, float]:
    """Mean normals angle error (degrees) over background and object pixels of ``run``."""
    cfg = TrainConfig.from_json(json.loads((run / "config.json").read_text()))
    if cfg.data != "synthetic":
        raise SystemExit(f"{run}: data {cfg.data!r}; this split needs SyntheticScenes")
    cpu = torch.device("cpu")
    model = build_model_of(cfg, cpu)
    load_checkpoint(run / "checkpoint.pt", model)
    model.eval()
    val_set, place = build_val_set(cfg), DevicePlacer(cpu)
    sums = {"background": [0.0, 0], "objects": [0.0, 0]}
    n = len(val_set)
    for start in range(0, n, batch):
        items = [val_set[i] for i in range(start, min(n, start + batch))]
        image = torch.stack([it["image"] for it in items])
        target = torch.stack([it["normals"] for it in items])
        semseg = torch.stack([it["semseg"] for it in items])
        pred = F.normalize(model(place({"image": image})["image"])["normals"].float(), dim=1)
        angle = torch.rad2deg(torch.acos((pred * target).sum(1).clamp(-1.0, 1.0)))
        valid = target.abs().sum(1) > 0
        for region, mask in (("background", valid & (semseg == 0)),
                             ("objects", valid & (semseg > 0))):
            sums[region][0] += float(angle[mask].sum())
            sums[region][1] += int(mask.sum())
    out = {f"{k}_mean": s / max(c, 1) for k, (s, c) in sums.items()}
    out["background_share"] = sums["background"][1] / max(1, sums["background"][1]
                                                           + sums["objects"][1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'run':<40} {'background':>10} {'objects':>8} {'bg share':>8}")
    for run in args.runs:
        r = normals_by_region(run)
        print(f"{str(run):<40} {r['background_mean']:>10.2f} {r['objects_mean']:>8.2f} "
              f"{r['background_share']:>8.2f}")


if __name__ == "__main__":
    main()
