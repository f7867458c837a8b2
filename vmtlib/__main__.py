"""Command line: ``python -m vmtlib params [--backbone B] [--tasks a,b] [--decoder D] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from vmtlib.backbone import BACKBONES
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmtlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="trainable parameters of every method (paper defaults)")
    p.add_argument("--backbone", default="swin_tiny", choices=list(BACKBONES))
    p.add_argument("--tasks", default=",".join(ALL_TASKS), help="comma-separated task ids")
    p.add_argument("--decoder", default="segformer")
    p.add_argument("--json", action="store_true", help="a JSON list of method/kwargs/encoder/all")
    p.set_defaults(func=_params)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
