"""Gradient conflicts between tasks on the shared parameters (VMT-Adapter Fig. 4).

Trains each method (default: Shared Adapter and VMT-Adapter) with the same
budget on SyntheticScenes and records, every ``--every`` steps, the per-task
gradients g_i = dL_i / d theta_sh and cos phi_ij (Eq. 7-8) for every pair of
tasks (``vmtlib.analysis.GradientConflictRecorder``). theta_sh is
``vmtlib.analysis.shared_parameters``: everything the method shares (for
VMT-Adapter the projections and the gate); the cosines restricted to the
projections (the paper's exact theta_sh) are recorded as well, from the same
gradients.

The recording cost is measured in the same run: the seconds spent inside the
recorder against the training loop's seconds (``overhead``).

Run: ``python benchmarks/gradient_conflicts.py [--steps 300 --batch-size 12
--img-size 128 --every 10] --threads 1`` (3.2-3.4 minutes per method on one CPU
thread of the shared 2-core machine, ``wall_seconds`` in the JSON).
The pretrained swin_nano is used when ``vmtlib/weights/swin_nano.safetensors``
exists (``--pretrained auto``). Writes ``benchmarks/results/gradient_conflicts.json``
and ``figures/gradient_conflicts.png``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from vmtlib.analysis import (  # noqa: E402
    GradientConflictRecorder,
    conflict_summary,
    write_json_atomic,
)
from vmtlib.backbone import course_pretrained, weights_fingerprint  # noqa: E402
from vmtlib.plots import plot_gradient_conflicts, save_figure  # noqa: E402
from vmtlib.train import COURSE_LR, TrainConfig, Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The paper's theta_sh: the down / up projections (dense, low-rank or Kronecker factors).
PROJECTIONS = r"\.projection\.|\.down\.|\.up\."


def run_method(method: str, args: argparse.Namespace, pretrained: bool) -> dict:
    """Train ``method`` with the recorder; the JSON entry of the method."""
    out = ROOT / "runs" / "gradient_conflicts" / method
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: records are not resumable
    cfg = TrainConfig(
        method=method, backbone="swin_nano", pretrained=pretrained, img_size=args.img_size,
        batch_size=args.batch_size, steps=args.steps, lr=args.lr, val_size=args.val_size,
        seed=args.seed,
        out=str(out), progress=not args.no_progress,
    )
    recorder = GradientConflictRecorder(every=args.every, subsets={"projections": PROJECTIONS})
    trainer = Trainer(cfg, step_hooks=[recorder])
    start = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - start
    images_per_second = result["train_images_per_second"]
    train_seconds = args.steps * args.batch_size / images_per_second
    no_recorder = train_seconds - recorder.seconds
    per_step = [
        {"step": r["step"], "mean": statistics.fmean(r["cos"].values()),
         "P(cos>0)": sum(v > 0 for v in r["cos"].values()) / len(r["cos"])}
        for r in recorder.records
    ]
    projections = conflict_summary({
        k: [r["subsets"]["projections"][k] for r in recorder.records]
        for k in recorder.records[0]["cos"]
    })
    return {
        "method": method,
        "num_shared": recorder.num_shared,
        "shared_names": sorted({n.split(".hooks.")[-1] for n in recorder.params or {}}),
        "cosines": recorder.cosines(),
        "summary": conflict_summary(recorder.records),
        "summary_projections": projections,
        "steps": per_step,
        "records": recorder.records,
        "recorder_seconds": recorder.seconds,
        "recorded_steps": len(recorder.records),
        "train_seconds": train_seconds,
        "wall_seconds": wall,
        "overhead": recorder.seconds / max(no_recorder, 1e-9),
        "seconds_per_record": recorder.seconds / max(1, len(recorder.records)),
        "seconds_per_step_without_recording": no_recorder / args.steps,
        "final": {"metrics": result["metrics"], "parameters": result["parameters"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="adapter_shared,vmt_adapter")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=COURSE_LR)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--val-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrained", default="auto", type=course_pretrained,
                        help="auto | true | false")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "gradient_conflicts.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pretrained = args.pretrained
    config = {**vars(args), "pretrained": pretrained, "backbone": "swin_nano",
              "weights": weights_fingerprint("swin_nano", pretrained),
              "data": "synthetic", "projections_regex": PROJECTIONS,
              "command": " ".join(["python", "benchmarks/gradient_conflicts.py", *sys.argv[1:]])}
    methods = {}
    for method in args.methods.split(","):
        methods[method] = run_method(method, args, pretrained)
        write_json_atomic(args.out, {"config": config, "methods": methods})
        s = methods[method]["summary"]
        print(f"{method}: P(cos>0)={s['P(cos>0)']:.3f} P(cos<0)={s['P(cos<0)']:.3f} "
              f"mean={s['mean']:.3f} over {s['n']} cosines; recorder overhead "
              f"{100 * methods[method]['overhead']:.1f}% at every={args.every}")
    title = (f"Gradient conflicts on SyntheticScenes (swin_nano, "
             f"{'pretrained' if pretrained else 'random init'}, {args.steps} steps)")
    path = save_figure(plot_gradient_conflicts(methods, title=title), "gradient_conflicts")
    print(f"wrote {args.out} and {path}")


if __name__ == "__main__":
    main()
