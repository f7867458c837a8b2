"""Command line of vmtlib.

    python -m vmtlib params [--backbone B] [--tasks a,b] [--decoder D] [--json]
    python -m vmtlib train --method M [--backbone B] [--data synthetic|PATH] [--tasks a,b]
                           [--epochs E | --steps S] [--batch-size N] [--img-size N] [--seed S]
                           [--out DIR] [--resume] [--param rho=4 ...]
    python -m vmtlib eval --run DIR [--data synthetic|PATH]
    python -m vmtlib bench [--methods a,b] [--task-counts 1,4] [--img-size N] [--compile]

Under ``torchrun --nproc_per_node N -m vmtlib train ...`` training is data-parallel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vmtlib.backbone import BACKBONES, pretrained_arg
from vmtlib.tasks import ALL_TASKS


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


def _value(text: str) -> Any:
    """``"4"`` -> 4, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _key_values(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--param expects NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _value(value.strip())
    return out


def _train(args: argparse.Namespace) -> int:
    from vmtlib.train import TrainConfig, Trainer

    reference = json.loads(Path(args.reference).read_text()) if args.reference else None
    if isinstance(reference, dict) and "metrics" in reference:  # a final.json
        from vmtlib.tasks import TASKS

        reference = {t: m[TASKS[t].metric] for t, m in reference["metrics"].items()}
    cfg = TrainConfig(
        method=args.method, backbone=args.backbone, pretrained=args.pretrained, data=args.data,
        tasks=args.tasks, method_kwargs=_key_values(args.param), decoder=args.decoder,
        img_size=args.img_size, batch_size=args.batch_size, steps=args.steps,
        epochs=args.epochs, lr=args.lr, eval_every=args.eval_every, seed=args.seed,
        num_workers=args.num_workers, out=args.out, train_size=args.train_size,
        val_size=args.val_size, reference=reference, compile=args.compile,
        progress=not args.no_progress, device=args.device,
    )
    result = Trainer(cfg, resume=args.resume).fit()
    print(json.dumps({k: result[k] for k in ("method", "steps", "metrics", "delta_m")}, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from vmtlib.train import evaluate_run

    print(json.dumps(evaluate_run(args.run, args.data), indent=2))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from vmtlib.bench import run_benchmarks, scaling_summary

    def save(rows: list[dict[str, Any]]) -> None:  # after every row: nothing measured is lost
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")

    rows = run_benchmarks(
        args.methods.split(","), [int(c) for c in args.task_counts.split(",")], on_row=save,
        backbone=args.backbone, img_size=args.img_size, batch_size=args.batch_size,
        steps=args.steps, warmup=args.warmup, device=args.device, compile=args.compile,
    )
    for line in scaling_summary(rows):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmtlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="trainable parameters of every method (paper defaults)")
    p.add_argument("--backbone", default="swin_tiny", choices=list(BACKBONES))
    p.add_argument("--tasks", default=",".join(ALL_TASKS), help="comma-separated task ids")
    p.add_argument("--decoder", default="segformer")
    p.add_argument("--json", action="store_true", help="a JSON list of method/kwargs/encoder/all")
    p.set_defaults(func=_params)

    t = sub.add_parser("train", help="train a method (defaults: the CPU course)")
    t.add_argument("--method", default="vmt_adapter")
    t.add_argument("--backbone", default="swin_nano", choices=list(BACKBONES))
    t.add_argument("--pretrained", default="true", type=pretrained_arg,
                   help="true | false | path to a weights file")
    t.add_argument("--data", default="synthetic", help="synthetic | path to a PASCAL_MT folder")
    t.add_argument("--tasks", default=",".join(ALL_TASKS))
    t.add_argument("--decoder", default="segformer")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None)
    length.add_argument("--epochs", type=float, default=None)
    t.add_argument("--batch-size", type=int, default=12)
    t.add_argument("--img-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--eval-every", type=int, default=0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--num-workers", type=int, default=0)
    t.add_argument("--train-size", type=int, default=20_000, help="synthetic scenes per epoch")
    t.add_argument("--val-size", type=int, default=256, help="synthetic validation scenes")
    t.add_argument("--reference", default=None, help="final.json (or JSON task->score) for delta_m")
    t.add_argument("--out", default="runs/latest")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--param", action="append", default=[], help="method hyper-parameter NAME=VALUE")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="re-evaluate a saved run")
    e.add_argument("--run", required=True)
    e.add_argument("--data", default=None)
    e.set_defaults(func=_eval)

    b = sub.add_parser("bench", help="training / inference images per second and peak memory")
    b.add_argument("--methods", default="vmt_adapter")
    b.add_argument("--task-counts", default="4", help="comma-separated, e.g. 1,4")
    b.add_argument("--backbone", default="swin_tiny", choices=list(BACKBONES))
    b.add_argument("--img-size", type=int, default=None, help="default: 512 on GPU, 128 on CPU")
    b.add_argument("--batch-size", type=int, default=None, help="default: 12 on GPU, 2 on CPU")
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    b.add_argument("--compile", action="store_true")
    b.add_argument("--json", default=None, help="also write the rows to this file")
    b.set_defaults(func=_bench)

    from vmtlib.commands import data, export, native_eval, predict

    for command in (export, predict, data):
        command.add_parser(sub)
    native_eval.extend(sub.choices["eval"])

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
