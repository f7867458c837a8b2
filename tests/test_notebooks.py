"""The course's conventions, checked on every notebook (execution itself is nbval's job).

Each notebook: a title "NN · ...", what you will learn and how long it takes,
a cell tagged ``parameters`` that reads VMTLIB_QUICK (the quick CI setting),
the project's kernel, at least one figure saved into figures/, exercises with
solutions a click away, and no library code defined in the notebook.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_course_conventions(path: Path) -> None:
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "vmtlib"
    cs = nb["cells"]
    first = source(cs[0])
    assert re.match(rf"# {path.stem[:2]} · ", first), "title '# NN · ...'"
    assert "What you will learn" in first and "Time" in first
    params = [c for c in cs if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "VMTLIB_QUICK" in source(params[0])
    code = "\n".join(source(c) for c in cs if c["cell_type"] == "code")
    assert "save_figure(" in code
    assert not re.search(r"^class \w+\(.*(nn\.Module|Dataset)", code, re.M), "library code"
    markdown = "\n".join(source(c) for c in cs if c["cell_type"] == "markdown")
    assert "## Exercises" in markdown and "<details>" in markdown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_run(path: Path) -> None:
    code_cells = [c for c in cells(path) if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code_cells), "execute with make notebooks"
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c["outputs"])
