"""Command line of vmtlib: ``python -m vmtlib COMMAND --help`` for a command's options.

Under ``torchrun --nproc_per_node N -m vmtlib train ...`` training is data-parallel.
Errors are one line (``error: ...``, exit status 2); set ``VMTLIB_TRACEBACK=1`` to see
the traceback. An interrupted ``train`` saves a checkpoint and exits with 130 (Ctrl-C)
or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from vmtlib.backbone import BACKBONES

COMMANDS = {
    "params": "trainable parameters of every method at its paper defaults",
    "train": "train a method and write a run directory (defaults: the CPU course)",
    "eval": "re-evaluate a saved run directory (writes nothing)",
    "bench": "training / inference images per second and peak memory",
}


def _params(args: argparse.Namespace) -> int:
    from vmtlib.params import format_table, parameter_table

    rows = parameter_table(args.backbone, args.tasks, args.decoder)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("method", "kwargs", "encoder", "all")} for r in rows],
                         indent=2))
    else:
        print(f"Trainable parameters, {args.backbone}, tasks {args.tasks}, {args.decoder} decoders")
        print(format_table(rows))
    return 0


def _train(args: argparse.Namespace) -> int:
    from vmtlib.cli import train_config
    from vmtlib.rundir import NEW, OVERWRITE, RESUME
    from vmtlib.train import Trainer

    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: "
                         "give one of them")
    cfg = train_config(args)
    mode = RESUME if args.resume else OVERWRITE if args.overwrite else NEW
    if args.resume and cfg.num_workers and cfg.data != "synthetic":
        print(f"note: with --num-workers {cfg.num_workers} the augmentations after this resume "
              f"differ from an uninterrupted run's (use --num-workers 0 for a bit-identical "
              f"resume)", file=sys.stderr)
    result = Trainer(cfg, mode=mode).fit()
    print(json.dumps({k: result[k] for k in ("method", "steps", "metrics", "delta_m")}, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from vmtlib.rundir import dumps
    from vmtlib.train import evaluate_run

    print(dumps(evaluate_run(args.run, args.data), indent=2))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from vmtlib.bench import BenchConfig, run_benchmarks, scaling_summary

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        counts = [int(c) for c in args.task_counts.split(",")]
    except ValueError:
        raise ValueError(f"--task-counts expects integers like 1,4, got {args.task_counts!r}"
                         ) from None
    config = dict(backbone=args.backbone, img_size=args.img_size, batch_size=args.batch_size,
                  steps=args.steps, warmup=args.warmup, device=args.device, compile=args.compile)
    for method in methods or [""]:  # every setting checked before the first measurement
        for count in counts:
            BenchConfig(method=method, num_tasks=count, **config)
    if args.json:
        folder = Path(args.json).parent
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"--json {args.json}: cannot write into {folder}")

    def save(rows: list[dict[str, Any]]) -> None:  # after every row: nothing measured is lost
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")

    rows = run_benchmarks(methods, counts, on_row=save, **config)
    for line in scaling_summary(rows):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from vmtlib.cli import add_train_options
    from vmtlib.tasks import ALL_TASKS

    parser = argparse.ArgumentParser(
        prog="python -m vmtlib",
        description="vmtlib: parameter-efficient multi-task adaptation of Swin transformers.",
        epilog="'python -m vmtlib COMMAND --help' lists a command's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")

    p = sub.add_parser("params", help=COMMANDS["params"], description=COMMANDS["params"])
    p.add_argument("--backbone", default="swin_tiny", choices=list(BACKBONES),
                   help="the Swin backbone (default: swin_tiny)")
    p.add_argument("--tasks", default=",".join(ALL_TASKS),
                   help="comma-separated task ids (default: all four)")
    p.add_argument("--decoder", default="segformer", help="the decoder (default: segformer)")
    p.add_argument("--json", action="store_true", help="a JSON list of method/kwargs/encoder/all")
    p.set_defaults(func=_params)

    t = sub.add_parser("train", help=COMMANDS["train"], description=COMMANDS["train"])
    add_train_options(t)
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help=COMMANDS["eval"], description=COMMANDS["eval"])
    e.add_argument("--run", required=True, metavar="DIR", help="the run directory")
    e.add_argument("--data", default=None, metavar="synthetic|PATH",
                   help="evaluate on other data (default: the run's)")
    e.set_defaults(func=_eval)

    b = sub.add_parser("bench", help=COMMANDS["bench"], description=COMMANDS["bench"])
    b.add_argument("--methods", default="vmt_adapter", help="comma-separated method ids "
                   "(default: vmt_adapter)")
    b.add_argument("--task-counts", default="4", help="comma-separated, e.g. 1,4 (default: 4)")
    b.add_argument("--backbone", default="swin_tiny", choices=list(BACKBONES),
                   help="the Swin backbone (default: swin_tiny)")
    b.add_argument("--img-size", type=int, default=None, help="default: 512 on GPU, 128 on CPU")
    b.add_argument("--batch-size", type=int, default=None, help="default: 12 on GPU, 2 on CPU")
    b.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    b.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: 5)")
    b.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    b.add_argument("--compile", action="store_true", help="torch.compile the model")
    b.add_argument("--json", default=None, metavar="FILE", help="also write the rows to FILE")
    b.set_defaults(func=_bench)

    from vmtlib.commands import data, export, native_eval, predict

    for command in (export, predict, data):
        command.add_parser(sub)
    native_eval.extend(sub.choices["eval"])
    return parser


def one_line(err: BaseException) -> str:
    """An exception as one line; a DataLoader worker's re-raised error as its last line."""
    text = str(err).strip() or type(err).__name__
    if "Original Traceback" in text:  # torch's ExceptionWrapper: the worker's traceback
        text = text.splitlines()[-1]
    text = " ".join(text.split())
    return text if len(text) <= 600 else text[:597] + "..."


def main(argv: list[str] | None = None) -> int:
    from vmtlib.interrupts import TrainingInterrupted

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TrainingInterrupted as stop:
        print(str(stop), file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        if os.environ.get("VMTLIB_TRACEBACK"):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
