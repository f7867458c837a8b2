"""``python -m vmtlib params`` and the table behind it."""

import json

import vmtlib
from vmtlib.__main__ import main
from vmtlib.params import parameter_row


def test_json_lists_every_method_with_plain_counts(capsys) -> None:
    assert main(["params", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in rows] == list(vmtlib.METHODS)
    for r in rows:
        assert set(r) == {"method", "kwargs", "encoder", "all"}
        assert isinstance(r["encoder"], int) and r["all"] >= r["encoder"]
    defaults = {r["method"]: r["kwargs"] for r in rows}
    assert defaults["vmt_adapter"] == {"rho": 4}
    assert defaults["vmt_adapter_lite"] == {"rho": 4, "m": 3}


def test_text_table_prints_millions(capsys) -> None:
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "vmt_adapter " in out and "1.12 / 3.67" in out


def test_task_subset_changes_the_counts() -> None:
    two = parameter_row("vmt_adapter", tasks="semseg,sal")
    four = parameter_row("vmt_adapter")
    assert two["all"] < four["all"]


def test_bad_task_is_an_error_not_a_traceback(capsys) -> None:
    assert main(["params", "--tasks", "semseg,depth"]) == 2
    assert "unknown task 'depth'" in capsys.readouterr().err


def test_table_takes_the_next_valid_value_where_a_default_does_not_fit(monkeypatch) -> None:
    from vmtlib.methods import METHODS
    from vmtlib.params import parameter_table

    only = {m: METHODS[m] for m in ("vmt_adapter", "vmt_adapter_lite")}
    monkeypatch.setattr("vmtlib.params.METHODS", only)
    tiny, base = parameter_table("swin_tiny"), parameter_table("swin_base")
    assert [r["kwargs"] for r in tiny] == [{"rho": 4}, {"rho": 4, "m": 3}]
    # Swin-B's widths are 128 x 2^s: m = 3 divides none of them, m = 4 is the next that fits
    assert [r["kwargs"] for r in base] == [{"rho": 4}, {"rho": 4, "m": 4}]
    assert base[1]["encoder"] == parameter_row("vmt_adapter_lite", "swin_base", m=4)["encoder"]
