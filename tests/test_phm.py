"""PHM adapters, Compacter, Compacter++: counts, placement and the Kronecker structure."""

import pytest
import torch

from vmtlib import ALL_TASKS, build_model
from vmtlib.inspect_model import encoder_count
from vmtlib.methods.phm import PHMHooks, PHMLinear


def test_exact_counts() -> None:
    d, d2 = 4416, 2_156_544  # sum of d and of d^2 over the 12 blocks of Swin-T
    assert encoder_count("phm") == 4 * (d2 // 16 + 9 * d // 8 + 2 * d) + 4**3
    assert encoder_count("compacter") == 4 * 2 * (13 * d // 2) + 4**3
    assert encoder_count("compacter_pp") == 4 * (13 * d // 2) + 4**3


def test_placement() -> None:
    with torch.device("meta"):
        hooks = {
            m: [h for h in build_model(m).modules() if isinstance(h, PHMHooks)]
            for m in ("phm", "compacter", "compacter_pp")
        }
    assert all(len(h) == 12 for h in hooks.values())
    assert all(h.attn_adapters is None for h in hooks["phm"] + hooks["compacter_pp"])
    assert all(len(h.attn_adapters) == 4 for h in hooks["compacter"])
    assert all(len(h.mlp_adapters) == 4 for hs in hooks.values() for h in hs)


@pytest.mark.parametrize("factorized", [False, True])
def test_weight_is_a_sum_of_kronecker_products(factorized: bool) -> None:
    layer = PHMLinear(8, 12, n=4, factorized=factorized)
    rules = torch.randn(4, 4, 4)
    fast = layer.fast_matrices()
    assert fast.shape == (4, 2, 3)
    if factorized:  # Compacter: every fast matrix has rank one
        assert all(torch.linalg.matrix_rank(b) == 1 for b in fast)
    want = sum(torch.kron(rules[i], fast[i]) for i in range(4))
    torch.testing.assert_close(layer.weight(rules), want)
    x = torch.randn(3, 8)
    torch.testing.assert_close(layer(x, rules), x @ want + layer.bias)


def test_one_rule_set_serves_every_layer_and_adapters_start_as_identity(
    plain_backbone_features, assert_tasks_see
) -> None:
    model = build_model("compacter", backbone="swin_nano", img_size=64).eval()
    enc = model.encoder
    assert enc.rules.shape == (4, 4, 4)
    images = torch.randn(1, 3, 64, 64)
    want = plain_backbone_features(model, images)
    with torch.no_grad():
        got = enc(images)
    assert_tasks_see(got, want)
    # Every adapter's gradient reaches the shared rules.
    for h in enc.modules():
        if isinstance(h, PHMHooks):
            torch.nn.init.ones_(h.mlp_adapters[0].norm.weight)
    loss = enc(images)[ALL_TASKS[0]][-1].square().mean()
    loss.backward()
    assert enc.rules.grad is not None and enc.rules.grad.abs().sum() > 0
