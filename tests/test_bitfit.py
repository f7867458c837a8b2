"""BitFit: counts and the defining property (biases, and nothing else, train)."""

import torch

from vmtlib import ALL_TASKS, build_model
from vmtlib.inspect_model import encoder_count
from vmtlib.methods.bitfit import is_bias


def test_counts_on_swin_tiny() -> None:
    per_task = 11 * 4416 + 169 * 138 + 2 * 96 + 4 * (96 + 192 + 384)
    assert per_task == 74_778
    assert encoder_count("bitfit") == 4 * per_task
    assert encoder_count("bitfit_shared") == per_task


def test_shared_bitfit_trains_exactly_the_biases() -> None:
    with torch.device("meta"):
        model = build_model("bitfit_shared")
    names = dict(model.encoder.backbone.named_parameters())
    trainable = {n for n, p in names.items() if p.requires_grad}
    expected = {
        n for n in names if n.endswith(".bias") or n.endswith("relative_position_bias_table")
    }
    assert trainable == expected
    assert {"patch_embed.proj.bias", "layers.1.downsample.norm.bias"} <= trainable
    assert not any(n.endswith(".weight") for n in trainable)


def test_per_task_bitfit_trains_one_offset_per_bias_and_task() -> None:
    with torch.device("meta"):
        model = build_model("bitfit")
    enc = model.encoder
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    params = dict(enc.backbone.named_parameters())
    assert len(enc.offsets) == len(ALL_TASKS)
    for offsets in enc.offsets:
        assert {k.replace("-", ".") for k in offsets} == {n for n in params if is_bias(n)}
        for key, delta in offsets.items():
            assert delta.shape == params[key.replace("-", ".")].shape and delta.requires_grad


def test_a_task_runs_with_its_own_biases(assert_tasks_see) -> None:
    model = build_model("bitfit", backbone="swin_nano", img_size=64).eval()
    enc = model.encoder
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        shared = enc.backbone(images)
        assert_tasks_see(enc(images), shared)  # offsets start at zero
        name = "layers.1.blocks.0.mlp.fc1.bias"
        enc.offsets[0][name.replace(".", "-")] += 0.5
        feats = enc(images)
        bias = dict(enc.backbone.named_parameters())[name]
        bias += 0.5  # what task 0's pass should have seen
        reference = enc.backbone(images)
        bias -= 0.5
    assert_tasks_see(feats, reference, ALL_TASKS[:1])
    assert_tasks_see(feats, shared, ALL_TASKS[1:])
    assert not torch.allclose(feats[ALL_TASKS[0]][1], shared[1])
