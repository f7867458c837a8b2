"""``scripts/probe_transfer.py``: the paired differences of its multi-seed report."""

import pytest


def _result(backbone: str, scores: dict[int, float]) -> dict:
    return {"backbone": backbone,
            "runs": [{"seed": s, "headline": {"semseg": v, "human_parts": v, "sal": v,
                                              "normals": -v}} for s, v in scores.items()]}


def test_paired_differences_are_against_the_first_pretrained_backbone(load_script) -> None:
    probe = load_script("scripts/probe_transfer.py")
    results = [_result("random", {0: 10.0, 1: 11.0, 2: 12.0}),
               _result("pretrained", {0: 16.0, 1: 17.0, 2: 18.5}),
               _result("reset:3", {0: 15.0, 1: 16.0, 2: 17.5}),
               _result("other.safetensors", {0: 16.0, 1: 17.0, 2: 18.5})]
    paired = probe.paired_against(results)
    assert paired["reference"] == "pretrained"
    assert set(paired["differences"]) == {"random", "reset:3", "other.safetensors"}
    reset = paired["differences"]["reset:3"]["semseg"]
    assert reset["mean"] == pytest.approx(-1.0) and reset["half"] == pytest.approx(0.0)
    assert paired["differences"]["random"]["normals"]["mean"] == pytest.approx(6.1666667)
    assert paired["differences"]["random"]["semseg"]["resolved"]
    assert probe.paired_against(results[:1]) == {}  # no pretrained backbone: nothing to pair
    one_seed = [_result("pretrained", {0: 1.0}), _result("random", {0: 0.5})]
    assert probe.paired_against(one_seed) == {}  # one seed: no interval
