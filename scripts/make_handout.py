"""Student copies of the notebooks for a lecturer (``make handout``).

Usage: ``python scripts/make_handout.py [--out build/handout] [NOTEBOOK ...]``

Each copy keeps every cell's source and drops what a student should produce or find
out: the outputs and execution counts are cleared, the saved widget state and
papermill's metadata removed, and every exercise solution, a
``<details><summary>Solution...</summary> ... </details>`` block of a markdown cell
(CONTRIBUTING's convention), is replaced by a one-line note. Other ``<details>``
blocks (a hint, say) stay. The committed notebooks and the course site keep the
solutions.

The copies execute as the originals do: put them in a clone's ``notebooks/`` folder,
or run them with that folder as the working directory
(``papermill build/handout/NN.ipynb out.ipynb --cwd notebooks``); the quick setting is
``VMTLIB_QUICK=1``.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# A <details> block whose <summary> starts with "Solution" (or "Solutions"), through the
# first </details> after it; solutions do not nest <details>.
SOLUTION = re.compile(r"<details\b[^>]*>\s*<summary\b[^>]*>\s*Solutions?\b.*?</details>\s*",
                      re.S | re.I)
REMOVED = ("*(The solutions are left out of this copy: they are in the course site and "
           "in the repository's notebook.)*\n")


def solution_blocks(text: str) -> list[str]:
    """The solution blocks of a markdown text, as they appear in it."""
    return [m.group(0) for m in SOLUTION.finditer(text)]


def strip_solutions(text: str) -> str:
    """``text`` with every solution block replaced by :data:`REMOVED`."""
    return SOLUTION.sub(lambda m: REMOVED, text)


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The handout version of ``nb`` (a new notebook; ``nb`` is left as it is)."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = strip_solutions(cell.source)
    return nb


def notebook_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def make_handout(out: Path, paths: list[Path] | None = None) -> list[Path]:
    """Write the student copy of each notebook (default: all of them) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths or notebook_paths():
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(student_copy(nb), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "handout")
    args = parser.parse_args(argv)
    for target in make_handout(args.out, args.notebooks or None):
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
