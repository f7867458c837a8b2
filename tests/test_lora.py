"""LoRA on qkv: counts, the zero-initialised branch, and the low-rank equation."""

import pytest
import torch
import torch.nn.functional as F

from vmtlib import build_model
from vmtlib.inspect_model import encoder_count
from vmtlib.methods.base import MethodState
from vmtlib.methods.lora import LoRALinear, LowRankBranch


def test_counts_on_swin_tiny() -> None:
    per_copy = 18 * 4416  # LN 2d + A (d x 4) + B (4 x 3d) per block
    assert encoder_count("lora") == 4 * per_copy
    assert encoder_count("lora_shared") == per_copy == 79_488


def test_zero_initialised_branch_leaves_the_backbone_unchanged(
    plain_backbone_features, assert_tasks_see
) -> None:
    model = build_model("lora", backbone="swin_nano", img_size=64).eval()
    images = torch.randn(1, 3, 64, 64)
    want = plain_backbone_features(model, images)
    with torch.no_grad():
        got = model.encoder(images)
    assert_tasks_see(got, want)


def test_pretrained_names_stay_and_stay_frozen() -> None:
    with torch.device("meta"):
        model = build_model("lora_shared")
    params = dict(model.encoder.backbone.named_parameters())
    qkv = params["layers.2.blocks.3.attn.qkv.weight"]
    assert qkv.shape == (3 * 384, 384) and not qkv.requires_grad
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert all(".attn.qkv.branches.0." in n for n in trainable)


def test_branch_is_scale_times_layernorm_a_b() -> None:
    base = torch.nn.Linear(8, 24)
    branches = [LowRankBranch(8, 24, rank=4, scale=4.0, norm=True) for _ in range(2)]
    state = MethodState()
    layer = LoRALinear(base, branches, state)
    with torch.no_grad():
        for b in branches:
            b.b.normal_()
    x = torch.randn(5, 8)
    state.task = 1
    br = branches[1]
    want = base(x) + 4.0 * F.layer_norm(x, (8,), br.norm.weight, br.norm.bias) @ br.a @ br.b
    torch.testing.assert_close(layer(x), want)
    delta = branches[1].a @ branches[1].b
    assert torch.linalg.matrix_rank(delta) == 4
    state.task = None
    with pytest.raises(RuntimeError, match="per-task pass"):
        layer(x)
