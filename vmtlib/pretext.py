"""The pretext task that pretrains the CPU course's ``swin_nano``: *relief glyphs*.

``swin_nano`` has no public weights, and a frozen random backbone is a poor
baseline for parameter-efficient methods, so the repository ships weights
trained by ``scripts/pretrain_swin_nano.py`` on the objective defined here.
The objective is deliberately **not** one of the four downstream tasks
(semseg, human parts, saliency, normals) and its images are **not**
:class:`~vmtlib.data.synthetic.SyntheticScenes`: freezing the backbone is then
a real transfer, like freezing an ImageNet Swin for PASCAL-Context.

The images
-----------
A sample is a ``size x size`` mosaic (default 128, the course resolution) of
``grid x grid`` tiles (default 2 x 2), or, with probability
``PretextConfig.p_single``, a single tile over the whole image. Each tile is
one *glyph*, a flat 2-D silhouette turned into a bas-relief and lit:

* **silhouette** (16): circle, triangle, square, pentagon, hexagon, 5- and
  4-pointed stars, cross, ring, crescent, half-disc, diamond, bar, L, arrow,
  trefoil, from analytic signed distance functions, at a random position,
  rotation, mild anisotropy and a log-uniform scale over a 3x range
  (the single-tile layout doubles it, so glyphs span 20-120 pixels);
* **relief** (4): the height is a profile of the normalised inside distance
  ``t`` (0 on the outline, 1 on the medial axis): ``plateau`` (a bevelled flat
  top), ``dome`` (a rounded pillow), ``roof`` (constant slope: faceted, like a
  hip roof) or ``ripple`` (concentric ridges). The normals are the gradient
  of the height field, so the relief is visible *only through shading*;
* **albedo**: a random colour (8 hue families or achromatic) times a texture
  in the glyph's own frame (plain, stripes, checker, dots, smooth noise);
* **background**: a tilted, bumpy plane with a two-colour texture (any
  saturation, so a vivid background is as likely as a muted one) and 0-2
  small distractor glyphs underneath the main one;
* **lighting**: one directional light (azimuth anywhere, elevation 14-69
  degrees) with ambient, Lambert and Blinn-Phong terms, a cast shadow of the
  glyph on the background, a colour cast, exposure and sensor noise.

The objective (per tile: shape, relief, colour, light; per pixel: the
intrinsic images and the outlines; :func:`pretext_loss`, seven terms)
-----------------------------------------------------------------------
* ``label``: silhouette x relief, ``NUM_CLASSES = 64`` combinations, learnt
  as two cross-entropies with label smoothing, ``shape`` (16) and ``relief``
  (4). Shape and scale of the silhouette need edges and context; the relief
  needs shading.
* ``colour``: the glyph's hue family or ``achromatic`` (9 classes), so that
  the features keep colour and saturation rather than becoming colour blind.
* ``light``: the unit light direction in the frame of vmtlib's normals
  (x right, y down, z towards the camera), regressed with a cosine loss. It
  is recoverable only by relating the shading to the relief's geometry.
* ``unshaded``, ``shading`` (L1) and ``edges`` (balanced BCE): per-pixel
  intrinsic-image targets (reflectance, grey shading) and the glyph outlines.

The head (:class:`PretextHead`) average-pools each of the four stage maps
onto the ``grid x grid`` tiles, layer-normalises and concatenates them and
predicts the tile labels with one linear layer; a small dense head (a linear
embedding of each stage, summed at stride 4, GELU, a linear layer) predicts the
per-pixel targets. Labels per tile
(not per image) keep stage 4 spatial; pooling every stage sends gradient
straight into the high-resolution stages that dense decoders read. The head is
thrown away after pretraining.

No target is a label of a downstream task, no class is a VOC class and the solids of
the scenes (spheres, boxes, persons, ...) do not appear: the downstream tasks
must still be learnt by the decoders (or adapters) on top.

Determinism: sample ``index`` of ``seed`` is drawn from
``np.random.default_rng([seed, index, 7])`` (the 7 keeps these streams apart
from the scenes' ``[seed, index]``), so it is the same in every process and
order. Rendering is vectorised numpy in float32 (about 1 ms per 64 x 64 tile).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

SHAPES: tuple[str, ...] = (
    "circle", "triangle", "square", "pentagon", "hexagon", "star5", "star4", "cross",
    "ring", "crescent", "half_disc", "diamond", "bar", "ell", "arrow", "trefoil",
)  # fmt: skip
"""The 16 silhouettes."""

RELIEFS: tuple[str, ...] = ("plateau", "dome", "roof", "ripple")
"""The 4 height profiles."""

NUM_CLASSES = len(SHAPES) * len(RELIEFS)
"""64 classes: ``label = shape * len(RELIEFS) + relief``."""

COLOURS: tuple[str, ...] = tuple(f"hue{k}" for k in range(8)) + ("achromatic",)
"""Colour labels: hue in [k/8, (k+1)/8) with saturation >= 0.4, or achromatic
(saturation <= 0.12)."""

PRETEXT_KEYS: tuple[str, ...] = (
    "image", "label", "colour", "light", "unshaded", "shading", "edges",
)
"""Keys of a sample (plus ``meta``); none of them is a downstream task id."""


@dataclass(frozen=True)
class PretextConfig:
    """Knobs of the pretext distribution (the defaults are the documented ones).

    Attributes:
        grid: tiles per side of the mosaic (labels are ``grid x grid``).
        p_single: probability of one glyph over the whole image instead of tiles.
        radius_range: glyph radius, log-uniform, in units of the tile half-side.
        distractor_probs: probabilities of 0, 1, 2 small distractor glyphs.
        elevation_range: light elevation above the image plane, radians.
        noise_range: std of the Gaussian sensor noise.
    """

    grid: int = 2
    p_single: float = 0.25
    radius_range: tuple[float, float] = (0.3, 0.9)
    distractor_probs: tuple[float, float, float] = (0.6, 0.3, 0.1)
    elevation_range: tuple[float, float] = (0.25, 1.2)
    noise_range: tuple[float, float] = (0.0, 0.04)


@dataclass
class PretextSample:
    """One mosaic as numpy arrays; labels are per tile, row-major ``(grid, grid)``."""

    image: np.ndarray  # float32 3xHxW in [0, 1]
    label: np.ndarray  # int64 (g, g), shape * 4 + relief
    colour: np.ndarray  # int64 (g, g)
    light: np.ndarray  # float32 (g, g, 3), unit, x right / y down / z to the camera
    unshaded: np.ndarray  # float32 3xHxW in [0, 1]: albedo x colour cast, no shading
    shading: np.ndarray  # float32 HxW: ambient + diffuse x Lambert x (1 - shadow)
    edges: np.ndarray  # uint8 HxW in {0, 1}: the visible glyph outlines


# ----------------------------------------------------------------------------
# signed distance functions: negative inside, the glyph spans about [-1, 1]^2


def _length(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(x * x + y * y)


def _box(x: np.ndarray, y: np.ndarray, bx: float, by: float) -> np.ndarray:
    qx = np.abs(x) - bx
    qy = np.abs(y) - by
    return _length(np.maximum(qx, 0.0), np.maximum(qy, 0.0)) + np.minimum(np.maximum(qx, qy), 0.0)


def _polygon(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Regular n-gon of circumradius 1: the distance to the nearest edge line
    (exact inside, which is all the relief needs)."""
    sector = 2 * math.pi / n
    a = np.mod(np.arctan2(y, x) + math.pi / 2, sector) - sector / 2  # a vertex points up
    return _length(x, y) * np.cos(a) - math.cos(math.pi / n)


