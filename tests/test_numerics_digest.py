"""Every method's outputs, gradients, state-dict keys and trainable count, bit for bit.

The committed ``tests/data/numerics_digest.json`` was written by
``scripts/numerics_digest.py`` before the method framework was refactored; a
refactoring that changes no numerics leaves every hash equal. On a machine whose
torch version or CPU capability differs from the digest's, the kernels may round
differently: there the float sums are compared to a relative 1e-4 instead.
"""

import json
import math
from pathlib import Path

import pytest
import torch

import vmtlib

DIGEST = json.loads((Path(__file__).parent / "data" / "numerics_digest.json").read_text())


@pytest.fixture(scope="module")
def digest_script(load_script):
    return load_script("scripts/numerics_digest.py")


def test_digest_covers_every_method_and_setting(digest_script):
    assert set(DIGEST["methods"]) == {name for name, _, _ in digest_script.SETTINGS}
    for rows in DIGEST["methods"].values():
        assert sorted(rows) == sorted(vmtlib.METHODS)


@pytest.mark.parametrize("method", list(vmtlib.METHODS))
@pytest.mark.parametrize("setting", ["swin_nano_64", "swin_tiny_64"])
def test_method_numerics_unchanged(digest_script, setting, method):
    _, backbone, size = next(s for s in digest_script.SETTINGS if s[0] == setting)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = digest_script.method_digest(method, backbone, size)
    finally:
        torch.set_num_threads(threads)
    want = DIGEST["methods"][setting][method]
    assert got["keys"] == want["keys"], f"{method}: state-dict key names or shapes changed"
    assert got["trainable"] == want["trainable"], f"{method}: trainable count changed"
    if digest_script.environment() == DIGEST["environment"]:
        for part in ("init", "perturbed"):
            assert got[part] == want[part], f"{method} {setting} {part}: numerics changed"
    else:
        for part in ("init", "perturbed"):
            for key in ("out_sum", "grad_abs_sum"):
                assert math.isclose(got[part][key], want[part][key], rel_tol=1e-4), (
                    f"{method} {setting} {part} {key}: {got[part][key]} != {want[part][key]}"
                )
