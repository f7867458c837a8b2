"""MTLoRA: count, trainable set, one pass, and tasks that share all but each stage's last block."""

import pytest
import torch

from vmtlib import ALL_TASKS, build_model
from vmtlib.inspect_model import encoder_count
from vmtlib.methods.mtlora import MTLoRALinear, TaskSpecificBlock


def test_count_on_swin_tiny() -> None:
    got = encoder_count("mtlora")
    ta = 64 * (4 + 2 + 5 + 5) * 4416  # qkv, proj, fc1, fc2 of every block, rank 64
    ts = 4 * 4 * (2 + 5 + 5) * (96 + 192 + 384 + 768)  # proj, fc1, fc2 of 4 last blocks
    embed = 3 * 16 * 96 + 96 + 2 * 96
    norms = 4 * 4416 + 2 * 4 * (96 + 192 + 384)  # blocks' LN1, LN2; merging LNs
    reductions = 4 * 96 * 192 + 4 * 192 * 384 + 4 * 384 * 768
    tables = 169 * 138
    assert got == ta + ts + embed + norms + reductions + tables == 6_398_010


def test_trainable_set_is_loras_embedding_norms_reductions_and_tables() -> None:
    with torch.device("meta"):
        model = build_model("mtlora")
    for name, p in model.encoder.backbone.named_parameters():
        expected = (
            ".shared." in name
            or ".tasks." in name
            or name.startswith("patch_embed.")
            or ".norm" in name
            or "downsample.reduction" in name
            or name.endswith("relative_position_bias_table")
        )
        assert p.requires_grad == expected, name


def test_task_specific_loras_sit_in_the_last_block_of_each_stage() -> None:
    with torch.device("meta"):
        backbone = build_model("mtlora").encoder.backbone
    for stage in backbone.layers:
        *shared, last = stage.blocks
        assert isinstance(last, TaskSpecificBlock)
        for blk in shared:
            for layer in (blk.attn.qkv, blk.attn.proj, blk.mlp.fc1, blk.mlp.fc2):
                assert isinstance(layer, MTLoRALinear) and len(layer.tasks) == 0
        inner = last.block
        assert len(inner.attn.qkv.tasks) == 0
        assert all(len(m.tasks) == 4 for m in (inner.attn.proj, inner.mlp.fc1, inner.mlp.fc2))


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    model = build_model("mtlora", backbone="swin_nano", img_size=64).eval()
    return model, torch.randn(1, 3, 64, 64)


def test_one_pass_serves_every_task(nano) -> None:
    model, images = nano
    calls = []
    handle = model.encoder.backbone.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(images)
    handle.remove()
    assert len(calls) == 1


def test_tasks_share_every_block_but_the_last_of_each_stage(nano, assert_tasks_see) -> None:
    model, images = nano
    enc = model.encoder
    with torch.no_grad():
        shared = enc.backbone(images)  # the shared stream
        feats = enc(images)
        assert_tasks_see(feats, shared)  # all B start at zero: every task stream is the shared one
        last = enc.backbone.layers[1].blocks[-1].block
        branch = last.mlp.fc2.tasks[2]  # task 2's LoRA in the last block of stage 1
        branch.b.normal_()
        moved = enc(images)
        branch.b.zero_()
        # A shared LoRA in a first block moves every task, and moves them alike.
        enc.backbone.layers[2].blocks[0].attn.proj.shared.b.normal_()
        together = enc(images)
        enc.backbone.layers[2].blocks[0].attn.proj.shared.b.zero_()
    for i, t in enumerate(ALL_TASKS):
        for s in range(4):
            same = not (i == 2 and s == 1)  # the shared stream into stage 2 did not move
            assert torch.allclose(moved[t][s], feats[t][s]) == same, (t, s)
    for t in ALL_TASKS:
        assert not torch.allclose(together[t][2], feats[t][2])
        torch.testing.assert_close(together[t][2], together[ALL_TASKS[0]][2])