def _star(x: np.ndarray, y: np.ndarray, n: int, inner: float) -> np.ndarray:
    """Star with ``n`` points: radius linear in the angle between tip (1) and notch."""
    sector = 2 * math.pi / n
    a = np.abs(np.mod(np.arctan2(y, x) + math.pi / 2, sector) - sector / 2) / (sector / 2)
    return (_length(x, y) - (1.0 - (1.0 - inner) * a)) * 0.7


def _triangle_sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _polygon(x, y + 0.2, 3)


def _sdf_circle(x, y):
    return _length(x, y) - 1.0


def _sdf_cross(x, y):
    return np.minimum(_box(x, y, 1.0, 0.32), _box(x, y, 0.32, 1.0))


def _sdf_ring(x, y):
    return np.abs(_length(x, y) - 0.68) - 0.32


def _sdf_crescent(x, y):
    return np.maximum(_length(x, y) - 1.0, -(_length(x - 0.5, y + 0.1) - 0.8))


def _sdf_half_disc(x, y):
    y = y + 0.42
    return np.maximum(_length(x, y) - 1.0, -y)


def _sdf_diamond(x, y):
    return (np.abs(x) + np.abs(y) / 0.55 - 1.0) * 0.48


def _sdf_ell(x, y):
    return np.minimum(_box(x + 0.55, y, 0.3, 0.95), _box(x - 0.05, y + 0.65, 0.9, 0.3))


