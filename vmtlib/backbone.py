"""Swin Transformer backbones through timm, returning the four stage features.

The seed papers use Swin-T (ImageNet-1k) as the encoder; Swin-S/B appear in
their ablations. ``swin_nano`` keeps the same four-stage hierarchy (patch 4,
channels C, 2C, 4C, 8C at strides 4, 8, 16, 32) at a size a laptop CPU trains
in minutes.

Shapes: an input ``(B, 3, H, W)`` with H, W divisible by 32 gives stage
features ``(B, C_s, H / 2^(s+2), W / 2^(s+2))`` for s = 0..3 (NCHW). Inside the
blocks timm works in NHWC, and so do the methods that hook into them.

Weights (``pretrained``):

- ``False``: random initialisation (timm's).
- ``True``: timm's ImageNet weights through the HuggingFace hub; for
  ``swin_nano`` the weights the repository ships (stages 0-1 pretrained on a
  synthetic objective, stages 2-3 at their seed-0 initialisation;
  ``vmtlib/weights/README.md`` says how they were made and why).
- a path: a local file, either an official Swin ``.pth`` (key ``model``,
  downsample at the end of a stage) or a timm ``.safetensors`` / ``.pth``
  state dict. This is how offline clusters work.

One module on purpose (about 400 lines): everything that depends on timm's
version lives here, the block internals it reaches into (``_attn``, the relative
position bias, the attention mask) and the conversion of its checkpoints, so a
timm upgrade is checked and fixed in this file and its contract tests alone.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import (
    SwinTransformer,
    checkpoint_filter_fn,
    window_partition,
    window_reverse,
)
from torch import nn

from vmtlib.checks import parse_bool

NANO_WEIGHTS = Path(__file__).parent / "weights" / "swin_nano.safetensors"


@dataclass(frozen=True)
class SwinConfig:
    """Architecture of one Swin variant (Liu et al. 2021, Table 7 naming)."""

    timm_name: str
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    hub_tag: str | None  # timm pretrained tag on the hub, None when we ship the weights
    decoder_dim: int = 256  # SegFormer head width (SegFormer also sizes it per backbone)

    @property
    def dims(self) -> tuple[int, ...]:
        """Channels of the four stages: C, 2C, 4C, 8C."""
        return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))


BACKBONES: dict[str, SwinConfig] = {
    "swin_tiny": SwinConfig(
        "swin_tiny_patch4_window7_224", 96, (2, 2, 6, 2), (3, 6, 12, 24), 7, "ms_in1k"
    ),
    "swin_small": SwinConfig(
        "swin_small_patch4_window7_224", 96, (2, 2, 18, 2), (3, 6, 12, 24), 7, "ms_in1k"
    ),
    "swin_base": SwinConfig(
        "swin_base_patch4_window7_224", 128, (2, 2, 18, 2), (4, 8, 16, 32), 7, "ms_in1k"
    ),
    # The CPU course: 48 channels (a multiple of 48, like Swin-T's 96, so that
    # VMT-Adapter-Lite's m = 3, 6, 12 divide every width and bottleneck at
    # rho = 4), 4x4 windows so a 128x128 input has whole windows at stage 4.
    # Its decoders embed in 64 channels: at 256 they would cost 4x the backbone.
    "swin_nano": SwinConfig("swin_nano", 48, (2, 2, 2, 2), (2, 4, 8, 16), 4, None, 64),
}


def get_backbone_config(name: str) -> SwinConfig:
    """The config of backbone ``name``; ``ValueError`` naming the valid ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; valid backbones are: {', '.join(BACKBONES)}"
        ) from None


