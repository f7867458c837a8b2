"""Polyhistor and Polyhistor-Lite: counts, W = p q^T, and the layer-wise scaling kernels."""

import torch

from vmtlib import ALL_TASKS, build_model
from vmtlib.inspect_model import encoder_count
from vmtlib.methods.polyhistor import DecomposedHyperAdapter, LiteHooks, ScaledAdapter


def test_polyhistor_count_on_swin_tiny() -> None:
    got = encoder_count("polyhistor")
    assert got == 2 * 33 * 22 * 4416 + 4 * 32  # (k + 1)(r (d + 2n) + 4d) per adapter
    # the papers' counts: tests/test_paper_counts.py


def test_adapter_weight_is_the_product_of_the_two_generated_factors() -> None:
    adapter = DecomposedHyperAdapter(dim=24, hidden=12, k=8, rank=3)
    v = torch.randn(8)
    p, q = adapter.factors(v)
    assert p.shape == (24, 3) and q.shape == (24, 3)
    torch.testing.assert_close(adapter.weight(v), p @ q.T)
    assert torch.linalg.matrix_rank(adapter.weight(v)) == 3
    # Two tasks, two embeddings, two adapters from the same hypernetworks.
    assert not torch.allclose(adapter.weight(torch.randn(8)), adapter.weight(v))


def test_polyhistor_starts_as_the_backbone(plain_backbone_features, assert_tasks_see) -> None:
    model = build_model("polyhistor", backbone="swin_nano", img_size=64).eval()
    images = torch.randn(1, 3, 64, 64)
    want = plain_backbone_features(model, images)
    with torch.no_grad():
        got = model.encoder(images)
    assert_tasks_see(got, want)


def test_scaling_kernels_give_each_stage_its_width() -> None:
    with torch.device("meta"):
        model = build_model("polyhistor_lite", backbone="swin_tiny")
    enc = model.encoder
    # One pair of hypernetworks for every layer and task.
    heads = [m for m in enc.modules() if isinstance(m, torch.nn.Linear) and m.weight.requires_grad]
    assert heads == [enc.p_head, enc.q_head]
    adapters = [m for m in enc.modules() if isinstance(m, ScaledAdapter)]
    assert len(adapters) == 24
    assert [a.scale for a in adapters[::2]] == [1, 1, 2, 2, 4, 4, 4, 4, 4, 4, 8, 8]
    assert enc.templates(0).shape == (2 * (2 + 4 + 24 + 16), 96, 96)  # d_0 x 2 n_0 templates
    for a, (_, _, block) in zip(adapters[::2], enc.backbone.blocks()):
        assert a.weight(enc.templates(0), 0).shape == (block.block.dim, block.block.dim)


def test_lite_weight_is_eq_6_and_layer_embeddings_are_per_layer() -> None:
    model = build_model("polyhistor_lite", backbone="swin_nano", img_size=64)
    enc = model.encoder
    adapters = [m for m in enc.modules() if isinstance(m, ScaledAdapter)]
    a = adapters[10]  # stage 2 (scale 4) of swin_nano
    assert a.scale == 4
    with torch.no_grad():
        templates = enc.templates(1)
        got = a.weight(templates, 1)
        own = templates[a.offset : a.offset + 4]
        want = sum(torch.kron(own[i], a.kernels[1][i]) for i in range(4))
        torch.testing.assert_close(got, want)
        assert got.shape == (192, 192)
        # The templates come from [V_t; V_l^i]: moving one layer embedding moves that layer only.
        before = [b.weight(templates, 1) for b in adapters]
        enc.layer_embeddings[a.offset] += 1.0
        templates = enc.templates(1)
        after = [b.weight(templates, 1) for b in adapters]
    changed = [i for i, (x, y) in enumerate(zip(before, after)) if not torch.allclose(x, y)]
    assert changed == [10]


def test_lite_starts_as_the_backbone_and_tasks_differ_once_trained() -> None:
    model = build_model("polyhistor_lite", backbone="swin_nano", img_size=64).eval()
    enc = model.encoder
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = enc(images)
        for t in ALL_TASKS:
            torch.testing.assert_close(feats[t][-1], feats[ALL_TASKS[0]][-1])
        for h in enc.modules():
            if isinstance(h, LiteHooks):
                h.mlp_adapter.post_gain.fill_(1.0)
        feats = enc(images)
    assert not torch.allclose(feats[ALL_TASKS[1]][-1], feats[ALL_TASKS[0]][-1])