def _sdf_arrow(x, y):
    head = _polygon(y / 0.65, (0.35 - x) / 0.65, 3) * 0.65  # a triangle on the right
    shaft = _box(x + 0.4, y, 0.6, 0.2)
    return np.minimum(head, shaft)


def _sdf_trefoil(x, y):
    d = None
    for k in range(3):
        a = math.pi / 2 + k * 2 * math.pi / 3
        dk = _length(x - 0.5 * math.cos(a), y - 0.5 * math.sin(a)) - 0.5
        d = dk if d is None else np.minimum(d, dk)
    return d


_SDF: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": _sdf_circle,
    "triangle": _triangle_sdf,
    "square": lambda x, y: _box(x, y, 0.75, 0.75),
    "pentagon": lambda x, y: _polygon(x, y, 5),
    "hexagon": lambda x, y: _polygon(x, y, 6),
    "star5": lambda x, y: _star(x, y, 5, 0.42),
    "star4": lambda x, y: _star(x, y, 4, 0.35),
    "cross": _sdf_cross,
    "ring": _sdf_ring,
    "crescent": _sdf_crescent,
    "half_disc": _sdf_half_disc,
    "diamond": _sdf_diamond,
    "bar": lambda x, y: _box(x, y, 1.0, 0.3),
    "ell": _sdf_ell,
    "arrow": _sdf_arrow,
    "trefoil": _sdf_trefoil,
}
assert tuple(_SDF) == SHAPES


def _profile(relief: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Height profile of the normalised inside distance ``t`` in [0, 1]."""
    if relief == "plateau":
        return np.minimum(t / rng.uniform(0.18, 0.35), 1.0)
    if relief == "dome":
        return np.sqrt(np.clip(t * (2.0 - t), 0.0, 1.0))
    if relief == "roof":
        return t
    return 0.22 * (1.0 - np.cos(2 * math.pi * rng.uniform(2.0, 3.0) * t))  # ripple


# ----------------------------------------------------------------------------
# colours and textures


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _glyph_colour(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A colour and its label: one of 8 hue families (kept away from the family
    borders) or achromatic, with equal probability."""
    k = int(rng.integers(len(COLOURS)))
    if k == len(COLOURS) - 1:
        return _hsv(0.0, rng.uniform(0.0, 0.12), rng.uniform(0.2, 1.0)), k
    hue = (k + rng.uniform(0.15, 0.85)) / 8
    return _hsv(hue, rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0)), k


@lru_cache(maxsize=32)
def _interp(n_out: int, n_grid: int) -> np.ndarray:
    """(n_out, n_grid) linear interpolation weights from grid nodes to pixel centres."""
    t = (np.arange(n_out) + 0.5) / n_out * (n_grid - 1)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, n_grid - 2)
    f = t - i0
    m = np.zeros((n_out, n_grid), dtype=np.float32)
    m[np.arange(n_out), i0] = 1.0 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


