"""The GPU path's figures in one command: ``python benchmarks/gpu_report.py``.

Five parts (``--parts``), each written into ``gpu_report.json`` as soon as it is
done, with the device, PyTorch version, command and seconds that measured it
(a part run again replaces only itself); ``gpu_report.md`` is redrawn from the
JSON every time:

- ``flops``: training-step FLOPs of the methods at T = 1 and 4 tasks (Swin-T,
  ``--img-size``, batch 1, counted on the meta device, so any machine gives the
  same numbers) and :func:`vmtlib.bench.task_scaling` of them: the step ratio
  and the growth beyond the decoders that the goals ask of the measured time,
  as they would come out if time followed FLOPs;
- ``bench``: :func:`vmtlib.bench.run_benchmark` for every method and task count
  (bf16 autocast, channels-last and the fused Adam on a GPU; what
  ``python -m vmtlib bench`` prints), the same scaling from the measured step
  times, the goals (:func:`vmtlib.bench.goal_report`) and the 60-epoch
  PASCAL-Context projection;
- ``notebook``: a generated PASCAL_MT folder of ``--train-images`` +
  ``--val-images`` scenes at ``--img-size`` (:mod:`vmtlib.data.pascal_writer`,
  the real format) and notebook 07 executed on it by papermill for ``--epochs``
  epochs. With a GPU that is the papers' sizes (Swin-T, 512 x 512, batch 12),
  from a random initialisation unless ``--weights`` names ImageNet weights as
  the papers use (``true``: the hub; or a local ``.pth``), and the report keeps
  the run's ``final.json``: metrics and the training images per second with
  data loading included. Without one the
  notebook runs its CPU demo on the folder, which checks the path only;
- ``profile``: where the training step of ``--profile-methods`` (vmt_adapter,
  multi_task_full) at the largest task count spends its time, from
  ``torch.profiler`` (:func:`vmtlib.bench.profile_step`): the top operators by
  self time (on a GPU, of the kernels they launch), to say what limits the
  throughput;
- ``compiled``: the bench of ``--compile-methods`` (vmt_adapter) at the largest
  task count under ``torch.compile``, last because compiling takes longest.

The executed notebook, the run, the folder and the notebook's figure go under
``--run-dir``; the committed ``figures/`` are left alone.

Run: ``python benchmarks/gpu_report.py`` on a machine with a GPU (by default 12
bench settings of 5 + 20 training and as many inference steps, 300 generated
images and 5 epochs of 20 steps, two profiled and one compiled setting);
``--parts flops`` anywhere.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vmtlib.analysis import cost_table, write_json_atomic
from vmtlib.backbone import pretrained_arg
from vmtlib.bench import (
    DECODERS,
    GOAL_METHODS,
    goal_report,
    measured_scaling,
    run_benchmarks,
    scaling_summary,
    task_scaling,
)
from vmtlib.tasks import ALL_TASKS, TASKS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NOTEBOOK = ROOT / "notebooks" / "07_pascal_context.ipynb"
PARTS = ("flops", "bench", "notebook", "profile", "compiled")


def device_name(device: str | None = None) -> str:
    if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def flops_part(args: argparse.Namespace) -> dict[str, Any]:
    rows = cost_table(args.methods, args.task_counts, img_size=args.img_size,
                      backbone=args.backbone)
    cost = {(r["method"], r["T"]): r["train_gflops"] for r in rows}
    return {
        "img_size": args.img_size, "backbone": args.backbone, "batch": 1,
        "train_gflops": [{"method": r["method"], "T": r["T"], "train_gflops": r["train_gflops"]}
                         for r in rows],
        "tasks": max(args.task_counts), "scaling": task_scaling(cost, max(args.task_counts)),
    }


def bench_part(args: argparse.Namespace, save: Callable[[dict[str, Any]], None],
               kind: str = "bench") -> dict[str, Any]:
    """``bench``: every method at every task count, with the scaling and the goals;
    ``profile`` / ``compiled``: ``--profile-methods`` profiled / ``--compile-methods``
    under ``torch.compile``, at the largest task count."""
    most = max(args.task_counts)
    methods = {"bench": args.methods, "profile": args.profile_methods,
               "compiled": args.compile_methods}[kind]
    counts = args.task_counts if kind == "bench" else [most]
    part: dict[str, Any] = {"tasks": most}

    def keep(rows: list[dict[str, Any]]) -> None:  # an interrupted bench keeps its rows
        save({**part, "rows": rows})

    part["rows"] = run_benchmarks(
        methods, counts, on_row=keep, backbone=args.backbone, img_size=args.img_size,
        batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, device=args.device,
        compile=kind == "compiled", profile_steps=args.profile_steps if kind == "profile" else 0)
    part["scaling"] = measured_scaling(part["rows"], most) or {}
    part["goals"] = goal_report(part["rows"]) if kind != "profile" else []
    for line in scaling_summary(part["rows"]):
        print(" ", line)
    return part


def write_folder(root: Path, train: int, val: int, size: int) -> Path:
    """The generated PASCAL_MT folder, reused when one of the same shape is there."""
    from vmtlib.data.pascal_writer import write_tiny_pascal_mt

    stamp = root / "vmtlib_generated.json"
    shape = {"train": train, "val": val, "size": size}
    if stamp.is_file() and json.loads(stamp.read_text()) == shape:
        return root
    if root.exists():
        raise FileExistsError(f"{root} exists but was not written with {shape}: remove it "
                              "or pass another --run-dir")
    write_tiny_pascal_mt(root, n_train=train, n_val=val, size=size, persons="natural")
    stamp.write_text(json.dumps(shape) + "\n")
    return root


def notebook_part(args: argparse.Namespace) -> dict[str, Any]:
    import papermill

    run_dir = args.run_dir.resolve()
    start = time.perf_counter()
    root = write_folder(run_dir / "PASCAL_MT", args.train_images, args.val_images, args.img_size)
    write_seconds = time.perf_counter() - start
    print(f"  PASCAL_MT folder: {args.train_images} + {args.val_images} images at "
          f"{args.img_size} px ({write_seconds:.0f} s)", flush=True)
    out = run_dir / "pascal_context"
    shutil.rmtree(out / "vmt_adapter", ignore_errors=True)  # the notebook would resume it
    final = out / "vmt_adapter" / "final.json"
    parameters = dict(data_root=str(root), weights=args.weights, device=args.device or "auto",
                      backbone=args.backbone, img_size=args.img_size,
                      batch_size=args.batch_size or 12, epochs=args.epochs,
                      num_workers=args.num_workers, out=str(out), method="vmt_adapter")
    executed = run_dir / NOTEBOOK.name
    start = time.perf_counter()
    saved = os.environ.get("VMTLIB_FIGURES")
    os.environ["VMTLIB_FIGURES"] = str(run_dir / "figures")  # the kernel inherits it
    try:
        papermill.execute_notebook(str(NOTEBOOK), str(executed), parameters=parameters,
                                   kernel_name=args.kernel, cwd=str(NOTEBOOK.parent),
                                   progress_bar=False)
    finally:
        if saved is None:
            del os.environ["VMTLIB_FIGURES"]
        else:
            os.environ["VMTLIB_FIGURES"] = saved
    part: dict[str, Any] = {
        "parameters": parameters, "folder_seconds": write_seconds,
        "notebook_seconds": time.perf_counter() - start, "executed": str(executed),
    }
    if final.is_file():  # the papers' setting ran (a GPU); the CPU demo writes elsewhere
        result = json.loads(final.read_text())
        part["final"] = {k: result[k] for k in ("metrics", "delta_m", "train_images_per_second",
                                                "steps", "parameters") if k in result}
    return part


def markdown(report: dict[str, Any]) -> str:
    lines = ["# The GPU path: throughput, scaling with tasks, notebook 07 at full size", ""]
    flops = report.get("flops")
    if flops:
        lines += [f"## Training-step FLOPs ({flops['backbone']}, {flops['img_size']} px, "
                  "batch 1, meta device)", "", _measured(flops), "",
                  "| method | T | train GFLOPs |", "|---|---:|---:|"]
        lines += [f"| {r['method']} | {r['T']} | {r['train_gflops']:.1f} |"
                  for r in flops["train_gflops"]]
        lines += ["", "If time followed FLOPs:", "", *_scaling_table(flops), ""]
    for name, title in (("bench", "Measured throughput"),
                        ("profile", "Where the training step's time goes"),
                        ("compiled", "Measured throughput with torch.compile")):
        if report.get(name):
            lines += [f"## {title}", "", *_bench_section(report[name]), ""]
    nb = report.get("notebook")
    if nb:
        p = nb["parameters"]
        lines += ["## Notebook 07 on a generated PASCAL_MT folder", "", _measured(nb), "",
                  f"Folder written in {nb['folder_seconds']:.0f} s; notebook executed in "
                  f"{nb['notebook_seconds']:.0f} s ({p['method']}, {p['backbone']}, "
                  f"{p['img_size']} px, batch {p['batch_size']}, {p['epochs']} epochs, "
                  f"{p['num_workers']} workers)."]
        final = nb.get("final")
        if final:
            m = final["metrics"]
            scores = ", ".join(f"{t} {m[t][TASKS[t].metric]:.1f}" for t in ALL_TASKS if t in m)
            init = "random init" if p.get("weights") is False else f"weights {p.get('weights')}"
            lines += ["", f"The run: {final['train_images_per_second']:.1f} training images/s "
                      f"with data loading, {final.get('steps')} steps; {scores} ({init} on "
                      "generated scenes: the numbers check the path, not the method)."]
        else:
            lines += ["", "No GPU: the notebook ran its CPU demo on the folder (a path check)."]
        lines.append("")
    return "\n".join(lines)


def _bench_section(part: dict[str, Any]) -> list[str]:
    lines = [_measured(part), "",
             "| method | T | px | batch | train img/s | inference img/s | peak GB (train) "
             "| 60 epochs (min) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in part["rows"]:
        mem = r["train_peak_memory_gb"]
        lines.append(
            f"| {r['method']} | {r['num_tasks']} | {r['img_size']} | {r['batch_size']} "
            f"| {r['train_images_per_second']:.1f} | {r['inference_images_per_second']:.1f} "
            f"| {'-' if mem is None else f'{mem:.1f}'} | {r['projected_60_epochs_minutes']:.1f} |")
    if part.get("scaling"):
        lines += ["", "Measured step times:", "", *_scaling_table(part)]
    for r in part["rows"]:
        if r.get("profile"):
            lines += ["", f"{r['method']}, T = {r['num_tasks']}: the top operators "
                      f"by self time over {r['profile_steps']} training steps", "",
                      "| operator | ms per step | share | calls per step |",
                      "|---|---:|---:|---:|"]
            lines += [f"| `{e['name'][:80]}` | {e['ms_per_step']:.2f} | {e['share']:.1%} "
                      f"| {e['calls_per_step']:.0f} |" for e in r["profile"]]
    if part.get("goals"):
        lines += ["", "Goals (one H100, 512 px, batch 12, 4 tasks; vmt_adapter):", "",
                  "| goal | measured | target | met |", "|---|---:|---:|---|"]
        lines += [f"| {g['name']} | {g['value']:.2f} | {g['rule']} {g['target']:g} "
                  f"| {'yes' if g['met'] else 'no'} |" for g in part["goals"]]
    return lines


def _measured(part: dict[str, Any]) -> str:
    return (f"Measured on {part['device']}, {part['date']}, torch {part['torch']}, by "
            f"`{part['command']}` in {part['seconds']:.0f} s.")


def _scaling_table(part: dict[str, Any]) -> list[str]:
    lines = [f"| method | growth T=1 -> {part['tasks']} beyond the decoders "
             f"| step / multi_task_full's at T={part['tasks']} |", "|---|---:|---:|"]
    for method, s in part["scaling"].items():
        ratio = f"{s['ratio_to_full']:.2f}" if "ratio_to_full" in s else ""
        lines.append(f"| {method} | {s['growth']:+.1%} | {ratio} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="comma-separated, some of: " + ", ".join(PARTS))
    parser.add_argument("--methods", default=",".join((DECODERS, *GOAL_METHODS)))
    parser.add_argument("--task-counts", default="1,4")
    parser.add_argument("--backbone", default="swin_tiny")
    parser.add_argument("--img-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="bench and notebook (default: 12 on a GPU, 2 on a CPU)")
    parser.add_argument("--steps", type=int, default=20, help="timed bench steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile-methods", default="vmt_adapter,multi_task_full",
                        help="the profile part's methods (at the largest task count)")
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--compile-methods", default="vmt_adapter",
                        help="the compiled part's methods (at the largest task count)")
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--train-images", type=int, default=240)
    parser.add_argument("--val-images", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--num-workers", type=int, default=min(12, os.cpu_count() or 1))
    parser.add_argument("--weights", default="false", type=pretrained_arg,
                        help="notebook 07's backbone weights: false | true (hub) | PATH (.pth)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel for notebook 07")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "gpu_report")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_report.json")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--parts: unknown {sorted(unknown)}; expected some of {PARTS}")
    args.methods = args.methods.split(",")
    args.profile_methods = args.profile_methods.split(",")
    args.compile_methods = args.compile_methods.split(",")
    args.task_counts = sorted({int(c) for c in args.task_counts.split(",")})

    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    command = " ".join(["python", "benchmarks/gpu_report.py", *(argv or sys.argv[1:])])
    failed = []
    for name in parts:
        gc.collect()  # the last part's models gone, and their cached GPU memory returned:
        if torch.cuda.is_available():  # the notebook part trains in a process of its own
            torch.cuda.empty_cache()
        print(f"[{name}] ...", flush=True)
        start = time.perf_counter()
        stamp = {"device": device_name(args.device), "torch": torch.__version__,
                 "command": command, "date": datetime.date.today().isoformat()}

        def save(part: dict[str, Any], name: str = name, stamp: dict = stamp,
                 start: float = start) -> None:
            report[name] = {**stamp, "seconds": time.perf_counter() - start, **part}
            write_json_atomic(args.out, report)
            args.out.with_suffix(".md").write_text(markdown(report))

        try:
            if name == "flops":
                part = flops_part(args)
            elif name in ("bench", "profile", "compiled"):
                part = bench_part(args, save, kind=name)
            else:
                part = notebook_part(args)
        except Exception as err:  # the other parts still run and are kept
            print(f"[{name}] failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        save(part)
        print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
