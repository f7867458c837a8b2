"""VMT-Adapter's per-task work (Eq. 4-5) as written versus fused, timed for 1, 4 and 8 tasks.

Eq. 4, f_{t_i} = alpha_i (.) (s F) + gamma_i, and Eq. 5's sums are the only
parts of VMT-Adapter that run once per task: T copies of every block's
features, summed over the stage's blocks, then added to the shared stage
feature. They are element-wise, so their cost is memory traffic, not FLOPs
(``FlopCounterMode`` does not count them at all). Two orders of the same
arithmetic, timed here in one run on the same models and inputs:

- textbook (:func:`textbook_mlp_branch`, :func:`textbook_task_features`):
  ``s F``, ``alpha_i (.)``, ``+ gamma_i`` and the add to the stage's sum, each
  a pass over the T copies; Eq. 5 takes task i's part as ``parts[i]``, whose
  backward fills a zero tensor of all T copies for every task (O(T^2));
- fused (the library's ``KnowledgeExtraction.mlp_branch`` and
  ``VMTAdapter.task_features``): s folded into alpha_i, one ``addcmul`` into
  the stage's sum (in place after the stage's first block) and one in-place
  shift; Eq. 5 unbinds the parts, whose backward is one stack.

Each measurement is the encoder's training step (forward, and backward from
fixed random gradients of every task's four stage features, so no loss or
decoder is timed); the growth from T = 1 is what the tasks add to the encoder.
The orders alternate ``--repeats`` times and the fastest sample of each is
kept, the one least disturbed by other work on a shared machine. A CPU's
memory bandwidth is large next to its arithmetic, so the element-wise part
weighs more on a GPU.

Run: ``python benchmarks/bench_eq4.py [--img-size 512] [--batch-size N] [--device cuda]``
(on a GPU: bf16 autocast, batch 12 by default).
Prints a line per order and writes ``benchmarks/results/eq4.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from vmtlib import build_model
from vmtlib.analysis import task_set
from vmtlib.methods.vmt_adapter import KnowledgeExtraction, VMTAdapter
from vmtlib.utils import seconds_per_call, write_json_atomic

RESULTS = Path(__file__).parent / "results" / "eq4.json"
TASK_COUNTS = (1, 4, 8)


def textbook_mlp_branch(self: KnowledgeExtraction, h: torch.Tensor, x: torch.Tensor
                        ) -> torch.Tensor:
    """Eq. 3-4 in the paper's order: F, f_t = alpha_t (.) (s F) + gamma_t, added to the sum."""
    f = self.projection(x)
    s = torch.sigmoid(self.gate)
    f_task = self.alpha[:, None, None, :] * (s * f) + self.gamma[:, None, None, :]
    extras = self.state.stage_extras
    extras[self.stage] = extras[self.stage] + f_task if self.stage in extras else f_task
    return h + (1 - s) * f


def textbook_task_features(self: VMTAdapter, feats: list[torch.Tensor]
                           ) -> dict[str, list[torch.Tensor]]:
    """Eq. 5 with the mean over the stage's blocks, task i's part taken as ``parts[i]``."""
    per_task: dict[str, list[torch.Tensor]] = {t: [] for t in self.tasks}
    for s, shared in enumerate(feats):
        parts = self.state.stage_extras[s].reshape(len(self.tasks), *shared.shape)
        parts = parts / self.backbone.depths[s]
        for i, t in enumerate(self.tasks):
            per_task[t].append(shared + parts[i])
    return per_task


@contextlib.contextmanager
def textbook_order(model_class: type = VMTAdapter) -> Iterator[None]:
    """Within the block, ``model_class`` and its adapters compute Eq. 4-5 in the textbook order."""
    with mock.patch.object(KnowledgeExtraction, "mlp_branch", textbook_mlp_branch), \
            mock.patch.object(model_class, "task_features", textbook_task_features):
        yield


ORDERS = {"textbook": textbook_order, "fused": contextlib.nullcontext}


def encoder_step_seconds(backbone: str, img_size: int, batch_size: int, steps: int,
                         repeats: int, device: torch.device
                         ) -> dict[str, dict[int, float]]:
    """The fastest sample's seconds per encoder training step, ``{order: {T: s}}``
    (on CUDA under bf16 autocast, as the Trainer trains)."""
    torch.manual_seed(0)
    gpu = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if gpu else contextlib.nullcontext()
    images = torch.randn(batch_size, 3, img_size, img_size, device=device)
    steps_of: dict[int, Any] = {}
    for count in TASK_COUNTS:
        model = build_model("vmt_adapter", backbone=backbone, tasks=task_set(count),
                            img_size=img_size).train().to(device)
        with torch.no_grad():  # trained-like values: F != 0 and tasks differ
            for p in model.encoder.adapters.parameters():
                p.add_(0.01 * torch.randn_like(p))
        with torch.no_grad(), autocast:
            feats = [f for fs in model.encoder(images).values() for f in fs]
        grads = [torch.randn_like(f) for f in feats]

        def step(encoder=model.encoder, grads=grads) -> None:
            with autocast:
                feats = [f for fs in encoder(images).values() for f in fs]
            torch.autograd.backward(feats, grads)

        steps_of[count] = step

    samples: dict[str, dict[int, list[float]]] = {o: {t: [] for t in TASK_COUNTS} for o in ORDERS}
    for _ in range(repeats):
        for order, installed in ORDERS.items():
            with installed():
                for count, step in steps_of.items():
                    step()  # warm-up
                    samples[order][count].append(seconds_per_call(step, steps, device))
    return {o: {t: min(v) for t, v in by_t.items()} for o, by_t in samples.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="swin_tiny")
    parser.add_argument("--img-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: 12 on a GPU (the papers'), 1 on a CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per sample")
    parser.add_argument("--repeats", type=int, default=5, help="samples per order and T")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.batch_size is None:
        args.batch_size = 12 if device.type == "cuda" else 1

    seconds = encoder_step_seconds(args.backbone, args.img_size, args.batch_size,
                                   args.steps, args.repeats, device)
    rows = []
    for order, by_t in seconds.items():
        growth = {t: by_t[t] / by_t[1] - 1 for t in TASK_COUNTS[1:]}
        rows.append({"order": order, "seconds": {str(t): v for t, v in by_t.items()},
                     "growth": {str(t): g for t, g in growth.items()}})
        print(f"{order:<9} encoder training step, ms: "
              + "  ".join(f"T={t} {v * 1e3:7.1f}" for t, v in by_t.items())
              + "  growth: " + "  ".join(f"T={t} {100 * g:+.1f}%" for t, g in growth.items()))
    report = {
        "config": {**{k: v for k, v in vars(args).items() if k != "out"},
                   "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                   else "cpu"),
                   "torch": torch.__version__,
                   "command": " ".join(["python", "benchmarks/bench_eq4.py",
                                        *(sys.argv[1:] if argv is None else argv)]),
                   "date": datetime.date.today().isoformat()},
        "rows": rows,
    }
    write_json_atomic(args.out, report)
    return report


if __name__ == "__main__":
    main()