def _noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Smooth value noise in [0, 1] on an n x n tile."""
    grid = rng.random((cells, cells), dtype=np.float32)
    m = _interp(n, cells)
    return m @ grid @ m.T


def _texture(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """A pattern in [0, 1] over the tile in coordinates (x, y): plain, stripes,
    checker, dots or smooth noise."""
    kind = int(rng.integers(5))
    if kind == 0:
        return np.zeros((n, n), np.float32)
    if kind == 4:
        return _noise(rng, n, int(rng.integers(3, 10)))
    f = rng.uniform(2.0, 7.0)
    a = rng.uniform(0, math.pi)
    u = (x * math.cos(a) + y * math.sin(a)) * f
    v = (-x * math.sin(a) + y * math.cos(a)) * f
    if kind == 1:
        return np.broadcast_to(0.5 + 0.5 * np.sin(u * math.pi), (n, n)).astype(np.float32)
    if kind == 2:
        return ((np.sin(u * math.pi) * np.sin(v * math.pi)) > 0).astype(np.float32)
    fu = u - np.round(u)
    fv = v - np.round(v)
    return (fu * fu + fv * fv < 0.09).astype(np.float32)  # dots


# ----------------------------------------------------------------------------
# one tile


def _glyph(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, n: int,
           radius: float, centre: tuple[float, float], avoid: np.ndarray
           ) -> tuple[np.ndarray, ...]:
    """Render one glyph: (alpha, normals 3xnxn (y up), albedo 3xnxn, relief height
    in pixels, label, colour label, outline band nxn). The colour is redrawn (up to
    8 times) while it is within 0.3 (RGB distance) of the background colour ``avoid``."""
    s, r = int(rng.integers(len(SHAPES))), int(rng.integers(len(RELIEFS)))
    theta = rng.uniform(0, 2 * math.pi)
    aniso = math.exp(rng.uniform(-0.15, 0.15))
    c, sn = math.cos(theta), math.sin(theta)
    dx, dy = xs - centre[0], ys - centre[1]
    x = (dx * c + dy * sn) / (radius * aniso)
    y = (-dx * sn + dy * c) * aniso / radius
    d = np.broadcast_to(_SDF[SHAPES[s]](x, y), (n, n)).astype(np.float32)
    pix = 2.0 / n / radius  # one pixel in glyph units
    alpha = np.clip(0.5 - d / pix, 0.0, 1.0)
    inside = np.maximum(-d, 0.0)
    dmax = max(float(inside.max()), pix)
    amp = rng.uniform(0.5, 1.3) * dmax  # relief height in glyph units
    h = (amp * _profile(RELIEFS[r], inside / dmax, rng)).astype(np.float32)
    gy, gx = np.gradient(h)  # per pixel, rows go down
    nx, ny = -gx / pix, gy / pix  # y up: dh/dy_up = -dh/drow
    norm = np.sqrt(nx * nx + ny * ny + 1.0)
    normals = np.stack([nx / norm, ny / norm, 1.0 / norm])
    colour, colour_label = _glyph_colour(rng)
    for _ in range(8):
        if float(np.linalg.norm(colour - avoid)) >= 0.3:
            break
        colour, colour_label = _glyph_colour(rng)
    pattern = _texture(rng, x, y, n)
    tex = 1.0 - rng.uniform(0.0, 0.35) * pattern
    albedo = colour[:, None, None] * tex[None]
    height_px = amp * radius * n / 2
    outline = (np.abs(d) < pix).astype(np.float32)  # a band about 2 pixels wide
    return alpha, normals, albedo, height_px, s * len(RELIEFS) + r, colour_label, outline


def _shift(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``a`` translated by (dr rows, dc columns), zero filled."""
    out = np.zeros_like(a)
    n0, n1 = a.shape
    rs, rd = (slice(0, n0 - dr), slice(dr, n0)) if dr >= 0 else (slice(-dr, n0), slice(0, n0 + dr))
    cs, cd = (slice(0, n1 - dc), slice(dc, n1)) if dc >= 0 else (slice(-dc, n1), slice(0, n1 + dc))
    out[rd, cd] = a[rs, cs]
    return out


