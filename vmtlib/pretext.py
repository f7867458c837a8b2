"""The pretext task that pretrains the CPU course's ``swin_nano``: *radial contours*.

``swin_nano`` has no public weights, and a frozen random backbone is a poor
baseline for parameter-efficient methods, so the repository ships weights
trained by ``scripts/pretrain_swin_nano.py`` on the objective defined here:
formula-driven supervised learning (FDSL; Kataoka et al., "Pre-training Vision
Transformers with Formula-driven Supervised Learning", CVPR 2022), whose
radial-contour images (RCDB) pretrain ViTs as well as ImageNet-21k does. Their
finding is that object *contours* and a pretext hard enough yet learnable are
what matters; no natural image is needed. The objective is deliberately
**not** one of the four downstream tasks (semseg, human parts, saliency,
normals) and its images are **not** :class:`~vmtlib.data.synthetic.SyntheticScenes`:
freezing the backbone is then a real transfer, as freezing an ImageNet Swin
is for PASCAL-Context.

The classes (``NUM_CLASSES = 64``, a formula each)
-------------------------------------------------
Class ``c`` is a closed radial contour ``R_c(theta)`` in polar coordinates::

    R_c(theta) = P_n(theta) * (1 + a * cos(k * theta))          (one formula per class)
    P_n(theta) = cos(pi / n) / cos((theta mod 2pi/n) - pi/n)    (a regular n-gon)

with ``n = VERTICES[c % 8]`` (3, 4, 5, 6, 7, 8, 10 or 12 vertices),
``k = LOBES[(c // 8) % 4]`` (0, 2, 3 or 5 lobes; amplitude ``a = 0.22``, none
for k = 0) and ``NESTED[c // 32]`` concentric copies (1 or 3, at radii
1, 0.68, 0.38), as RCDB draws nested contours.

An image: one instance of one class
-----------------------------------
Each ``size x size`` sample draws its class uniformly and an instance of it:
rotation (any angle), anisotropic scale (aspect 0.85-1.18 on a random axis),
radius 40-90% of the half-size, a centre jitter, a small per-instance
perturbation of the radius (two random harmonics of orders 6-11, amplitude
<= 0.02), and one of three styles: **outline** (the contours as lines of
width 1-3.5 px), **flat** (the outer contour filled with one colour, the inner
contours as lines), or **relief** (filled, with a dome height field lit by a
random directional light: ambient + Lambert shading, so that shading is seen
without being a target). The background is a smooth random colour field with
0-2 straight line segments of clutter; a colour cast, exposure and sensor
noise end the image. The class is only recoverable from the contour's shape:
vertex count, lobes and nesting, under every nuisance above.

The objective is classification by a thrown-away head on the last stage
(:class:`PretextHead`: global average pool, LayerNorm, one linear layer per
factor), the usual image-classification pretraining of a Swin: every stage is
trained, and the features of every stage are what the downstream decoders
read. The class is learnt as its three factors (vertices, lobes, nesting: a
cross-entropy each, with label smoothing), plus the drawing style as a fourth:
factorised labels give a from-scratch Swin a gradient from the coarse factors
(nesting, style) long before it tells 10 from 12 vertices, which a 64-way
softmax alone did not (chance level after 32,000 images in our first run).
The reported accuracy is the joint one: all three factors right, i.e. the
64-way class.

Masked image modelling on the same images (SimMIM)
---------------------------------------------------
Classification alone makes the deep stages *invariant*: our earlier pretexts
(v3 glyphs, v1 contours) trained stages 2-3 into features that transferred worse
to the dense tasks than their random initialisation (``vmtlib/weights/README.md``).
Half of every batch (the odd sample indices) is therefore masked and
reconstructed instead of classified, as SimMIM does for Swin (Xie et al.,
"SimMIM: a Simple Framework for Masked Image Modeling", CVPR 2022): the image is
cut into ``MASK_BLOCK x MASK_BLOCK`` pixel blocks, ``MASK_RATIO`` of them are set
to zero after ImageNet normalisation (the mean colour), and a linear layer on
the *last* stage predicts every pixel of its ``32 x 32`` cell (:class:`PixelHead`,
a 1x1 convolution to ``3 * 32 * 32`` channels and a pixel shuffle)::

    L_mim = sum_p M_p |x_hat_p - x_p|_1 / (3 sum_p M_p)          (SimMIM, Eq. 1)

over the masked pixels ``M_p = 1`` of the normalised image ``x``. The head is
one linear layer so that the backbone, up to its deepest stage, has to keep the
local colour, shading and texture that reconstruction needs; Xie et al.
("Revealing the Dark Secrets of Masked Image Modeling", CVPR 2023) find that
masked modelling keeps exactly the geometric information (depth, pose) that
supervised pretraining loses. The total loss is the factors' cross-entropies
on the unmasked half plus ``L_mim`` on the masked half.

Determinism: sample ``index`` of ``seed`` is drawn from
``np.random.default_rng([seed, index, 11])`` (the 11 keeps these streams
apart from the scenes' ``[seed, index]``), so it is the same in every process
and order. Rendering is vectorised numpy in float32 (about 1 ms per 128 px
image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

VERTICES: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 10, 12)
"""Vertex counts of the polygon ``P_n``."""

LOBES: tuple[int, ...] = (0, 2, 3, 5)
"""Orders ``k`` of the radial harmonic ``1 + a cos(k theta)``."""

NESTED: tuple[int, ...] = (1, 3)
"""Number of concentric copies of the contour."""

NUM_CLASSES = len(VERTICES) * len(LOBES) * len(NESTED)
"""64 classes: ``c = vertices_index + 8 * lobes_index + 32 * nested_index``."""

STYLES: tuple[str, ...] = ("outline", "flat", "relief")
LOBE_AMPLITUDE = 0.22
NESTED_RADII = (1.0, 0.68, 0.38)
MASK_BLOCK = 32
"""Side in pixels of the blocks that masked image modelling hides (SimMIM's mask patch)."""
MASK_RATIO = 0.6
"""Fraction of the blocks hidden in a masked sample (SimMIM's default for Swin)."""


def class_formula(c: int) -> tuple[int, int, int]:
    """``(vertices n, lobes k, nested copies)`` of class ``c``."""
    if not 0 <= c < NUM_CLASSES:
        raise ValueError(f"class {c} outside 0..{NUM_CLASSES - 1}")
    return VERTICES[c % 8], LOBES[(c // 8) % 4], NESTED[c // 32]


FACTORS: dict[str, int] = {"vertices": len(VERTICES), "lobes": len(LOBES),
                           "nested": len(NESTED), "style": len(STYLES)}
"""The factors the head predicts, with their numbers of values."""


def class_factors(c: int) -> tuple[int, int, int]:
    """``(vertices index, lobes index, nested index)`` of class ``c``."""
    class_formula(c)
    return c % 8, (c // 8) % 4, c // 32


def class_name(c: int) -> str:
    """A readable name such as ``'5-gon, 3 lobes, x3'``."""
    n, k, nested = class_formula(c)
    return f"{n}-gon" + (f", {k} lobes" if k else "") + (f", x{nested}" if nested > 1 else "")


def contour_radius(theta: np.ndarray, c: int) -> np.ndarray:
    """``R_c(theta)`` of the module docstring (outer contour, unit scale)."""
    n, k, _ = class_formula(c)
    sector = 2 * math.pi / n
    polygon = math.cos(math.pi / n) / np.cos(np.mod(theta, sector) - sector / 2)
    lobes = 1.0 + LOBE_AMPLITUDE * np.cos(k * theta) if k else 1.0
    return (polygon * lobes).astype(np.float32)


@dataclass(frozen=True)
class ContourSample:
    """One rendered sample: ``image`` float32 (3, H, W) in [0, 1], ``label`` its class,
    ``style`` one of :data:`STYLES`."""

    image: np.ndarray
    label: int
    style: str


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A (size, size) smooth random field in [0, 1] (bilinear upsampling of a grid)."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    pos = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(int), cells - 1)
    f = pos - i0
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None] + rows[:, i0 + 1] * f[None]


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, 3).astype(np.float32)


def _distinct_colour(rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """A colour at least 0.35 (Euclidean, RGB) away from ``other``."""
    for _ in range(20):
        col = _colour(rng)
        if np.linalg.norm(col - other) > 0.35:
            return col
    return (1.0 - other).astype(np.float32)


def _segments(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Coverage in [0, 1] of ``n`` random straight segments of width 1-2 px (clutter)."""
    cover = np.zeros_like(x)
    size = x.shape[0]
    for _ in range(n):
        p, q = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        d = q - p
        t = np.clip(((x - p[0]) * d[0] + (y - p[1]) * d[1]) / max(d @ d, 1e-6), 0, 1)
        dist = np.hypot(x - p[0] - t * d[0], y - p[1] - t * d[1]) * size / 2
        cover = np.maximum(cover, np.clip(rng.uniform(0.5, 1.0) + 0.5 - dist, 0, 1))
    return cover


def render_contour(seed: int, index: int, size: int = 128) -> ContourSample:
    """Sample ``index`` of ``seed`` (see the module docstring), deterministic."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    rng = np.random.default_rng([seed, index, 11])
    label = int(rng.integers(NUM_CLASSES))
    style = STYLES[int(rng.integers(len(STYLES)))]
    _, _, nested = class_formula(label)

    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(coords, coords, indexing="ij")
    px = 2.0 / size  # one pixel in these units

    # background: a smooth colour field between two colours, plus clutter segments
    base, other = _colour(rng), _colour(rng)
    blend = _smooth_field(rng, size, int(rng.integers(2, 6)))[..., None]
    image = base * (1 - 0.6 * blend) + other * 0.6 * blend
    clutter = _segments(rng, x, y, int(rng.integers(0, 3)))[..., None]
    image = image * (1 - clutter) + _colour(rng) * clutter

    # the instance: rotation, anisotropy, scale, centre, per-instance wobble
    radius = rng.uniform(0.40, 0.90)
    centre = rng.uniform(-1, 1, 2) * (1 - radius) * 0.8
    rot, axis = rng.uniform(0, 2 * math.pi), rng.uniform(0, math.pi)
    aspect = math.exp(rng.uniform(math.log(0.85), math.log(1.18)))
    u, v = x - centre[0], y - centre[1]
    ca, sa = math.cos(axis), math.sin(axis)
    a, b = (u * ca + v * sa) / math.sqrt(aspect), (-u * sa + v * ca) * math.sqrt(aspect)
    u, v = a * ca - b * sa, a * sa + b * ca
    r = np.hypot(u, v)
    theta = np.arctan2(v, u) - rot
    wobble = 1.0
    for order in rng.integers(6, 12, 2):
        wobble = wobble + rng.uniform(0, 0.02) * np.cos(order * theta + rng.uniform(0, 6.3))
    outer = radius * contour_radius(theta, label) * wobble  # (H, W) radius of the contour

    colour = _distinct_colour(rng, image[size // 2, size // 2])
    width = rng.uniform(1.0, 3.5) * px
    if style != "outline":
        inside = np.clip((outer - r) / px + 0.5, 0, 1)[..., None]
        fill = np.broadcast_to(colour, image.shape)
        if style == "relief":
            rho = np.clip(r / np.maximum(outer, 1e-6), 0, 1)
            height = np.sqrt(1 - rho**2) * radius * rng.uniform(0.4, 1.2)
            gy, gx = np.gradient(height, px)
            elev, azim = rng.uniform(0.3, 1.3), rng.uniform(0, 2 * math.pi)
            light = (math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim),
                     math.sin(elev))
            lambert = (-gx * light[0] - gy * light[1] + light[2]) / np.sqrt(gx**2 + gy**2 + 1)
            ambient = rng.uniform(0.2, 0.45)
            fill = fill * (ambient + (1 - ambient) * np.clip(lambert, 0, 1))[..., None]
        image = image * (1 - inside) + fill * inside
        line_colour = _distinct_colour(rng, colour)
        copies = NESTED_RADII[1:nested]
    else:
        line_colour = colour
        copies = NESTED_RADII[:nested]
    for scale in copies:
        line = np.clip((width / 2 - np.abs(r - scale * outer)) / px + 0.5, 0, 1)[..., None]
        image = image * (1 - line) + line_colour * line

    # camera: colour cast, exposure, sensor noise
    image = image * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.8, 1.2)
    image = image + rng.normal(0, rng.uniform(0.0, 0.04), image.shape)
    image = np.clip(image, 0, 1).astype(np.float32).transpose(2, 0, 1)
    return ContourSample(np.ascontiguousarray(image), label, style)


def block_mask(seed: int, index: int, size: int = 128) -> np.ndarray:
    """The (size, size) float32 mask of sample ``index`` of ``seed``: 1 on the
    ``round(MASK_RATIO * blocks)`` hidden ``MASK_BLOCK``-pixel blocks, 0 elsewhere."""
    if size % MASK_BLOCK:
        raise ValueError(f"size must be a multiple of {MASK_BLOCK}, got {size}")
    cells = size // MASK_BLOCK
    hidden = np.random.default_rng([seed, index, 12]).permutation(cells * cells)
    grid = np.zeros(cells * cells, dtype=np.float32)
    grid[hidden[:round(MASK_RATIO * cells * cells)]] = 1.0
    return np.kron(grid.reshape(cells, cells), np.ones((MASK_BLOCK, MASK_BLOCK), np.float32))


def make_batch(seed: int, indices: Sequence[int], size: int = 128) -> dict[str, torch.Tensor]:
    """Samples ``indices`` of ``seed`` stacked: ``image`` (B, 3, size, size) float32 in
    [0, 1], ``label`` (B,) int64, one (B,) int64 per factor of :data:`FACTORS`,
    ``masked`` (B,) bool (the odd indices: reconstructed, not classified) and ``mask``
    (B, 1, size, size) float32 (:func:`block_mask` for masked samples, zeros otherwise)."""
    samples = [render_contour(seed, i, size) for i in indices]
    factors = torch.tensor([(*class_factors(s.label), STYLES.index(s.style)) for s in samples],
                           dtype=torch.int64).reshape(-1, len(FACTORS))
    masked = [i % 2 == 1 for i in indices]
    zeros = np.zeros((size, size), np.float32)
    masks = [block_mask(seed, i, size) if m else zeros for i, m in zip(indices, masked)]
    return {"image": torch.from_numpy(np.stack([s.image for s in samples])),
            "label": torch.tensor([s.label for s in samples], dtype=torch.int64),
            **{name: factors[:, i] for i, name in enumerate(FACTORS)},
            "masked": torch.tensor(masked, dtype=torch.bool),
            "mask": torch.from_numpy(np.stack(masks))[:, None]}


class RadialContours(Dataset):
    """``n`` samples of ``seed`` as a map-style dataset (``image``, ``label``, ``meta``)."""

    def __init__(self, n: int, size: int = 128, seed: int = 0) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        s = render_contour(self.seed, index, self.size)
        return {"image": torch.from_numpy(s.image), "label": s.label,
                "meta": {"id": f"contour-{self.seed}-{index}", "style": s.style}}


class PretextHead(nn.Module):
    """The thrown-away classifier: global average pool of the last stage, LayerNorm, one
    linear layer per factor. ``feats`` are the backbone's four NCHW stage maps; returns
    ``{factor: (B, values)}`` logits."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dims[-1])
        self.fc = nn.Linear(dims[-1], sum(FACTORS.values()))

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.fc(self.norm(feats[-1].mean(dim=(2, 3))))
        return dict(zip(FACTORS, logits.split(list(FACTORS.values()), dim=1)))


def pretext_loss(logits: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                 label_smoothing: float = 0.1) -> tuple[torch.Tensor, dict[str, float]]:
    """The sum of the factors' cross-entropies (label smoothing), and the metrics:
    ``loss``, ``acc`` (the joint 64-way class, percent) and ``<factor>_acc``."""
    loss = sum(F.cross_entropy(logits[f].float(), batch[f], label_smoothing=label_smoothing)
               for f in FACTORS)
    hits = {f: logits[f].argmax(1) == batch[f] for f in FACTORS}
    joint = hits["vertices"] & hits["lobes"] & hits["nested"]
    metrics = {"loss": loss.item(), "acc": joint.float().mean().item() * 100,
               **{f"{f}_acc": h.float().mean().item() * 100 for f, h in hits.items()}}
    return loss, metrics


class PixelHead(nn.Module):
    """SimMIM's thrown-away prediction head: a 1x1 convolution of the last stage map
    (B, C, H/32, W/32) to ``3 * 32 * 32`` channels and a pixel shuffle to (B, 3, H, W)."""

    def __init__(self, dims: Sequence[int], stride: int = 32) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dims[-1], 3 * stride * stride, kernel_size=1)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.shuffle(self.proj(feats[-1]))


def mim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The L1 error on the masked pixels (module docstring): ``pred``, ``target``
    (B, 3, H, W), ``mask`` (B, 1, H, W) with 1 where hidden."""
    err = (pred.float() - target.float()).abs() * mask
    return err.sum() / (3 * mask.sum()).clamp_min(1.0)
