"""The CPU course's method comparison on SyntheticScenes (the training issue's table).

Trains, for the same budget and recipe, single_task_full, multi_task_full,
decoders_only, adapter_shared, vmt_adapter and vmt_adapter_lite on the
pretrained swin_nano, plus decoders_only on a randomly initialised swin_nano
(the control that shows whether the pretraining transfers). Delta_m is taken
against single_task_full of the same budget. The *transfer check* trains that
control pair again for ``--transfer-steps`` (1500): in 300 steps no run, full
fine-tuning included, learns human parts, so only a longer budget can show
whether the frozen backbone helps there. No method is tuned more than
another: one recipe for all, the papers' (Adam, weight decay 1e-4, linear
decay, batch 12) with the course's learning rate ``vmtlib.train.COURSE_LR``.

Run: ``python benchmarks/compare_methods.py [--steps 300] [--batch-size 12]``.
Each run writes ``runs/compare/<name>/`` (``config.json``, ``metrics.jsonl``,
``checkpoint.pt``, ``final.json``); a finished run whose ``config.json``
and backbone weights (``final.json``'s ``weights``) match is not trained
again (``--force`` retrains), so an interrupted comparison resumes.
Writes ``benchmarks/results/compare.json`` (the check under ``transfer_check``),
``benchmarks/results/compare.md`` and ``figures/compare_methods.png``; with
``--results DIR`` (a variant: other steps, say) all three go to ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from vmtlib.analysis import headline_scores
from vmtlib.backbone import weights_fingerprint
from vmtlib.metrics import delta_m
from vmtlib.train import COURSE_LR, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# (name, method, pretrained)
RUNS = [
    ("single_task_full", "single_task_full", True),
    ("multi_task_full", "multi_task_full", True),
    ("decoders_only", "decoders_only", True),
    ("adapter_shared", "adapter_shared", True),
    ("vmt_adapter", "vmt_adapter", True),
    ("vmt_adapter_lite", "vmt_adapter_lite", True),
    ("decoders_only (random init)", "decoders_only", False),
]

# The transfer check: the control pair again, for long enough that every task is learnt
# (in --steps = 300 no run leaves the all-background prediction on human parts).
TRANSFER_RUNS = [r for r in RUNS if r[1] == "decoders_only"]


def run_dir(out: Path, name: str) -> Path:
    return out / name.replace(" ", "_").replace("(", "").replace(")", "")


def markdown(rows: list[dict]) -> str:
    head = ("| method | backbone init | semseg mIoU | parts mIoU | sal mIoU | normals mErr "
            "| Δm vs single-task (%) | trainable encoder / all | train img/s |")
    lines = [head, "|" + " --- |" * 9]
    for r in rows:
        m = r["metrics"]
        enc, total = r["parameters"]["encoder"], r["parameters"]["total"]
        dm = "—" if r["delta_m"] is None else f"{r['delta_m']:+.2f}"
        lines.append(
            f"| {r['name']} | {'pretrained' if r['pretrained'] else 'random'} "
            f"| {m['semseg']['mIoU']:.1f} | {m['human_parts']['mIoU']:.1f} "
            f"| {m['sal']['mIoU']:.1f} | {m['normals']['mean']:.1f} | {dm} "
            f"| {enc / 1e6:.3f}M / {total / 1e6:.3f}M | {r['train_images_per_second']:.1f} |"
        )
    return "\n".join(lines)


def same_config(out: Path, cfg: TrainConfig) -> bool:
    """Whether the finished run in ``out`` was trained with ``cfg`` (progress aside)
    on the weights ``cfg`` loads now."""
    path, final = out / "config.json", out / "final.json"
    if not (path.is_file() and final.is_file()):
        return False
    done = json.loads(path.read_text())
    want = cfg.to_json()
    weights = json.loads(final.read_text()).get("weights", "unrecorded")
    return (all(done.get(k) == v for k, v in want.items() if k != "progress")
            and weights == weights_fingerprint(cfg.backbone, cfg.pretrained))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=COURSE_LR,
                        help="the same for every method (vmtlib.train.COURSE_LR)")
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compare")
    parser.add_argument("--force", action="store_true", help="retrain runs that have final.json")
    parser.add_argument("--transfer-steps", type=int, default=1500,
                        help="steps of the transfer check (decoders_only, shipped vs random "
                             "backbone; 0 skips it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where compare.json / .md go (and the figure, when not the "
                             "committed results folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    def train(runs: list[tuple[str, str, bool]], steps: int, out_root: Path) -> list[dict]:
        rows = []
        for name, method, pretrained in runs:
            out = run_dir(out_root, name)
            cfg = TrainConfig(method=method, backbone="swin_nano", pretrained=pretrained,
                              steps=steps, batch_size=args.batch_size,
                              img_size=args.img_size, lr=args.lr, val_size=args.val_size,
                              seed=args.seed, out=str(out))
            if args.force or not same_config(out, cfg):
                print(f"== {name} ({steps} steps)", flush=True)
                Trainer(cfg).fit()
            result = json.loads((out / "final.json").read_text())
            result["name"] = result["label"] = name
            rows.append(result)
        return rows

    start = time.perf_counter()
    rows = train(RUNS, args.steps, args.out)
    transfer = []
    if args.transfer_steps:
        transfer_dir = args.out / f"transfer_{args.transfer_steps}"
        transfer = train(TRANSFER_RUNS, args.transfer_steps, transfer_dir)

    reference = headline_scores(rows[0]["metrics"])
    for r in rows:
        r["delta_m"] = delta_m(headline_scores(r["metrics"]), reference)
    setting = {"backbone": "swin_nano", "weights": weights_fingerprint("swin_nano", True),
               "data": "SyntheticScenes", "steps": args.steps,
               "batch_size": args.batch_size, "img_size": args.img_size, "lr": args.lr,
               "optimizer": "Adam, weight decay 1e-4, linear decay to zero",
               "val_size": args.val_size, "seed": args.seed, "threads": args.threads,
               "command": " ".join(["python", "benchmarks/compare_methods.py", *sys.argv[1:]]),
               "wall_seconds_this_invocation": round(time.perf_counter() - start, 1)}
    seconds = [r.get("train_seconds") for r in rows]
    if all(seconds):  # runs trained before the Trainer recorded it have none
        setting["train_seconds_of_the_runs"] = round(sum(seconds), 1)
    args.results.mkdir(parents=True, exist_ok=True)
    report = {"setting": setting, "reference": reference, "runs": rows}
    table = markdown(rows)
    if transfer:
        for r in transfer:
            r["delta_m"] = None  # no single_task_full reference at this budget
        report["transfer_check"] = {"steps": args.transfer_steps, "runs": transfer}
        table += (f"\n\nTransfer check: the control pair for {args.transfer_steps} steps\n\n"
                  + markdown(transfer))
    (args.results / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results / "compare.md").write_text(table + "\n")
    print(table)

    from vmtlib.plots import plot_comparison, save_figure

    committed = args.results.resolve() == RESULTS.resolve()
    print(save_figure(plot_comparison(rows), "compare_methods",
                      folder=None if committed else args.results))


if __name__ == "__main__":
    main()
