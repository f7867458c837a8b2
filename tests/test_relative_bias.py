"""Relative-position bias tuning: counts and the defining property (only the tables train)."""

import torch

from vmtlib import ALL_TASKS, build_model
from vmtlib.inspect_model import encoder_count


def test_counts_on_swin_tiny() -> None:
    per_task = 13 * 13 * (2 * 3 + 2 * 6 + 6 * 12 + 2 * 24)  # (2M - 1)^2 x heads, M = 7
    assert encoder_count("relative_bias") == 4 * per_task == 93_288
    assert encoder_count("relative_bias_shared") == per_task == 23_322


def test_only_the_relative_position_tables_train() -> None:
    with torch.device("meta"):
        shared = build_model("relative_bias_shared")
        multiple = build_model("relative_bias")
    trainable = {n for n, p in shared.encoder.backbone.named_parameters() if p.requires_grad}
    assert len(trainable) == 12
    assert all(n.endswith("attn.relative_position_bias_table") for n in trainable)
    enc = multiple.encoder
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    assert all(
        k.endswith("relative_position_bias_table") for offsets in enc.offsets for k in offsets
    )


def test_a_task_sees_its_own_tables() -> None:
    model = build_model("relative_bias", backbone="swin_nano", img_size=64).eval()
    enc = model.encoder
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        shared = enc.backbone(images)
        key = "layers-0-blocks-0-attn-relative_position_bias_table"
        enc.offsets[2][key] += torch.randn_like(enc.offsets[2][key])
        feats = enc(images)
    changed = [t for t in ALL_TASKS if not torch.allclose(feats[t][0], shared[0])]
    assert changed == [ALL_TASKS[2]]