class Tile(NamedTuple):
    """One rendered tile (see :class:`PretextSample` for the conventions)."""

    image: np.ndarray
    label: int
    colour: int
    light: np.ndarray
    unshaded: np.ndarray
    shading: np.ndarray
    edges: np.ndarray


def render_tile(rng: np.random.Generator, n: int, config: PretextConfig | None = None) -> Tile:
    """Render one ``n x n`` tile: image 3xnxn in [0, 1], label, colour label,
    light (3,) in x right / y down / z to the camera, the unshaded image, the
    shading and the outline map."""
    cfg = config or PretextConfig()
    coords = (np.arange(n, dtype=np.float32) + 0.5) / (n / 2) - 1.0
    xs = coords[None, :]
    ys = -coords[:, None]  # y up

    # background: a tilted plane with bumps and a two-colour texture
    c1 = _hsv(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.2, 0.95))
    c2 = _hsv(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.2, 0.95))
    c2 = c1 + (c2 - c1) * np.float32(rng.uniform(0.1, 0.4))  # a low-contrast texture
    p = _texture(rng, xs, ys, n)
    albedo = c1[:, None, None] + (c2 - c1)[:, None, None] * p[None]
    tilt, az = rng.uniform(0.0, 0.6), rng.uniform(0, 2 * math.pi)
    bump = _noise(rng, n, int(rng.integers(3, 9))) * (rng.uniform(0.0, 0.35) * n / 2)
    gy, gx = np.gradient(bump)
    nx = -gx + math.sin(tilt) * math.cos(az) / math.cos(tilt)
    ny = gy + math.sin(tilt) * math.sin(az) / math.cos(tilt)
    norm = np.sqrt(nx * nx + ny * ny + 1.0)
    normals = np.stack([nx / norm, ny / norm, 1.0 / norm])
    spec_k = np.zeros((n, n), np.float32)

    # distractors below the glyph, then the glyph
    n_dis = int(rng.choice(3, p=cfg.distractor_probs))
    edges = np.zeros((n, n), np.float32)
    for _ in range(n_dis):
        a, nd, al, _, _, _, ed = _glyph(rng, xs, ys, n, rng.uniform(0.1, 0.2),
                                        (rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9)), c1)
        albedo = albedo + (al - albedo) * a[None]
        normals = normals + (nd - normals) * a[None]
        edges = np.maximum(edges * (1.0 - a), ed)
    radius = float(np.exp(rng.uniform(*np.log(cfg.radius_range))))
    lim = max(0.0, 1.0 - radius * 0.8)
    centre = (rng.uniform(-lim, lim), rng.uniform(-lim, lim))
    alpha, n_obj, al_obj, height_px, label, colour, ed = _glyph(rng, xs, ys, n, radius, centre,
                                                                c1)
    edges = np.maximum(edges * (alpha < 0.5), ed)
    albedo = albedo + (al_obj - albedo) * alpha[None]
    normals = normals + (n_obj - normals) * alpha[None]
    normals /= np.sqrt((normals * normals).sum(0, keepdims=True)) + 1e-6
    spec_k = alpha * np.float32(rng.uniform(0.0, 0.5))

    # light (y up while rendering)
    phi = rng.uniform(0, 2 * math.pi)
    elev = rng.uniform(*cfg.elevation_range)
    light = np.array([math.cos(elev) * math.cos(phi), math.cos(elev) * math.sin(phi),
                      math.sin(elev)], np.float32)
    # cast shadow of the glyph on what lies below it, away from the light
    off = min(height_px / math.tan(elev), n / 4)
    dc = int(round(-off * math.cos(phi)))
    dr = int(round(off * math.sin(phi)))  # -y_up displacement = +rows
    shadow = _shift(alpha, dr, dc) * (1.0 - alpha) * rng.uniform(0.5, 0.9)
    lambert = np.maximum(np.tensordot(light, normals, axes=1), 0.0) * (1.0 - shadow)
    half = light + np.array([0.0, 0.0, 1.0], np.float32)
    half /= np.linalg.norm(half)
    spec = spec_k * np.maximum(np.tensordot(half, normals, axes=1), 0.0) ** rng.uniform(8, 48)
    ambient, diffuse = rng.uniform(0.15, 0.45), rng.uniform(0.6, 1.0)
    cast = (1.0 + rng.uniform(-0.1, 0.1, size=3)).astype(np.float32) * rng.uniform(0.8, 1.2)
    unshaded = albedo * cast[:, None, None]  # the intrinsic-image targets: reflectance ...
    shading = ambient + diffuse * lambert  # ... and shading (grey, before the colour cast)
    img = (albedo * shading[None] + spec[None]) * cast[:, None, None]
    img += rng.standard_normal((3, n, n), dtype=np.float32) * np.float32(
        rng.uniform(*cfg.noise_range))
    np.clip(img, 0.0, 1.0, out=img)
    light[1] = -light[1]  # y up -> y down (vmtlib's normals frame)
    return Tile(img.astype(np.float32), label, colour, light,
                np.clip(unshaded, 0.0, 1.0).astype(np.float32), shading.astype(np.float32),
                edges.astype(np.uint8))


