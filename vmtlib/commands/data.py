"""``python -m vmtlib data check PATH``: verify a PASCAL_MT folder, reading only."""

from __future__ import annotations

import argparse

from vmtlib.tasks import ALL_TASKS


def check(args: argparse.Namespace) -> int:
    from vmtlib.data.check import check_pascal_mt, parse_split_sizes

    report = check_pascal_mt(args.path, tasks=args.tasks,
                             split_sizes=parse_split_sizes(args.split_sizes), jobs=args.jobs,
                             progress=not args.no_progress)
    print(report.format())
    return 0 if report.ok else 1


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("data", help="check a PASCAL_MT folder before training on it",
                              description="Dataset tools.")
    sub = p.add_subparsers(dest="data_command", required=True)
    c = sub.add_parser(
        "check", help="verify a PASCAL_MT folder (read-only); exit 1 on any problem",
        description="Every id of train and val has its image and labels, each file decodes, "
                    "image and labels agree in size, the split sizes are the release's; prints "
                    "a summary table and every problem with its file (vmtlib.data.check).")
    c.add_argument("path", help="the PASCAL_MT folder")
    c.add_argument("--tasks", default=",".join(ALL_TASKS),
                   help=f"comma-separated tasks whose labels to check ({','.join(ALL_TASKS)})")
    c.add_argument("--split-sizes", default="train=4998,val=5105",
                   help="expected ids per split, or 'any' (train=4998,val=5105: the release)")
    c.add_argument("--jobs", type=int, default=1, help="processes decoding files (1)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=check)
    return p
