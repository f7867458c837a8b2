"""Hyperformer: count and the defining property (weights are a function of the task embedding)."""

import torch

from vmtlib import ALL_TASKS, build_model
from vmtlib.inspect_model import encoder_count
from vmtlib.methods.hyperformer import HyperAdapter, HyperformerHooks


def test_count_on_swin_tiny() -> None:
    got = encoder_count("hyperformer")
    d, d2 = 4416, 2_156_544
    per_position = 65 * (2 * d2 // 8 + d // 8 + d + 2 * d)  # (64 + 1)(2 d n + n + d + 2 d)
    assert got == 2 * per_position + (512 * 128 + 128 + 128 * 64 + 64) + 4 * 512


def test_weights_change_when_only_the_task_embedding_changes() -> None:
    model = build_model("hyperformer", backbone="swin_nano", img_size=64)
    enc = model.encoder
    adapter = next(m for m in enc.modules() if isinstance(m, HyperAdapter))
    hyper_before = [p.detach().clone() for p in adapter.parameters()]
    with torch.no_grad():
        w0 = adapter.weights(enc.condition(0))
        w1 = adapter.weights(enc.condition(1))
        assert not torch.allclose(w0["w_down"], w1["w_down"])
        enc.task_embeddings[0] += torch.randn_like(enc.task_embeddings[0])
        w0_new = adapter.weights(enc.condition(0))
        w1_new = adapter.weights(enc.condition(1))
    assert not torch.allclose(w0["w_down"], w0_new["w_down"])
    assert not torch.allclose(w0["w_up"], w0_new["w_up"])
    torch.testing.assert_close(w1["w_down"], w1_new["w_down"])
    assert all(torch.equal(a, b) for a, b in zip(hyper_before, adapter.parameters()))


def test_starts_as_the_backbone_and_tasks_with_equal_embeddings_are_equal() -> None:
    model = build_model("hyperformer", backbone="swin_nano", img_size=64).eval()
    enc = model.encoder
    images = torch.randn(1, 3, 64, 64)
    hooks = [m for m in enc.modules() if isinstance(m, HyperformerHooks)]
    assert len(hooks) == 8  # two generated adapters in each of swin_nano's 8 blocks
    with torch.no_grad():
        feats = enc(images)
        for t in ALL_TASKS:  # generated LayerNorm gains start at zero
            torch.testing.assert_close(feats[t][-1], feats[ALL_TASKS[0]][-1])
        for h in hooks:
            for a in (h.attn_adapter, h.mlp_adapter):
                a.gamma.bias.fill_(1.0)
        enc.task_embeddings[1] = enc.task_embeddings[0]
        feats = enc(images)
    torch.testing.assert_close(feats[ALL_TASKS[1]][-1], feats[ALL_TASKS[0]][-1])
    assert not torch.allclose(feats[ALL_TASKS[2]][-1], feats[ALL_TASKS[0]][-1])
