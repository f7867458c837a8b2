"""VMT-Adapter (Eq. 3-5) and VMT-Adapter-Lite (Eq. 6): counts and defining properties."""

import json

import pytest
import torch

from vmtlib import ALL_TASKS, build_model
from vmtlib.methods.vmt_adapter import KnowledgeExtraction, KroneckerProjection, VMTAdapter


def test_one_set_of_a_per_block_is_what_gives_0_15m_at_m_12() -> None:
    with torch.device("meta"):
        model = build_model("vmt_adapter_lite", m=12)
    lite = [m for m in model.modules() if isinstance(m, KroneckerProjection)]
    assert len(lite) == 12 and all(p.a.shape == (12, 12, 12) for p in lite)


def test_starts_as_the_frozen_backbone_and_tasks_differ_only_through_eq4(
    assert_tasks_see
) -> None:
    model = build_model("vmt_adapter", backbone="swin_nano", img_size=64).eval()
    images = torch.randn(2, 3, 64, 64)
    shared = model.encoder.backbone(images)  # hooks run, but F = 0 at initialisation
    assert_tasks_see(model.encoder(images), shared)
    # A shift gamma for task 0 in one block of stage 2 reaches task 0's stage-2 feature only.
    block = [m for m in model.modules() if isinstance(m, KnowledgeExtraction)][4]
    assert block.stage == 2
    with torch.no_grad():
        block.gamma[0] += 1.0
    feats = model.encoder(images)
    depth = model.encoder.backbone.depths[2]
    torch.testing.assert_close(feats["semseg"][2], shared[2] + 1.0 / depth)
    torch.testing.assert_close(feats["sal"][2], shared[2])
    torch.testing.assert_close(feats["semseg"][3], shared[3])  # the residual stream is shared


def test_gate_splits_f_into_generic_and_specific_parts() -> None:
    torch.manual_seed(0)
    hooks = KnowledgeExtraction(
        torch.nn.Linear(8, 8), dim=8, num_tasks=2
    )  # any projection; the split is what is tested
    hooks.stage, hooks.index = 0, 0
    from vmtlib.methods.base import MethodState

    hooks.state = MethodState()
    x, h = torch.randn(3, 5, 8), torch.zeros(3, 5, 8)
    with torch.no_grad():
        hooks.gate.fill_(0.3)
        hooks.alpha[1] = 2.0
    out = hooks.mlp_branch(h, x)
    f = hooks.projection(x)
    s = torch.sigmoid(torch.tensor(0.3))
    torch.testing.assert_close(out, (1 - s) * f)  # Eq. 4's complement joins the residual
    torch.testing.assert_close(hooks.state.stage_extras[0][1], 2.0 * s * f)


def test_lite_projections_are_sums_of_kronecker_products() -> None:
    proj = KroneckerProjection(dim=96, hidden=24, m=3)
    with torch.no_grad():
        proj.b_up.normal_()
    w_down, w_up = proj.weights()
    expect_down = sum(torch.kron(proj.a[i], proj.b_down[i]) for i in range(3))
    expect_up = sum(torch.kron(proj.a[i], proj.b_up[i]) for i in range(3))
    torch.testing.assert_close(w_down, expect_down)
    torch.testing.assert_close(w_up, expect_up)
    assert w_down.shape == (96, 24) and w_up.shape == (24, 96)


def test_m_that_does_not_divide_names_the_value_and_the_valid_ones() -> None:
    valid = r"\[1, 2, 3, 4, 6, 8, 12, 24\]"
    with pytest.raises(ValueError, match=rf"m=5 does not divide.*valid values of m.*{valid}"):
        with torch.device("meta"):
            build_model("vmt_adapter_lite", m=5)


def test_rho_that_does_not_divide_is_rejected() -> None:
    with pytest.raises(ValueError, match="rho=7"):
        with torch.device("meta"):
            build_model("vmt_adapter", rho=7)



@pytest.mark.parametrize("method", ["vmt_adapter", "vmt_adapter_lite"])
def test_fused_eq4_and_eq5_match_the_textbook_order_in_values_and_gradients(
    method, load_script
) -> None:
    textbook_order = load_script("benchmarks/bench_eq4.py").textbook_order
    torch.manual_seed(0)
    model = build_model(method, backbone="swin_nano", img_size=64).train()
    with torch.no_grad():  # values of the kind training produces: F != 0, tasks differ
        for p in model.encoder.adapters.parameters():
            p.add_(0.1 * torch.randn_like(p))
    images = torch.randn(2, 3, 64, 64)
    params = [p for p in model.encoder.parameters() if p.requires_grad]

    def run() -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
        feats = model.encoder(images)
        flat = [f for t in ALL_TASKS for f in feats[t]]
        loss = sum((i + 1) * f.square().mean() for i, f in enumerate(flat))
        return flat, torch.autograd.grad(loss, params)

    ours, g_ours = run()
    with textbook_order(type(model.encoder)):
        book, g_book = run()
    for a, b in zip(ours, book):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for a, b in zip(g_ours, g_book):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bench_eq4_times_both_orders_and_restores_the_library(tmp_path, load_script) -> None:
    bench = load_script("benchmarks/bench_eq4.py")
    out = tmp_path / "eq4.json"
    report = bench.main(["--backbone", "swin_nano", "--img-size", "32", "--steps", "1",
                         "--repeats", "1", "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert [r["order"] for r in report["rows"]] == ["textbook", "fused"]
    assert all(len(r["seconds"]) == 3 and min(r["seconds"].values()) > 0 for r in report["rows"])
    assert "mlp_branch" in vars(KnowledgeExtraction) and "task_features" not in vars(VMTAdapter)
    assert KnowledgeExtraction.mlp_branch is not bench.textbook_mlp_branch