class SwinBackbone(nn.Module):
    """Patch embedding and the four Swin stages of a timm model, nothing else.

    The classification head and the final norm are dropped, so the trainable
    count of the encoder is that of the papers (27,517,818 for Swin-T; VMT-Adapter's
    Table 2 prints 27.51M). Submodule
    names follow timm (``patch_embed``, ``layers.{s}.downsample``,
    ``layers.{s}.blocks.{b}``), so timm state dicts load unchanged.
    """

    def __init__(self, name: str = "swin_tiny", img_size: int = 224) -> None:
        super().__init__()
        if img_size % 32:
            raise ValueError(f"img_size must be divisible by 32, got {img_size}")
        self.name = name
        self.config = get_backbone_config(name)
        cfg = self.config
        model = SwinTransformer(
            img_size=img_size,
            embed_dim=cfg.embed_dim,
            depths=cfg.depths,
            num_heads=cfg.num_heads,
            window_size=cfg.window_size,
            num_classes=0,
            strict_img_size=False,  # any size divisible by 32, windows padded as needed
            drop_path_rate=0.0,
        )
        self.patch_embed = model.patch_embed
        self.layers = model.layers

    @property
    def dims(self) -> tuple[int, ...]:
        return self.config.dims

    @property
    def depths(self) -> tuple[int, ...]:
        return self.config.depths

    def blocks(self) -> list[tuple[int, int, nn.Module]]:
        """All Swin blocks as ``(stage, index_in_stage, block)``, in forward order."""
        return [
            (s, b, block)
            for s, stage in enumerate(self.layers)
            for b, block in enumerate(stage.blocks)
        ]

    def forward_nhwc(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs in NHWC: ``[(B, H/4, W/4, C), ..., (B, H/32, W/32, 8C)]``."""
        _check_input(images)
        x = self.patch_embed(images)
        feats = []
        for stage in self.layers:
            x = stage.downsample(x)
            for block in stage.blocks:
                x = block(x)
            feats.append(x)
        return feats

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs in NCHW: ``[(B, C, H/4, W/4), ..., (B, 8C, H/32, W/32)]``."""
        return [f.permute(0, 3, 1, 2) for f in self.forward_nhwc(images)]


# ------------------------------------------------------------------ timm's block internals
# The only place that touches timm's private API (``SwinTransformerBlock._attn``,
# ``WindowAttention._get_rel_pos_bias``, ``get_attn_mask``): a timm upgrade that changes
# them is fixed here, and ``tests/test_backbone.py`` checks that :func:`block_forward`
# with identity branches reproduces timm's block bit for bit.


def _identity_attn(h: torch.Tensor) -> torch.Tensor:
    return h


def _identity_mlp(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return h


def block_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """W-MSA of a timm block on ``x = LN1(input)`` ``(B, H, W, C)``: shift, pad,
    window, attend, merge; ``(B, H, W, C)`` before the residual add."""
    return block._attn(x)


def block_forward(
    block: nn.Module,
    x: torch.Tensor,
    attn_branch: Callable[[torch.Tensor], torch.Tensor] = _identity_attn,
    mlp_branch: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _identity_mlp,
    attention: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """timm's ``SwinTransformerBlock.forward`` with hooks on its two branches::

        x = x + attn_branch(attention(LN1(x)))            (B, H, W, C)
        x = x + mlp_branch(MLP(LN2(x)), LN2(x))           (B, N, C)

    ``attention`` defaults to the block's own W-MSA (:func:`block_attention`).
    """
    b, h, w, c = x.shape
    attend = attention or block._attn
    x = x + block.drop_path1(attn_branch(attend(block.norm1(x))))
    x = x.reshape(b, -1, c)
    mlp_in = block.norm2(x)
    x = x + block.drop_path2(mlp_branch(block.mlp(mlp_in), mlp_in))
    return x.reshape(b, h, w, c)


def relative_position_bias(attn: nn.Module) -> torch.Tensor:
    """The relative-position bias B of a timm ``WindowAttention``, ``(1, heads, N, N)``."""
    return attn._get_rel_pos_bias()


def windowed_attention(
    block: nn.Module,
    x: torch.Tensor,
    attend: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
) -> torch.Tensor:
    """timm's ``SwinTransformerBlock._attn`` with ``attend(windows, mask)`` in place of
    its ``WindowAttention``: ``x`` ``(B, H, W, C)`` (after LN1) is shifted, padded to
    whole windows and split into windows ``(B * nW, N, C)``; ``mask`` is the
    shifted-window mask ``(nW, N, N)`` or ``None``; the outputs are merged back."""
    _, h, w, c = x.shape
    has_shift = any(block.shift_size)
    if has_shift:
        x = torch.roll(x, shifts=(-block.shift_size[0], -block.shift_size[1]), dims=(1, 2))
    wh, ww = block.window_size
    x = F.pad(x, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
    _, hp, wp, _ = x.shape
    windows = window_partition(x, block.window_size).view(-1, wh * ww, c)
    mask = block.get_attn_mask(x) if getattr(block, "dynamic_mask", False) else block.attn_mask
    out = attend(windows, mask)
    x = window_reverse(out.view(-1, wh, ww, c), block.window_size, hp, wp)[:, :h, :w, :]
    if has_shift:
        x = torch.roll(x, shifts=block.shift_size, dims=(1, 2))
    return x


def _check_input(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h % 32 or w % 32:
        raise ValueError(f"image height and width must be divisible by 32, got {h}x{w}")


def build_backbone(
    name: str = "swin_tiny", pretrained: bool | str | Path = False, img_size: int = 224
) -> SwinBackbone:
    """A Swin backbone with random, hub or local-file weights (see module docstring)."""
    backbone = SwinBackbone(name, img_size=img_size)
    if pretrained is True:
        if backbone.config.hub_tag is None:
            load_weights(backbone, NANO_WEIGHTS)
        else:
            load_weights(backbone, _hub_state_dict(backbone.config))
    elif pretrained:
        load_weights(backbone, Path(pretrained))
    return backbone


def take_stages(source: dict[str, torch.Tensor], base: dict[str, torch.Tensor],
                stages: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """The backbone state dict ``base`` with the tensors of ``stages`` taken from ``source``.

    Stage ``s`` is every key under ``layers.s.`` (its blocks and the patch merging
    at its start, timm's layout); the patch embedding belongs to stage 0. This is
    how ``scripts/probe_transfer.py``'s ``reset`` specs put stages back to their
    initialisation, to show what each pretrained stage carries.
    """
    def stage(key: str) -> int:
        return int(key.split(".")[1]) if key.startswith("layers.") else 0

    if source.keys() != base.keys():
        raise ValueError("the two state dicts have different keys")
    return {k: source[k] if stage(k) in stages else base[k] for k in base}


def weights_fingerprint(name: str, pretrained: bool | str | Path) -> str | None:
    """Which weights ``build_backbone(name, pretrained)`` loads, as a short id.

    ``None`` for the random initialisation, ``"sha256:<16 hex>"`` of a local file
    (the shipped ``swin_nano`` weights included) and ``"timm:<tag>"`` for hub
    weights. Runs and benchmarks record it, so that a result is only reused with
    the weights it was measured on.
    """
    cfg = get_backbone_config(name)
    if pretrained is False:
        return None
    if pretrained is True and cfg.hub_tag is not None:
        return f"timm:{cfg.timm_name}.{cfg.hub_tag}"
    path = NANO_WEIGHTS if pretrained is True else Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def course_pretrained(value: str) -> bool:
    """The course benchmarks' ``--pretrained auto | true | false`` (argparse ``type``).

    ``auto`` is the shipped swin_nano weights when the file is there, else the
    random initialisation.
    """
    if value.strip().lower() == "auto":
        return NANO_WEIGHTS.is_file()
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError(f"--pretrained: expected auto, true or false, got {value!r}") from None


def pretrained_arg(value: str) -> bool | str:
    """A ``--pretrained`` / ``--weights`` flag (argparse ``type``): ``true`` or
    ``false`` in any case, else the path of a weights file, kept as it is."""
    v = value.strip()
    return {"true": True, "false": False}.get(v.lower(), v)


def _hub_state_dict(cfg: SwinConfig) -> dict[str, torch.Tensor]:
    """timm's ImageNet weights for ``cfg`` from the hub, or a clear offline error."""
    tag = f"{cfg.timm_name}.{cfg.hub_tag}"
    try:
        model = timm.create_model(tag, pretrained=True, num_classes=0)
    except Exception as err:  # hub errors come in many types (offline, DNS, HTTP)
        raise RuntimeError(
            f"could not fetch timm's pretrained weights {tag!r} from the HuggingFace hub "
            f"({type(err).__name__}: {err}). On a machine without the hub, download the "
            f"weights elsewhere and pass a local file: pretrained='path/to/{cfg.timm_name}.pth' "
            f"(the official Swin release) or pretrained='path/to/model.safetensors' (timm)."
        ) from err
    return model.state_dict()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pth`` file (``weights_only``) into a flat state dict."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors, zip, unpickling errors: name the file first
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable weights file: it holds "
                         f"{_describe_file(path)} ({type(err).__name__}: {first})") from err
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_weights(
    backbone: SwinBackbone, source: Path | dict[str, torch.Tensor]
) -> SwinBackbone:
    """Load Swin weights (official or timm layout) into ``backbone``.

    Official checkpoints are converted by timm's ``checkpoint_filter_fn``
    (downsample moved to the start of the next stage, relative-position tables
    resized). Head and final-norm weights are ignored; any other missing or
    unexpected key is an error that names the file and the keys.
    """
    state = read_state_dict(source) if isinstance(source, Path) else source
    where = str(source) if isinstance(source, Path) else "state dict"
    _check_variant(state, backbone, where)
    try:
        with warnings.catch_warnings():  # timm's table resizing warns about its own indexing
            warnings.filterwarnings("ignore", module=r"timm\.layers\.interpolate")
            state = checkpoint_filter_fn(state, backbone)
    except (AttributeError, KeyError, IndexError, RuntimeError) as err:
        raise ValueError(f"{where} does not match backbone {backbone.name!r}: timm's "
                         f"conversion failed ({type(err).__name__}: {err})") from err
    state = {k: v for k, v in state.items() if not k.startswith(("head.", "norm."))}
    result = backbone.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if "attn_mask" not in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{where} does not match backbone {backbone.name!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}"
            f"{'...' if len(result.unexpected_keys) > 5 else ''}"
        )
    return backbone


def _describe_file(path: Path) -> str:
    """What a file that failed to load holds, in a few words (for error messages)."""
    size = path.stat().st_size
    head = path.read_bytes()[:64]
    if not head:
        return "nothing (an empty file)"
    if head.startswith(b"PK"):
        return f"a zip archive of {size} bytes, truncated or corrupted"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"{size} bytes of binary data"
    if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
        return f"text ({text.strip()[:30]!r}...)"
    return f"{size} bytes of binary data"


def _check_variant(state: dict[str, torch.Tensor], backbone: SwinBackbone, where: str) -> None:
    """Refuse, by name, weights of another Swin variant (another width or depth)."""
    key = "patch_embed.proj.weight"
    have = backbone.patch_embed.proj.weight.shape
    if key in state and hasattr(state[key], "shape") and tuple(state[key].shape) != tuple(have):
        raise ValueError(
            f"{where} holds a Swin of embedding width {state[key].shape[0]} "
            f"({key} {tuple(state[key].shape)}), not backbone {backbone.name!r} "
            f"(width {have[0]}): weights of another Swin variant")
    stages = {int(k.split(".")[1]) for k in state if k.startswith("layers.")}
    blocks = {k.split(".")[1] + "." + k.split(".")[3] for k in state
              if k.startswith("layers.") and ".blocks." in k}
    want = sum(backbone.config.depths)
    if stages and (len(stages) != len(backbone.config.depths) or len(blocks) != want):
        raise ValueError(
            f"{where} holds {len(stages)} stages with {len(blocks)} blocks, not backbone "
            f"{backbone.name!r}'s {len(backbone.config.depths)} stages with {want} blocks: "
            f"weights of another Swin variant")