def render_pretext(seed: int, index: int, size: int = 128,
                   config: PretextConfig | None = None) -> PretextSample:
    """Render sample ``index`` of ``seed``: a mosaic of ``grid x grid`` tiles, or one
    tile over the whole image (labels repeated over the grid)."""
    cfg = config or PretextConfig()
    g = cfg.grid
    if size % g:
        raise ValueError(f"size {size} is not divisible by grid {g}")
    rng = np.random.default_rng([int(seed), int(index), 7])
    label = np.zeros((g, g), np.int64)
    colour = np.zeros((g, g), np.int64)
    light = np.zeros((g, g, 3), np.float32)
    if rng.random() < cfg.p_single:
        tile = render_tile(rng, size, cfg)
        label[:], colour[:], light[:] = tile.label, tile.colour, tile.light
        return PretextSample(tile.image, label, colour, light, tile.unshaded, tile.shading,
                             tile.edges)
    t = size // g
    img = np.empty((3, size, size), np.float32)
    unshaded = np.empty((3, size, size), np.float32)
    shading = np.empty((size, size), np.float32)
    edges = np.empty((size, size), np.uint8)
    for i in range(g):
        for j in range(g):
            tile = render_tile(rng, t, cfg)
            label[i, j], colour[i, j], light[i, j] = tile.label, tile.colour, tile.light
            rows, cols = slice(i * t, (i + 1) * t), slice(j * t, (j + 1) * t)
            img[:, rows, cols] = tile.image
            unshaded[:, rows, cols] = tile.unshaded
            shading[rows, cols] = tile.shading
            edges[rows, cols] = tile.edges
    return PretextSample(img, label, colour, light, unshaded, shading, edges)


class ReliefGlyphs(Dataset):
    """A torch Dataset of ``n`` pretext mosaics (see the module docstring).

    ``ds[i]`` is a dict with ``image`` (float32 3xHxW in [0, 1]), ``label`` and
    ``colour`` (int64 ``(grid, grid)``), ``light`` (float32 ``(grid, grid, 3)``),
    ``unshaded`` (float32 3xHxW), ``shading`` (float32 HxW), ``edges`` (int64 HxW in
    {0, 1}) and ``meta``.
    """

    def __init__(self, n: int, size: int = 128, seed: int = 0,
                 config: PretextConfig | None = None) -> None:
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.size, self.seed = int(n), int(size), int(seed)
        self.config = config or PretextConfig()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        index %= self.n
        s = render_pretext(self.seed, index, self.size, self.config)
        return {
            "image": torch.from_numpy(s.image),
            "label": torch.from_numpy(s.label),
            "colour": torch.from_numpy(s.colour),
            "light": torch.from_numpy(s.light),
            "unshaded": torch.from_numpy(s.unshaded),
            "shading": torch.from_numpy(s.shading),
            "edges": torch.from_numpy(s.edges.astype(np.int64)),
            "meta": {"id": f"pretext-{self.seed}-{index}", "seed": self.seed, "index": index},
        }


