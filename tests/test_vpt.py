"""VPT in Swin: counts, placement, and the prompted window attention's equation."""

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import window_partition

from vmtlib import ALL_TASKS, build_model
from vmtlib.inspect_model import encoder_count
from vmtlib.methods.vpt import PromptedSwinBlock, prompted_window_attention


def test_counts_on_swin_tiny() -> None:
    assert encoder_count("vpt_deep") == 4 * 50 * 4416
    assert encoder_count("vpt_shallow") == 4 * 50 * 96


def test_shallow_prompts_the_first_block_deep_every_block() -> None:
    with torch.device("meta"):
        shallow = build_model("vpt_shallow").encoder.backbone
        deep = build_model("vpt_deep").encoder.backbone
    prompted = [(s, b) for s, b, blk in shallow.blocks() if isinstance(blk, PromptedSwinBlock)]
    assert prompted == [(0, 0)]
    assert all(isinstance(blk, PromptedSwinBlock) for _, _, blk in deep.blocks())
    widths = [blk.prompts.shape for _, _, blk in deep.blocks()]
    assert widths[0] == (4, 50, 96) and widths[-1] == (4, 50, 768)


def naive_prompted_attention(attn, windows, mask, prompts):
    """One window at a time: softmax over [prompts; tokens] with zero bias for prompt keys."""
    heads, p = attn.num_heads, prompts.shape[0]
    rel = attn._get_rel_pos_bias()[0]  # (heads, N, N)
    outs = []
    for w, x in enumerate(windows):
        seq = torch.cat([prompts, x])  # (P + N, C)
        q, k, v = attn.qkv(seq).reshape(len(seq), 3, heads, -1).permute(1, 2, 0, 3)
        bias = rel + (mask[w % mask.shape[0]] if mask is not None else 0)
        bias = F.pad(bias, (p, 0))  # prompt keys: no position, no mask
        logits = q[:, p:] @ k.transpose(-1, -2) * attn.scale + bias
        y = (logits.softmax(-1) @ v).transpose(0, 1).reshape(len(x), -1)
        outs.append(attn.proj(y))
    return torch.stack(outs)


def test_windows_attend_to_the_shared_prompts() -> None:
    model = build_model("vpt_deep", backbone="swin_nano", img_size=64).eval()
    block = model.encoder.backbone.layers[0].blocks[1]  # a shifted block
    blk = block.block
    x = blk.norm1(torch.randn(2, 16, 16, 48))
    mask = blk.get_attn_mask(x)  # the shifted-window mask, (nW, N, N)
    assert any(blk.shift_size) and mask is not None
    windows = window_partition(x, blk.window_size).view(-1, blk.window_area, 48)
    prompts = blk.norm1(block.prompts[1])
    with torch.no_grad():
        got = prompted_window_attention(blk.attn, windows, mask, prompts)
        want = naive_prompted_attention(blk.attn, windows, mask, prompts)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_prompts_leave_the_grid_and_act_per_task() -> None:
    model = build_model("vpt_shallow", backbone="swin_nano", img_size=64).eval()
    enc = model.encoder
    images = torch.randn(1, 3, 64, 64)
    block = enc.backbone.layers[0].blocks[0]
    with torch.no_grad():
        feats = enc(images)
        plain = enc.backbone.layers[0].blocks[0] = block.block  # the same block, no prompts
        without = enc.backbone(images)
        enc.backbone.layers[0].blocks[0] = block
        block.prompts[3] += torch.randn_like(block.prompts[3])  # (a constant would vanish in LN1)
        moved = enc(images)
    assert plain is block.block
    for t in ALL_TASKS:
        assert [f.shape for f in feats[t]] == [f.shape for f in without]
        assert not torch.allclose(feats[t][0], without[0])  # prompts change the features
    changed = [t for t in ALL_TASKS if not torch.allclose(moved[t][0], feats[t][0])]
    assert changed == [ALL_TASKS[3]]
