"""``python -m vmtlib eval --run DIR --native-resolution``: the flag and its handler.

:func:`extend` adds the flag to the existing ``eval`` parser and routes it to
:func:`vmtlib.native_eval.evaluate_run_native`; without the flag ``eval`` runs as before.
"""

from __future__ import annotations

import argparse
import json


def extend(eval_parser: argparse.ArgumentParser) -> None:
    eval_parser.add_argument(
        "--native-resolution", action="store_true",
        help="score each validation image at its own size (predictions resized to the stored "
             "labels, as MTI-Net's final offline evaluation); default: at the training size")
    plain = eval_parser.get_default("func")

    def run(args: argparse.Namespace) -> int:
        if not args.native_resolution:
            return plain(args)
        from vmtlib.native_eval import evaluate_run_native

        print(json.dumps(evaluate_run_native(args.run, args.data), indent=2))
        return 0

    eval_parser.set_defaults(func=run)
