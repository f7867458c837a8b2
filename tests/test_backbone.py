import pytest
import torch
from safetensors.torch import save_file

from vmtlib.backbone import (
    BACKBONES,
    NANO_WEIGHTS,
    SwinBackbone,
    build_backbone,
    course_pretrained,
    pretrained_arg,
)


@pytest.mark.parametrize("size", [64, 224])
def test_nano_stage_features_are_nchw_at_strides_4_to_32(size: int) -> None:
    bb = build_backbone("swin_nano", img_size=size)
    feats = bb(torch.randn(2, 3, size, size))
    assert [tuple(f.shape) for f in feats] == [
        (2, 48 * 2**s, size // 2 ** (s + 2), size // 2 ** (s + 2)) for s in range(4)
    ]


def test_other_sizes_divisible_by_32_run() -> None:
    bb = build_backbone("swin_nano", img_size=64)
    feats = bb(torch.randn(1, 3, 96, 160))
    assert feats[-1].shape[-2:] == (3, 5)


def test_input_not_divisible_by_32_is_rejected() -> None:
    bb = build_backbone("swin_nano", img_size=64)
    with pytest.raises(ValueError, match="divisible by 32"):
        bb(torch.randn(1, 3, 100, 96))


def test_swin_tiny_config_matches_the_paper() -> None:
    with torch.device("meta"):
        bb = SwinBackbone("swin_tiny")
    assert bb.dims == (96, 192, 384, 768) and bb.depths == (2, 2, 6, 2)
    assert sum(p.numel() for p in bb.parameters()) == 27_517_818  # 27.52M, the papers' 27.51


def test_unknown_backbone_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="swin_nano"):
        build_backbone("resnet50")


def test_local_timm_safetensors_round_trip(tmp_path) -> None:
    src = build_backbone("swin_nano", img_size=64)
    path = tmp_path / "nano.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = build_backbone("swin_nano", pretrained=str(path), img_size=64)
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(src(x), dst(x)):
        torch.testing.assert_close(a, b)


def test_official_swin_layout_is_converted(tmp_path) -> None:
    """Official checkpoints: key "model", downsample at the end of the previous stage."""
    src = build_backbone("swin_nano", img_size=64)
    official = {}
    for k, v in src.state_dict().items():
        if ".downsample." in k:
            stage = int(k.split(".")[1])
            k = k.replace(f"layers.{stage}.downsample", f"layers.{stage - 1}.downsample")
        official[k] = v
    official["head.weight"] = torch.zeros(10, 384)
    path = tmp_path / "swin_nano.pth"
    torch.save({"model": official}, path)
    dst = build_backbone("swin_nano", pretrained=path, img_size=64)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(src(x)[-1], dst(x)[-1])


def test_mismatched_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"model": {"foo.weight": torch.zeros(3)}}, path)
    with pytest.raises(ValueError, match="wrong.pth"):
        build_backbone("swin_nano", pretrained=path, img_size=64)


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_backbone("swin_nano", pretrained=tmp_path / "nope.pth", img_size=64)


def test_unreachable_hub_suggests_a_local_file(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="pretrained='path/to/"):
        build_backbone("swin_tiny", pretrained=True)


def test_nano_ships_its_own_weights() -> None:
    if NANO_WEIGHTS.exists():
        bb = build_backbone("swin_nano", pretrained=True, img_size=64)
        assert not all(torch.all(p == 0) for p in bb.parameters())
    else:
        with pytest.raises(FileNotFoundError, match="swin_nano.safetensors"):
            build_backbone("swin_nano", pretrained=True, img_size=64)
    assert BACKBONES["swin_nano"].hub_tag is None


def test_weights_fingerprint_names_the_weights(tmp_path) -> None:
    from vmtlib.backbone import NANO_WEIGHTS, weights_fingerprint

    assert weights_fingerprint("swin_nano", False) is None
    shipped = weights_fingerprint("swin_nano", True)
    assert shipped == weights_fingerprint("swin_nano", NANO_WEIGHTS)
    assert shipped.startswith("sha256:") and len(shipped) == 7 + 16
    other = tmp_path / "other.safetensors"
    other.write_bytes(NANO_WEIGHTS.read_bytes()[:-1] + b"x")
    assert weights_fingerprint("swin_nano", str(other)) != shipped
    assert weights_fingerprint("swin_tiny", True) == "timm:swin_tiny_patch4_window7_224.ms_in1k"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        weights_fingerprint("swin_nano", tmp_path / "nope.pth")


def test_take_stages_takes_each_stage_from_one_source() -> None:
    from vmtlib.backbone import take_stages

    trained = {"patch_embed.proj.weight": torch.ones(1), "layers.0.blocks.0.w": torch.ones(1),
               "layers.2.downsample.reduction.weight": torch.ones(1),
               "layers.3.blocks.1.w": torch.ones(1)}
    init = {k: torch.zeros(1) for k in trained}
    kept = take_stages(trained, init, (0, 1))
    assert [float(v) for v in kept.values()] == [1.0, 1.0, 0.0, 0.0]
    kept = take_stages(trained, init, (3,))
    assert [float(v) for v in kept.values()] == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="different keys"):
        take_stages(trained, {"x": torch.zeros(1)}, (0,))


def test_course_pretrained_parses_the_benchmarks_flag(monkeypatch, tmp_path) -> None:
    assert course_pretrained("true") is True and course_pretrained(" No ") is False
    assert course_pretrained("auto") is NANO_WEIGHTS.is_file()
    monkeypatch.setattr("vmtlib.backbone.NANO_WEIGHTS", tmp_path / "missing.safetensors")
    assert course_pretrained("auto") is False
    with pytest.raises(ValueError, match="expected auto, true or false, got 'ture'"):
        course_pretrained("ture")


def test_pretrained_arg_reads_booleans_and_keeps_paths() -> None:
    assert pretrained_arg("True") is True and pretrained_arg(" false ") is False
    assert pretrained_arg("weights/swin_t.pth") == "weights/swin_t.pth"
    assert pretrained_arg("1") == "1"  # a file called 1, not a number


# ------------------------------------------------------------------ timm's block internals


@pytest.mark.parametrize(("name", "size"), [("swin_nano", 64), ("swin_tiny", 64)])
def test_identity_hooks_reproduce_timms_blocks_bit_for_bit(name: str, size: int) -> None:
    """The contract of the one place that uses timm's private API: the hooked block
    (identity hooks), ``block_forward`` and ``windowed_attention`` with timm's own
    window attention give timm's outputs exactly, shifted and padded windows included
    (Swin-T's 7 x 7 windows pad a 16 x 16 grid)."""
    from vmtlib.backbone import block_attention, block_forward, windowed_attention
    from vmtlib.methods.base import MethodState
    from vmtlib.methods.layers import BlockHooks, HookedSwinBlock

    torch.manual_seed(0)
    backbone = SwinBackbone(name, img_size=size).eval()
    x = backbone.patch_embed(torch.rand(2, 3, size, size))
    shifted = 0
    for stage in backbone.layers:
        x = stage.downsample(x)
        for block in stage.blocks:
            hooks = BlockHooks()
            hooks.stage, hooks.index, hooks.state = 0, 0, MethodState()
            want = block(x)
            assert torch.equal(HookedSwinBlock(block, hooks)(x), want)
            assert torch.equal(block_forward(block, x), want)
            h = block.norm1(x)
            timm_attn = windowed_attention(block, h, lambda w, m, a=block.attn: a(w, mask=m))
            assert torch.equal(timm_attn, block_attention(block, h))
            shifted += any(block.shift_size)
            x = want
    assert shifted > 0
