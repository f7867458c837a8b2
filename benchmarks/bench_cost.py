"""Cost versus the number of tasks T = 1..8 (MTLoRA supplement Table 3, extended).

Two measurements in one run:

- FLOPs and memory (exact, ``vmtlib.analysis.cost_table``): forward and
  training-step FLOPs counted by FlopCounterMode on the meta device (2 FLOPs
  per multiply-accumulate), saved activation memory of a training step and the
  weight / gradient / Adam bytes, on Swin-T at 224 px, batch 1.
- Latency (``vmtlib.analysis.measure_latency``): training step and inference
  on a real model (swin_nano at 128 px, batch 4 on the CPU by default; any
  ``--device``), the minimum over ``--repeats`` timings, reported as ratios
  to T = 1 of the same method. Wall-clock numbers on a shared CPU are noisy;
  only the ratios within this run are meant to be read.

Tasks beyond the four PASCAL-Context ones are numbered copies ("semseg#2").
Methods: every id of ``vmtlib.analysis.DEFAULT_COST_METHODS`` that is
registered (``--methods`` to choose).

Run: ``python benchmarks/bench_cost.py`` (19 minutes on one thread of a busy shared
CPU: 7 for the FLOPs, 12 for the latency);
``--skip-latency`` for the FLOPs table only (a few minutes); ``--replot`` redraws
the figure and the markdown from the JSON. Writes
``benchmarks/results/cost_vs_tasks.json``, ``benchmarks/results/cost_vs_tasks.md``
and ``figures/cost_vs_tasks.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from vmtlib.analysis import (  # noqa: E402
    available_methods,
    cost_markdown,
    cost_table,
    measure_latency,
    write_json_atomic,
)
from vmtlib.plots import plot_cost_vs_tasks, save_figure  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COMMAND = "python benchmarks/bench_cost.py"

# MTLoRA supplement Table 3: GFLOPs of Swin-T with individual (per task) versus
# shared multi-task adaptation, 1-4 tasks (their resolution and FLOP convention).
MTLORA_TABLE3 = {
    "individual": [18.48, 36.91, 55.32, 73.74],
    "shared": [18.48, 19.50, 20.49, 21.49],
}


def markdown(flops: list[dict], latency: list[dict], cfg: dict) -> str:
    """The tables of cost_vs_tasks.md."""
    lines = [
        "# Cost versus number of tasks",
        "",
        f"Command: `{cfg['command']}`",
        "",
        f"## Forward GFLOPs ({cfg['backbone']}, {cfg['img_size']}x{cfg['img_size']}, batch 1; "
        "ratio to T = 1 in parentheses)",
        "",
        "FlopCounterMode on the meta device, 2 FLOPs per multiply-accumulate; tasks beyond "
        "four are copies (semseg#2, ...). † = one backbone pass per task, O(T).",
        "",
        cost_markdown(flops),
        "",
        "MTLoRA supplement Table 3 (Swin-T, GFLOPs, T = 1..4): individual "
        + " / ".join(f"{v:.2f}" for v in MTLORA_TABLE3["individual"])
        + ", shared " + " / ".join(f"{v:.2f}" for v in MTLORA_TABLE3["shared"])
        + " (x" + " / x".join(f"{v / MTLORA_TABLE3['shared'][0]:.2f}"
                              for v in MTLORA_TABLE3["shared"]) + ").",
        "",
        "## Training-step GFLOPs (forward + backward)",
        "",
        cost_markdown(flops, key="train_gflops", ratio_key=None),
        "",
        "## Training memory estimate (MB): saved activations + weights, gradients, Adam",
        "",
        cost_markdown(flops, key="train_memory_mb", ratio_key=None, fmt="{:.0f}"),
    ]
    if latency:
        lat = latency[0]
        lines += [
            "",
            f"## Latency ratios to T = 1 ({cfg['latency_backbone']}, "
            f"{cfg['latency_img_size']} px, batch {cfg['batch_size']}, {lat['device']}, "
            f"{cfg['threads']} thread(s), min of {cfg['repeats']})",
            "",
            "Training step (forward, loss, backward, Adam):",
            "",
            cost_markdown(latency, key="train_ratio", ratio_key=None),
            "",
            "Inference (forward under inference_mode):",
            "",
            cost_markdown(latency, key="infer_ratio", ratio_key=None),
            "",
            "Milliseconds at T = 1 (train / inference): "
            + ", ".join(f"{r['method']} {r['train_ms']:.0f} / {r['infer_ms']:.0f}"
                        for r in latency if r["T"] == min(x["T"] for x in latency)) + ".",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=None, help="comma-separated ids (default: all)")
    parser.add_argument("--max-tasks", type=int, default=8)
    parser.add_argument("--backbone", default="swin_tiny", help="for FLOPs / memory")
    parser.add_argument("--img-size", type=int, default=224, help="for FLOPs / memory")
    parser.add_argument("--latency-backbone", default="swin_nano")
    parser.add_argument("--latency-img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4, help="latency batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: OpenMP threads spin on a shared machine)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "cost_vs_tasks.json"))
    parser.add_argument("--replot", action="store_true",
                        help="redraw the figure and the markdown from the JSON, no measuring")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(args.out).read_text())
        Path(args.out).with_suffix(".md").write_text(
            markdown(saved["flops"], saved["latency"], saved["config"]))
        print(save_figure(plot_cost_vs_tasks(saved["flops"], saved["latency"]), "cost_vs_tasks"))
        return
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",") if args.methods else available_methods()
    counts = range(1, args.max_tasks + 1)
    command = " ".join(["python", "benchmarks/bench_cost.py", *sys.argv[1:]])
    cfg = {**vars(args), "methods": methods, "command": command}

    start = time.perf_counter()
    flops = cost_table(methods, counts, img_size=args.img_size, backbone=args.backbone,
                       progress=lambda it: tqdm(list(it), desc="FLOPs (meta)"))
    for r in flops:
        r["backbone"] = f"{args.backbone} {args.img_size}px"
    latency = []
    if not args.skip_latency:
        latency = measure_latency(
            methods, counts, backbone=args.latency_backbone, img_size=args.latency_img_size,
            batch_size=args.batch_size, device=args.device, repeats=args.repeats,
            progress=lambda it: tqdm(list(it), desc=f"latency ({args.device})"),
        )
    cfg["seconds"] = time.perf_counter() - start
    cfg["torch"] = torch.__version__
    cfg["cpu_count"] = os.cpu_count()
    out = Path(args.out)
    write_json_atomic(out, {"config": cfg, "flops": flops, "latency": latency,
                            "mtlora_table3": MTLORA_TABLE3})
    md = markdown(flops, latency, cfg)
    out.with_suffix(".md").write_text(md)
    fig = plot_cost_vs_tasks(flops, latency)
    path = save_figure(fig, "cost_vs_tasks")
    print(md)
    print(f"wrote {out}, {out.with_suffix('.md')}, {path} in {cfg['seconds']:.0f} s")


if __name__ == "__main__":
    main()
