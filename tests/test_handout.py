"""make handout (scripts/make_handout.py): student copies of every notebook, without
outputs and without the exercises' solutions, that still execute.

Executing a copy costs a kernel and the notebook's quick run, so the test executes one
copy (notebook 09, the widgets) through papermill with VMTLIB_QUICK=1;
``VMTLIB_HANDOUT_EXECUTE=all`` executes all of them.
"""

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXECUTED = (NOTEBOOKS if os.environ.get("VMTLIB_HANDOUT_EXECUTE") == "all"
            else [p for p in NOTEBOOKS if p.name.startswith("09_")] or NOTEBOOKS[-1:])


@pytest.fixture(scope="module")
def handout(load_script):
    return load_script("scripts/make_handout.py")


@pytest.fixture(scope="module")
def copies(handout, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("handout")
    handout.make_handout(out)
    return out


def test_strip_solutions_removes_exactly_the_solution_blocks(handout) -> None:
    text = ("1. Count it.\n\n<details><summary>Hint</summary>use count_parameters</details>\n\n"
            "<details><summary>Solutions</summary>\n\n```python\nprint(42)  # 42\n```\n"
            "</details>\n\nAfter.\n<details>\n<summary>Solution (2)</summary>x = 7</details>")
    assert len(handout.solution_blocks(text)) == 2
    stripped = handout.strip_solutions(text)
    assert "print(42)" not in stripped and "x = 7" not in stripped
    assert "<details><summary>Hint</summary>use count_parameters</details>" in stripped
    assert "1. Count it." in stripped and "After." in stripped
    assert stripped.count(handout.REMOVED) == 2 and "Solution" not in stripped


def test_every_notebook_gets_a_copy_without_outputs_or_solutions(handout, copies) -> None:
    written = sorted(copies.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS] and len(written) >= 10
    for original_path in NOTEBOOKS:
        original = nbformat.read(original_path, as_version=4)
        copy = nbformat.read(copies / original_path.name, as_version=4)
        nbformat.validate(copy)
        assert [c.source for c in copy.cells if c.cell_type == "code"] == \
            [c.source for c in original.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None
                   for c in copy.cells if c.cell_type == "code")
        assert "widgets" not in copy.metadata
        markdown = "\n".join(c.source for c in copy.cells if c.cell_type == "markdown")
        blocks = [b for c in original.cells if c.cell_type == "markdown"
                  for b in handout.solution_blocks(c.source)]
        assert blocks, f"{original_path.name}: no solution block found"
        assert markdown.count(handout.REMOVED) == len(blocks)
        assert "## Exercises" in markdown
        # every line that only the solutions have is gone from the whole copy
        elsewhere = "\n".join(handout.strip_solutions(c.source) for c in original.cells)
        raw = nbformat.writes(copy)
        sources = "\n".join(c.source for c in copy.cells)
        lines = {ln.strip() for b in blocks for ln in b.splitlines()}
        own = [ln for ln in lines if len(ln) > 12 and ln not in elsewhere]
        assert own, original_path.name
        for line in own:
            assert line not in sources, (original_path.name, line)
        assert "<summary>Solution" not in raw


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_a_copy_executes_in_its_quick_setting(copies, path, tmp_path, monkeypatch) -> None:
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("VMTLIB_QUICK", "1")
    monkeypatch.setenv("VMTLIB_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                "")]))
    out = tmp_path / path.name
    papermill.execute_notebook(str(copies / path.name), str(out), kernel_name="vmtlib",
                               cwd=str(ROOT / "notebooks"), progress_bar=False,
                               execution_timeout=600)
    executed = nbformat.read(out, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code if "injected-parameters" not in c.metadata.get(
        "tags", []))
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    assert list((tmp_path / "figures").glob("*.png"))  # it drew its figures
