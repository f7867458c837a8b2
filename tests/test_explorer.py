"""vmtlib.explorer: the site's table of notebook 09's explorer is what the widget shows."""

import html
import json

from test_widgets import fake_results

from vmtlib.explorer import explorer_table, main, setting_id
from vmtlib.widgets import (
    TABLE3_CHOICES,
    ablation_explorer,
    ablation_row,
    describe_setting,
    parameter_count,
    results_status,
)

SETTINGS = [(k, v) for k, (_, vs) in TABLE3_CHOICES.items() for v in vs]


def test_every_setting_is_what_the_callbacks_return(tmp_path) -> None:
    path = fake_results(tmp_path)
    table = explorer_table(path, shown_path="ablation.json")
    assert table["status"] == results_status(path, "ablation.json")
    assert [k["kind"] for k in table["kinds"]] == list(TABLE3_CHOICES)
    assert [k["values"] for k in table["kinds"]] == [list(v) for _, v in TABLE3_CHOICES.values()]
    assert [k["symbol"] for k in table["kinds"]] == ["ρ", "m"]
    assert table["start"] == {"kind": "rho", "rho": 4, "m": 3}
    assert set(table["settings"]) == {setting_id(k, v) for k, v in SETTINGS}
    for kind, value in SETTINGS:
        entry = table["settings"][setting_id(kind, value)]
        count = parameter_count(kind, value)
        assert entry["text"] == describe_setting(kind, value, path)
        assert (entry["encoder"], entry["all"], entry["key"]) == (count["encoder"], count["all"],
                                                                  count["key"])
        assert entry["delta_m"] == ablation_row(kind, value, path)["delta_m"]
    assert table["settings"]["rho=4"]["delta_m"] == -5.0
    assert table["settings"]["rho=8"]["delta_m"] is None
    assert table["settings"]["rho=8"]["encoder"] == 579_444


def test_the_table_matches_the_widget_at_every_slider_position(tmp_path) -> None:
    path = fake_results(tmp_path)
    table = explorer_table(path)
    widget = ablation_explorer(path)
    for kind, value in SETTINGS:
        widget.kind.value = kind
        getattr(widget, kind).value = value
        shown = html.unescape(widget.info.value.removeprefix("<pre>").removesuffix("</pre>"))
        assert table["settings"][setting_id(kind, value)]["text"] == shown


def test_without_results_the_table_has_counts_and_the_papers_values(tmp_path, capsys) -> None:
    table = explorer_table(tmp_path / "missing.json", backbone="swin_nano")
    assert "missing" in table["status"]
    assert table["settings"]["rho=4"]["encoder"] == 209_168
    assert all(s["delta_m"] is None for s in table["settings"].values())
    assert table["settings"]["m=6"]["paper_delta_m"] == 0.61
    assert main([str(tmp_path / "missing.json"), "--backbone", "swin_nano"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["rho=4"]["encoder"] == 209_168