def make_batch(seed: int, indices: Sequence[int], size: int = 128,
               config: PretextConfig | None = None) -> dict[str, torch.Tensor]:
    """Stack samples ``indices`` of ``seed`` into a batch (no DataLoader needed):
    ``image (B, 3, H, W)`` in [0, 1], ``label``/``colour`` ``(B, g, g)``,
    ``light (B, g, g, 3)``."""
    samples = [render_pretext(seed, i, size, config) for i in indices]
    return {
        "image": torch.from_numpy(np.stack([s.image for s in samples])),
        "label": torch.from_numpy(np.stack([s.label for s in samples])),
        "colour": torch.from_numpy(np.stack([s.colour for s in samples])),
        "light": torch.from_numpy(np.stack([s.light for s in samples])),
        "unshaded": torch.from_numpy(np.stack([s.unshaded for s in samples])),
        "shading": torch.from_numpy(np.stack([s.shading for s in samples])),
        "edges": torch.from_numpy(np.stack([s.edges for s in samples]).astype(np.int64)),
    }


# ----------------------------------------------------------------------------
# head and objective


class PretextHead(nn.Module):
    """Per-tile linear head plus a light dense head on all four stages.

    ``forward(feats)`` takes the backbone's NCHW stage features and returns
    ``{"shape": (B, 16, g, g), "relief": (B, 4, g, g), "colour": (B, 9, g, g),
    "light": (B, 3, g, g)}`` (``light`` unit-normalised) and, at the stride-4 resolution of stage 1,
    ``"unshaded": (B, 3, H/4, W/4)``, ``"shading": (B, 1, H/4, W/4)`` and
    ``"edges": (B, 1, H/4, W/4)`` (logits).
    The dense head is deliberately small (a linear embedding of each stage to
    ``dense_dim`` channels, summed, GELU, a linear prediction) so that the
    work has to be done by the backbone.
    """

    def __init__(self, dims: Sequence[int], grid: int = 2, dense_dim: int = 32) -> None:
        super().__init__()
        self.grid = grid
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in dims)
        self.linear = nn.Linear(sum(dims), len(SHAPES) + len(RELIEFS) + len(COLOURS) + 3)
        self.dense_norms = nn.ModuleList(nn.LayerNorm(c) for c in dims)
        self.dense_embeds = nn.ModuleList(nn.Linear(c, dense_dim) for c in dims)
        self.dense_out = nn.Linear(dense_dim, 5)

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        pooled = [
            norm(F.adaptive_avg_pool2d(f, self.grid).permute(0, 2, 3, 1))
            for f, norm in zip(feats, self.norms)
        ]
        out = self.linear(torch.cat(pooled, dim=-1)).permute(0, 3, 1, 2)
        a, b = len(SHAPES), len(SHAPES) + len(RELIEFS)
        c = b + len(COLOURS)
        size = feats[0].shape[-2:]
        dense = None
        for f, norm, embed in zip(feats, self.dense_norms, self.dense_embeds):
            e = embed(norm(f.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
            if e.shape[-2:] != size:
                e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
            dense = e if dense is None else dense + e
        d = self.dense_out(F.gelu(dense).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return {
            "shape": out[:, :a],
            "relief": out[:, a:b],
            "colour": out[:, b:c],
            "light": F.normalize(out[:, c:], dim=1),
            "unshaded": d[:, :3],
            "shading": d[:, 3:4],
            "edges": d[:, 4:],
        }


LOSS_WEIGHTS: dict[str, float] = {
    "shape": 1.0, "relief": 1.0, "colour": 0.5, "light": 1.0, "unshaded": 5.0, "shading": 5.0,
    "edges": 1.0,
}
"""Weights of the seven terms of :func:`pretext_loss`."""


def pretext_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                 label_smoothing: float = 0.1,
                 weights: dict[str, float] | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """The pretext objective and its metrics.

    ``loss = w_shape CE_ls(shape) + w_relief CE_ls(relief) + w_colour CE_ls(colour)
    + w_light (1 - cos(light)) + w_unshaded L1(unshaded) + w_shading L1(shading)
    + w_edges BCE_balanced(edges)``
    with ``shape = label // 4`` and ``relief = label % 4``; the dense outputs are
    upsampled bilinearly to the label resolution, the edge BCE weights the (rare)
    outline pixels by the fraction of the others. Returns ``(loss, {"loss",
    "shape_loss", "relief_loss", "colour_loss", "light_loss", "unshaded_loss",
    "shading_loss", "edges_loss", "acc", "shape_acc", "relief_acc", "colour_acc", "light_deg",
    "edges_f1"})`` (``acc``: shape and relief both right; accuracies and F1 in
    percent, mean light error in degrees).
    """
    w = weights or LOSS_WEIGHTS
    shape, relief = batch["label"] // len(RELIEFS), batch["label"] % len(RELIEFS)
    ce_shape = F.cross_entropy(out["shape"], shape, label_smoothing=label_smoothing)
    ce_relief = F.cross_entropy(out["relief"], relief, label_smoothing=label_smoothing)
    ce_colour = F.cross_entropy(out["colour"], batch["colour"], label_smoothing=label_smoothing)
    cos = (out["light"] * batch["light"].permute(0, 3, 1, 2)).sum(1)
    light = (1.0 - cos).mean()
    size = batch["edges"].shape[-2:]
    unshaded = F.interpolate(out["unshaded"], size=size, mode="bilinear", align_corners=False)
    l1 = (unshaded - batch["unshaded"]).abs().mean()
    shading = F.interpolate(out["shading"], size=size, mode="bilinear", align_corners=False)
    l1_shading = (shading[:, 0] - batch["shading"]).abs().mean()
    edge_logit = F.interpolate(out["edges"], size=size, mode="bilinear", align_corners=False)[:, 0]
    target = batch["edges"].to(edge_logit.dtype)
    pos = target.mean().clamp(1e-3, 1 - 1e-3)
    bce = F.binary_cross_entropy_with_logits(edge_logit, target, reduction="none")
    bce = ((1 - pos) * target * bce + pos * (1 - target) * bce).mean() * 2
    loss = (w["shape"] * ce_shape + w["relief"] * ce_relief + w["colour"] * ce_colour
            + w["light"] * light + w["unshaded"] * l1 + w["shading"] * l1_shading
            + w["edges"] * bce)
    with torch.no_grad():
        hit_shape = out["shape"].argmax(1) == shape
        hit_relief = out["relief"].argmax(1) == relief
        hit_colour = (out["colour"].argmax(1) == batch["colour"]).float().mean()
        pred_edge = edge_logit > 0
        tp = (pred_edge & (target > 0)).sum()
        f1 = 2 * tp / (pred_edge.sum() + (target > 0).sum()).clamp_min(1)
        metrics = {
            "loss": float(loss),
            "shape_loss": float(ce_shape),
            "relief_loss": float(ce_relief),
            "colour_loss": float(ce_colour),
            "light_loss": float(light),
            "unshaded_loss": float(l1),
            "shading_loss": float(l1_shading),
            "edges_loss": float(bce),
            "acc": 100.0 * float((hit_shape & hit_relief).float().mean()),
            "shape_acc": 100.0 * float(hit_shape.float().mean()),
            "relief_acc": 100.0 * float(hit_relief.float().mean()),
            "colour_acc": 100.0 * float(hit_colour),
            "light_deg": float(torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0))).mean()),
            "edges_f1": 100.0 * float(f1),
        }
    return loss, metrics
