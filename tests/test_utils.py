"""vmtlib.utils: the one timing primitive and the one atomic writer."""

import json

import pytest
import torch

from vmtlib.utils import atomic_path, seconds_per_call, sync_device, write_json_atomic


def test_seconds_per_call_calls_fn_that_many_times() -> None:
    calls = []
    seconds = seconds_per_call(lambda: calls.append(1), calls=5, device="cpu")
    assert len(calls) == 5 and seconds >= 0
    with pytest.raises(ValueError, match="calls must be at least 1, got 0"):
        seconds_per_call(lambda: None, calls=0)
    sync_device(torch.device("cpu"))  # nothing to wait for


def test_write_json_atomic_leaves_only_the_file(tmp_path) -> None:
    out = tmp_path / "sub" / "result.json"
    write_json_atomic(out, {"a": [1, 2]})
    assert json.loads(out.read_text()) == {"a": [1, 2]}
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json"]


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path) -> None:
    out = tmp_path / "state.pt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]
    with atomic_path(out) as tmp:
        torch.save({"x": torch.ones(2)}, tmp)
    assert torch.equal(torch.load(out, weights_only=True)["x"], torch.ones(2))
