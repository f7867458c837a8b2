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

Every method is trained once per ``--seeds`` value (initialisation and batch
order); per method the JSON keeps seed ``seeds[0]``'s full record (the figure's
histograms; the per-step records themselves are
not kept) and every seed's summary, with the 95% interval over seeds of
P(cos > 0) and of the mean cosine, and the paired difference of the second
method minus the first over the same seeds (:mod:`vmtlib.stats`; "resolved" only
when its interval excludes 0). ``--lr-from benchmarks/results/evidence.json``
trains each method at the learning rate the course evidence chose for it.
Finished (method, seed) entries of an existing ``--out`` with the same
configuration are kept, so an interrupted sweep continues where it stopped.

Run: ``python benchmarks/gradient_conflicts.py [--steps 300 --batch-size 12
--img-size 128 --every 10 --seeds 0 1 2] --threads 1`` (3.2-3.4 minutes per method
and seed on one CPU thread of the shared 2-core machine, ``wall_seconds`` in the JSON).
The pretrained swin_nano is used when ``vmtlib/weights/swin_nano.safetensors``
exists (``--pretrained auto``). Writes ``benchmarks/results/gradient_conflicts.json``
and ``figures/gradient_conflicts.png``.
"""

from __future__ import annotations

import argparse
import json
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
from vmtlib.stats import mean_ci, paired_ci  # noqa: E402
from vmtlib.train import COURSE_LR, TrainConfig, Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The paper's theta_sh: the down / up projections (dense, low-rank or Kronecker factors).
PROJECTIONS = r"\.projection\.|\.down\.|\.up\."


def run_method(method: str, args: argparse.Namespace, pretrained: bool, seed: int,
               lr: float) -> dict:
    """Train ``method`` at ``seed`` and ``lr`` with the recorder; its JSON entry."""
    out = ROOT / "runs" / "gradient_conflicts" / f"{method}__s{seed}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: records are not resumable
    cfg = TrainConfig(
        method=method, backbone="swin_nano", pretrained=pretrained, img_size=args.img_size,
        batch_size=args.batch_size, steps=args.steps, lr=lr, val_size=args.val_size,
        seed=seed,
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
        "seed": seed,
        "lr": lr,
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


def chosen_lrs(path: Path) -> dict[str, float]:
    """The learning rate chosen per method in the course evidence's report."""
    if not path.is_file():
        sys.exit(f"--lr-from: {path} does not exist (run benchmarks/course_evidence.py first)")
    return {name: row["chosen"] for name, row in json.loads(path.read_text())["selection"].items()}


def across_seeds(entries: list[dict]) -> dict:
    """P(cos>0) and the mean cosine of each seed, and their 95% intervals over seeds."""
    per_seed = [{"seed": e["seed"], "P(cos>0)": e["summary"]["P(cos>0)"],
                 "mean": e["summary"]["mean"]} for e in entries]
    return {"per_seed": per_seed,
            **{f"{k}_ci": mean_ci([r[k] for r in per_seed]).to_json()
               for k in ("P(cos>0)", "mean")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="adapter_shared,vmt_adapter")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=COURSE_LR)
    parser.add_argument("--lr-from", type=Path, default=None,
                        help="evidence.json: each method at its chosen learning rate")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--val-size", type=int, default=96)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pretrained", default="auto", type=course_pretrained,
                        help="auto | true | false")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "gradient_conflicts.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pretrained = args.pretrained
    names = args.methods.split(",")
    lrs = chosen_lrs(args.lr_from) if args.lr_from else {m: args.lr for m in names}
    missing = [m for m in names if m not in lrs]
    if missing:
        sys.exit(f"--lr-from {args.lr_from}: no chosen learning rate for {missing}")
    config = {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "lrs": {m: lrs[m] for m in names}, "pretrained": pretrained,
              "backbone": "swin_nano", "weights": weights_fingerprint("swin_nano", pretrained),
              "data": "synthetic", "projections_regex": PROJECTIONS}
    config.pop("no_progress")
    config.pop("threads")
    out = Path(args.out)
    done: dict[tuple[str, int], dict] = {}
    if out.is_file():
        old = json.loads(out.read_text())
        if {k: v for k, v in old["config"].items() if k != "command"} == config:
            done = {(e["method"], e["seed"]): e for e in old.get("entries", [])}
    config["command"] = " ".join(["python", "benchmarks/gradient_conflicts.py", *sys.argv[1:]])

    def report() -> dict:
        entries = [{k: v for k, v in e.items() if k != "records"} for e in done.values()]
        methods, claims = {}, []
        for m in names:
            mine = sorted((e for e in entries if e["method"] == m), key=lambda e: e["seed"])
            if mine:
                methods[m] = {**mine[0], **across_seeds(mine)}
        if len(names) == 2 and all(m in methods for m in names):
            a, b = names[1], names[0]
            for key in ("P(cos>0)", "mean"):
                d = paired_ci({r["seed"]: r[key] for r in methods[a]["per_seed"]},
                              {r["seed"]: r[key] for r in methods[b]["per_seed"]})
                claims.append({"a": a, "b": b, "score": key, **d.to_json()})
        data = {"config": config, "methods": methods, "claims": claims, "entries": entries}
        write_json_atomic(out, data)
        return data

    for seed in args.seeds:
        for method in names:
            if (method, seed) in done:
                continue
            done[(method, seed)] = run_method(method, args, pretrained, seed, lrs[method])
            report()
            s = done[(method, seed)]["summary"]
            print(f"{method} seed {seed}: P(cos>0)={s['P(cos>0)']:.3f} "
                  f"P(cos<0)={s['P(cos<0)']:.3f} mean={s['mean']:.3f} over {s['n']} cosines; "
                  f"recorder overhead {100 * done[(method, seed)]['overhead']:.1f}% "
                  f"at every={args.every}")
    data = report()
    methods = data["methods"]
    for c in data["claims"]:
        print(f"{c['a']} - {c['b']}, {c['score']}: {c['mean']:+.3f} ± {c['half']:.3f} over "
              f"{c['n']} seeds ({'resolved' if c['resolved'] else 'not resolved'})")
    title = (f"Gradient conflicts on SyntheticScenes (swin_nano, "
             f"{'pretrained' if pretrained else 'random init'}, {args.steps} steps)")
    path = save_figure(plot_gradient_conflicts(methods, title=title), "gradient_conflicts")
    print(f"wrote {args.out} and {path}")


if __name__ == "__main__":
    main()
