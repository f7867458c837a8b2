"""The three decoders: shapes, counts against the papers, and what each head reads."""

import pytest
import torch

from vmtlib import build_model, count_parameters
from vmtlib.__main__ import main
from vmtlib.decoders import ASPPHead, HRNetHead, build_decoder

SWIN_T = (96, 192, 384, 768)


def stage_features(dims=SWIN_T, size=64, batch=2, grad=False):
    return [
        torch.randn(batch, c, size // 2 ** (s + 2), size // 2 ** (s + 2), requires_grad=grad)
        for s, c in enumerate(dims)
    ]


def decoder_count(decoder: str) -> int:
    with torch.device("meta"):
        return count_parameters(build_model("decoders_only", decoder=decoder))["decoders"]


def test_counts_on_swin_tiny_with_four_tasks() -> None:
    k = 21 + 7 + 1 + 3  # output channels of the four tasks
    assert decoder_count("segformer") / 1e6 == pytest.approx(2.55, rel=0.01)
    # HRNet head at width 256: 1440 x 256 + BN, then 256 -> K. MTLoRA Table 2: 1.94M.
    assert decoder_count("hrnet") == 4 * (1440 * 256 + 2 * 256) + 256 * k + k == 1_484_832
    # ASPP on stage 4 (768 channels): MTLoRA Table 2: 12.44M (see decoders.py).
    aspp = 4 * (768 * 256 * (1 + 3 * 9) + 2 * 4 * 256 + 768 * 256 + 256 + 1280 * 256 + 2 * 256)
    assert decoder_count("aspp") == aspp + 256 * k + k == 24_136_736


def test_hrnet_reads_every_stage_at_the_finest_scale() -> None:
    head = HRNetHead(SWIN_T, out_channels=5).eval()
    feats = stage_features(grad=True)
    out = head(feats)
    assert out.shape == (2, 5, 16, 16)  # H / 4
    out.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert head.fuse[0].in_channels == sum(SWIN_T)


def test_aspp_reads_the_last_stage_with_five_branches() -> None:
    head = ASPPHead(SWIN_T, out_channels=5).eval()
    feats = stage_features(size=256, grad=True)
    out = head(feats)
    assert out.shape == (2, 5, 8, 8)  # H / 32
    out.sum().backward()
    assert all(f.grad is None for f in feats[:3]) and feats[3].grad.abs().sum() > 0
    dilations = [b[0].dilation[0] for b in head.branches]
    assert dilations == [1, 3, 6, 9] and head.project[0][0].in_channels == 5 * 256


def test_aspp_trains_on_a_batch_of_one() -> None:
    head = ASPPHead((8, 16, 32, 64), out_channels=3, embed_dim=16).train()
    out = head(stage_features((8, 16, 32, 64), size=128, batch=1))
    out.mean().backward()  # the pooled branch has no BatchNorm, so batch 1 works


@pytest.mark.parametrize("decoder", ["hrnet", "aspp"])
def test_models_predict_at_input_resolution(decoder: str) -> None:
    model = build_model(
        "lora_shared", backbone="swin_nano", img_size=64, decoder=decoder, tasks="semseg,normals"
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out["semseg"].shape == (1, 21, 64, 64) and out["normals"].shape == (1, 3, 64, 64)


def test_unknown_decoder_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown decoder 'fpn'.*segformer, hrnet, aspp"):
        build_decoder("fpn", SWIN_T, 3)


def test_params_cli_prints_the_table_with_another_decoder(capsys) -> None:
    assert main(["params", "--decoder", "hrnet", "--tasks", "semseg,sal"]) == 0
    out = capsys.readouterr().out
    assert "hrnet decoders" in out and "decoders_only" in out


def _segformer_textbook(head, feats):
    """SegFormer's order: embed, upsample to H/4, concatenate [e_4, ..., e_1], fuse."""
    import torch.nn.functional as F

    size = feats[0].shape[-2:]
    embedded = []
    for f, norm, embed in zip(feats, head.norms, head.embeds):
        e = embed(norm(f.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        if e.shape[-2:] != size:
            e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
        embedded.append(e)
    return head.predict(head.fuse(torch.cat(embedded[::-1], dim=1)))


def test_segformer_fuses_before_upsampling_with_the_same_function_and_gradients() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    head = build_decoder("segformer", SWIN_T, 21, 256)
    head.train()  # BatchNorm on batch statistics; dropout off for a deterministic comparison
    head.fuse[3].p = 0.0
    feats = stage_features(size=224, grad=True)
    ours, textbook = head(feats), _segformer_textbook(head, feats)
    torch.testing.assert_close(ours, textbook, atol=2e-5, rtol=1e-4)
    g_ours = torch.autograd.grad(ours.square().mean(), [*feats, *head.parameters()])
    g_book = torch.autograd.grad(textbook.square().mean(), [*feats, *head.parameters()])
    for a, b in zip(g_ours, g_book):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-3)

    def flops(fn) -> int:
        with FlopCounterMode(display=False) as counter:
            fn(head, stage_features(size=224))
        return counter.get_total_flops()

    # one C_s -> 256 product per stage at its own resolution instead of two at H/4
    assert flops(_segformer_textbook) / flops(lambda h, f: h(f)) > 4


def test_hrnet_fuses_before_upsampling_with_the_same_function() -> None:
    import torch.nn.functional as F

    head = HRNetHead(SWIN_T, out_channels=5).train()
    feats = stage_features(size=128, grad=True)
    size = feats[0].shape[-2:]
    resized = [f if f.shape[-2:] == size else
               F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats]
    textbook = head.predict(head.fuse(torch.cat(resized, dim=1)))  # HRNet-V2's order
    ours = head(feats)
    torch.testing.assert_close(ours, textbook, atol=2e-5, rtol=1e-4)
    for a, b in zip(torch.autograd.grad(ours.square().mean(), [*feats, *head.parameters()]),
                    torch.autograd.grad(textbook.square().mean(), [*feats, *head.parameters()])):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-3)
