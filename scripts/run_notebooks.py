"""Execute every notebook with papermill and write the outputs back (``make notebooks``).

Usage: ``python scripts/run_notebooks.py [--quick] [NOTEBOOK ...]``

The full setting is each notebook's embedded defaults; ``--quick`` sets
VMTLIB_QUICK=1, the small setting ``make test`` validates, and then writes the
executed copies to a temporary folder instead of the committed notebooks.
The wall time of each notebook goes to ``benchmarks/results/notebook_times.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TIMES = ROOT / "benchmarks" / "results" / "notebook_times.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--quick", action="store_true", help="the small CI setting")
    args = parser.parse_args()
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    os.environ["VMTLIB_QUICK"] = "1" if args.quick else "0"
    # The kernel inherits this environment: inline figures (the Makefile's Agg would
    # leave the committed notebooks without their figures).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    out_dir = Path(tempfile.mkdtemp()) if args.quick else None
    mode = "quick" if args.quick else "full"

    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    for path in paths:
        path = path.resolve()
        target = out_dir / path.name if out_dir else path
        print(f"[{mode}] {path.name} ...", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(
            str(path), str(target), kernel_name="vmtlib", cwd=str(NOTEBOOKS), progress_bar=False
        )
        seconds = time.perf_counter() - start
        print(f"[{mode}] {path.name}: {seconds:.0f} s", flush=True)
        times.setdefault(path.name, {})[mode] = round(seconds, 1)
    times["_machine"] = f"{platform.machine()}, {os.cpu_count()} cores, CPU"
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
