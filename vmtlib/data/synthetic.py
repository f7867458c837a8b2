"""Synthetic multi-task scenes: all four PASCAL-Context labels, rendered on the fly.

The CPU course cannot download PASCAL-Context, so it trains on scenes that this
module draws procedurally. Every sample carries the four labels of the
benchmark in exactly the PASCAL conventions of ``pascal_context_format.md``,
so the same model, losses and metrics run on both.

What a scene contains
---------------------
* **Background** (semseg 0): a wall (or, in 30% of scenes, a sky) above a
  random horizon and, in 75% of scenes, a floor below it. Wall and floor are
  planes with true normals (the camera looks down at the floor with a random
  pitch and sees the wall with a random yaw) and carry a texture of two
  *muted* colours (smooth noise, stripes or a checker at a random scale and
  angle). The sky has no normal (invalid, all-zero), like the PASCAL classes
  outside the NYUv2 list. A few flat *decals* (discs, bars) are painted on the
  background: they have colour and shape but no relief, so only shading tells
  them apart from objects (0-4 per scene, half of them as vivid as salient objects).
* **Objects**: 2-6 shaded solids, each drawn with an exact normal field, and
  0-2 person figures. The semseg ids are VOC ids (21 channels):

  ========  =======================  ============================================
  VOC id    VOC name                 solid
  ========  =======================  ============================================
  2         bicycle                  torus facing the camera (a wheel)
  3         bird                     elongated ellipsoid (aspect 1.8-2.8)
  4         boat                     square pyramid, random 3-D rotation
  5         bottle                   upright cylinder seen from above, with its cap
  7         car                      capsule lying across the image
  8         cat                      sphere
  9         chair                    box, random 3-D rotation (2-3 faces visible)
  15        person                   figure: head, torso, upper/lower arms and legs
  16        pottedplant              upright cone
  20        tvmonitor                thin slab facing the camera with a dark screen
  ========  =======================  ============================================

  Colours are drawn at random per object, independently of the class, so a
  colour shortcut fails: classes differ in silhouette and shading only
  (sphere versus ellipsoid by aspect, box versus slab by thickness and the
  screen, capsule versus person limbs by context). Sizes are log-uniform over
  a 7x range, objects leave the frame, and the painter's algorithm (far to
  near, larger objects tend to be nearer) makes them occlude each other, so
  both small details and image-wide context matter.
* **Lighting**: one directional light (random direction in front of the
  scene, from above more often than not), Lambert shading
  ``albedo * (ambient + diffuse * max(0, n . l))`` with random ambient,
  diffuse strength and a colour cast, plus sensor noise. Because the
  shading is a function of the normal, the normals are recoverable from the
  image. Albedo textures multiply the colour, they never change the normal.
  The sensor noise is uniform with a random standard deviation (0.003-0.03).

The labels
----------
* ``semseg``: int64 HxW, the VOC id of the visible object, 0 for background
  (walls, floor, sky and decals). No 255 is produced (hard edges, no void band).
* ``human_parts``: int64 HxW, 7 classes as in PASCAL: 0 background, 1 head,
  2 torso, 3 upper arm, 4 lower arm, 5 upper leg, 6 lower leg. In an image
  where a person is visible, every non-person pixel is 0; in an image with no
  visible person pixel the whole map is 255 (ignored), as in PASCAL.
* ``sal``: int64 HxW in {0, 1}. **Rule: a solid object is salient iff its
  base colour is vivid** (HSV saturation >= 0.7 and value >= 0.7), while
  non-salient objects and the background are muted (saturation <= 0.3). A
  person is salient iff its clothes are vivid, and then the whole figure (head
  included) is salient. Vivid *decals* are flat paint on the wall, not objects,
  and are not salient: colour alone does not solve the task, the relief
  (shading) has to confirm an object. The rule is visible in the image: shading
  scales the three channels together and keeps the saturation. Each object is
  vivid with probability 0.45, so some images have an empty saliency mask.
* ``normals``: float32 3xHxW unit vectors in the PASCAL ``normals_distill``
  convention used by the MTI-Net / ASTMT code family: **x to the right,
  y down (along the image rows), z towards the camera**; a surface facing the
  camera is (0, 0, 1), PNG-encoded (128, 128, 255). Invalid pixels (sky) are
  all-zero.
* ``image``: float32 3xHxW in [0, 1]. ``meta``: ``{"id": "synthetic-<seed>-<index>",
  "seed": seed, "index": index}``.

Determinism: sample ``index`` of seed ``seed`` is drawn from
``np.random.default_rng([seed, index])``, so it is the same in every process,
DataLoader worker and order. The scene is described in resolution-free units
(the shorter image side spans [-1, 1]) and only the sensor noise depends on the
resolution, so the same (seed, index) at 64 or 256 pixels shows the same scene.

Speed: everything is vectorised numpy in float32 on bounding-box crops of each
object; ``benchmarks/bench_synthetic.py`` measures the samples per second.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vmtlib.tasks import ALL_TASKS, parse_tasks

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
"""VOC class order: semseg ids 0..20."""

PERSON = 15
SHAPE_CLASSES: dict[str, int] = {
    "torus": 2, "ellipsoid": 3, "pyramid": 4, "cylinder": 5, "capsule": 7,
    "sphere": 8, "box": 9, "cone": 16, "slab": 20,
}
"""Solid -> VOC id (the person figure is VOC id 15)."""

HUMAN_PARTS: tuple[str, ...] = (
    "background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg",
)
"""The 7 human-part classes of the PASCAL multi-task benchmark."""

IGNORE = 255


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene distribution (the defaults are the documented ones).

    Attributes:
        min_objects / max_objects: number of solids (besides persons), inclusive.
        person_probs: probabilities of 0, 1, 2 person figures.
        p_salient: probability that an object (or a person's clothes) is vivid.
        size_range: object radius range in scene units (shorter side = 2 units).
        person_height_range: person height range in scene units.
        p_sky / p_floor: probability of a sky (instead of a wall) / of a floor.
        max_decals: flat background decals, 0..max_decals.
        p_vivid_decal: probability that a decal has a vivid colour (a saliency distractor).
        noise_range: range of the standard deviation of the (uniform) sensor noise.
    """

    min_objects: int = 2
    max_objects: int = 6
    person_probs: tuple[float, float, float] = (0.4, 0.45, 0.15)
    p_salient: float = 0.45
    size_range: tuple[float, float] = (0.1, 0.7)
    person_height_range: tuple[float, float] = (0.55, 1.9)
    p_sky: float = 0.3
    p_floor: float = 0.75
    max_decals: int = 4
    p_vivid_decal: float = 0.5
    noise_range: tuple[float, float] = (0.003, 0.03)


@dataclass
class SceneArrays:
    """One rendered scene as numpy arrays (the dataset converts them to tensors).

    ``instances`` (int16 HxW, 0 = background, k = k-th object painted) and
    ``instance_classes`` (VOC id of instance k at position k - 1) are extra
    ground truth used by the PASCAL_MT writer to build per-object masks.
    """

    image: np.ndarray  # float32 3xHxW in [0, 1]
    semseg: np.ndarray  # uint8 HxW
    human_parts: np.ndarray  # uint8 HxW, 255 when no person is visible
    sal: np.ndarray  # uint8 HxW in {0, 1}
    normals: np.ndarray  # float32 3xHxW, x right, y down, z to the camera; 0 = invalid
    instances: np.ndarray  # int16 HxW
    instance_classes: list[int]


# ----------------------------------------------------------------------------
# colours and textures


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _vivid(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))


def _muted(rng: np.random.Generator, max_sat: float = 0.3) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(0.0, max_sat), rng.uniform(0.3, 0.9))


@lru_cache(maxsize=64)
def _interp_matrix(n_out: int, n_grid: int) -> np.ndarray:
    """(n_out, n_grid) linear-interpolation weights from grid nodes to pixel centres."""
    t = (np.arange(n_out, dtype=np.float64) + 0.5) / n_out * (n_grid - 1)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, n_grid - 2)
    f = t - i0
    m = np.zeros((n_out, n_grid), dtype=np.float32)
    m[np.arange(n_out), i0] = 1.0 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random grid with ``cells`` nodes along the shorter side,
    upsampled bilinearly (two small matrix products)."""
    s = min(h, w)
    gy = max(2, round(cells * h / s))
    gx = max(2, round(cells * w / s))
    grid = rng.random((gy, gx), dtype=np.float32)
    return _interp_matrix(h, gy) @ grid @ _interp_matrix(w, gx).T


def _pattern(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A background texture in [0, 1] over the whole image: noise, stripes or checker."""
    kind = rng.integers(3)
    if kind == 0:
        return _smooth_noise(rng, ys.shape[0], xs.shape[1], int(rng.integers(3, 14)))
    ang = rng.uniform(0, math.pi)
    freq = rng.uniform(1.5, 9.0)
    c, s = math.cos(ang), math.sin(ang)
    u = (xs * c + ys * s) * freq + rng.uniform(0, 2 * math.pi)
    if kind == 1:
        return 0.5 + 0.5 * np.sin(u)
    v = (-xs * s + ys * c) * freq
    return ((np.sin(u) * np.sin(v)) > 0).astype(np.float32)


# ----------------------------------------------------------------------------
# solids: each returns (mask over the crop, normals 3xK at the masked pixels,
# optional albedo factor K); coordinates in scene units, y up.


def _rot2(nx: np.ndarray, ny: np.ndarray, phi: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(phi), math.sin(phi)
    return nx * c - ny * s, nx * s + ny * c


def _ellipsoid(X, Y, rx: float, ry: float, rz: float, phi: float):
    """Ellipsoid with in-plane semi-axes rx, ry (rotated by phi) and depth semi-axis rz.
    Surface x^2/rx^2 + y^2/ry^2 + z^2/rz^2 = 1, normal ~ (x/rx^2, y/ry^2, z/rz^2)."""
    c, s = math.cos(phi), math.sin(phi)
    a = (X * c + Y * s) / rx
    b = (Y * c - X * s) / ry
    q = a * a + b * b
    m = q < 1.0
    a, b = a[m], b[m]
    w = np.sqrt(1.0 - q[m])
    nx, ny = _rot2(a / rx, b / ry, phi)
    n = np.stack([nx, ny, w / rz])
    return m, n / np.sqrt((n * n).sum(0)), None


def _capsule(X, Y, p0: tuple[float, float], p1: tuple[float, float], r: float):
    """Segment p0-p1 swept by a sphere of radius r (axis in the image plane):
    n = ((p - q) / r, sqrt(1 - |p - q|^2 / r^2)) with q the closest axis point."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    ll = dx * dx + dy * dy + 1e-12
    t = np.clip(((X - p0[0]) * dx + (Y - p0[1]) * dy) / ll, 0.0, 1.0)
    ex = X - (p0[0] + t * dx)
    ey = Y - (p0[1] + t * dy)
    q = (ex * ex + ey * ey) / (r * r)
    m = q < 1.0
    n = np.stack([ex[m] / r, ey[m] / r, np.sqrt(1.0 - q[m])])
    return m, n, None


def _torus(X, Y, big_r: float, r: float):
    """Torus with its axis along z; with d = (rho - R) / r the tube normal is
    (d * radial, sqrt(1 - d^2))."""
    rho = np.sqrt(X * X + Y * Y) + 1e-9
    d = (rho - big_r) / r
    m = np.abs(d) < 1.0
    d, rho = d[m], rho[m]
    xm = np.broadcast_to(X, m.shape)[m]
    ym = np.broadcast_to(Y, m.shape)[m]
    n = np.stack([d * xm / rho, d * ym / rho, np.sqrt(1.0 - d * d)])
    return m, n, None


def _cylinder(X, Y, r: float, h: float, alpha: float, phi: float):
    """Upright cylinder (radius r, half-height h) seen from above at elevation alpha.

    Axis in camera coordinates a = (0, cos alpha, sin alpha); side normal at azimuth
    psi: (sin psi, -sin alpha cos psi, cos alpha cos psi); the top cap is the ellipse of
    semi-axes (r, r sin alpha) around (0, h cos alpha) with normal a."""
    c, s = math.cos(phi), math.sin(phi)
    a = X * c + Y * s
    b = Y * c - X * s
    sa, ca = math.sin(alpha), math.cos(alpha)
    u = a / r
    inside = np.abs(u) < 1.0
    cpsi = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    hh = (b + r * cpsi * sa) / ca
    body = inside & (np.abs(hh) <= h)
    cap = (u * u + ((b - h * ca) / (r * sa)) ** 2) < 1.0
    m = body | cap
    capm = cap[m]
    un, cn = u[m], cpsi[m]
    nx = np.where(capm, 0.0, un)
    ny = np.where(capm, ca, -sa * cn)
    nz = np.where(capm, sa, ca * cn)
    nx, ny = _rot2(nx, ny, phi)
    return m, np.stack([nx, ny, nz]).astype(np.float32), None


def _cone(X, Y, r: float, h: float, phi: float):
    """Upright cone, base radius r at b = -h, apex at b = +h; half-angle beta with
    tan beta = r / 2h; normal (cos beta sin psi, sin beta, cos beta cos psi)."""
    c, s = math.cos(phi), math.sin(phi)
    a = X * c + Y * s
    b = Y * c - X * s
    rad = r * (h - b) / (2 * h)
    m = (np.abs(b) < h) & (np.abs(a) < rad)
    beta = math.atan2(r, 2 * h)
    spsi = a[m] / (rad[m] + 1e-9)
    cpsi = np.sqrt(np.clip(1.0 - spsi * spsi, 0.0, 1.0))
    cb, sb = math.cos(beta), math.sin(beta)
    nx, ny = _rot2(cb * spsi, np.full_like(spsi, sb), phi)
    return m, np.stack([nx, ny, cb * cpsi]), None


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _face_normals(verts: np.ndarray, faces) -> np.ndarray:
    """Outward unit normals (F x 3) of the faces of a convex polyhedron."""
    centre = verts.mean(0)
    out = []
    for f in faces:
        p = verts[list(f)]
        n = np.cross(p[1] - p[0], p[2] - p[0])
        if np.dot(n, p.mean(0) - centre) < 0:
            n = -n
        out.append(n / np.linalg.norm(n))
    return np.array(out)


_BOX_FACES = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))
_BOX_VERTS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
_BOX_NORMALS = _face_normals(_BOX_VERTS, _BOX_FACES)
_PYR_FACES = ((0, 1, 2, 3), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4))
_PYR_VERTS = np.array([[-1, -1, -1], [1, -1, -1], [1, -1, 1], [-1, -1, 1], [0, 1, 0]], float)
_PYR_NORMALS = _face_normals(_PYR_VERTS, _PYR_FACES)
_BOX_FRONT = 5  # the +z face of the box (the slab's screen)


def _convex_polygon(X, Y, pts: list[tuple[float, float]]) -> np.ndarray:
    """Mask of the pixels inside the convex polygon ``pts`` (any orientation): the
    intersection of the half-planes left (or right) of every edge."""
    k = len(pts)
    area = sum(pts[i][0] * pts[(i + 1) % k][1] - pts[(i + 1) % k][0] * pts[i][1] for i in range(k))
    sgn = 1.0 if area >= 0 else -1.0
    m = None
    for i in range(k):
        px, py = pts[i]
        qx, qy = pts[(i + 1) % k]
        inside = (sgn * (qx - px)) * (Y - py) >= (sgn * (qy - py)) * (X - px)
        m = inside if m is None else m & inside
    return m


def _polyhedron(X, Y, verts: np.ndarray, faces, normals: np.ndarray, scale: np.ndarray,
                rot: np.ndarray, screen: int | None = None):
    """Convex polyhedron (unit ``verts`` scaled by ``scale``, then rotated) under
    orthographic projection. Faces whose rotated outward normal has z > 0 are visible
    and never overlap; each has a constant normal ``rot @ (n / scale)`` (normalised:
    normals transform by the inverse transpose). ``screen``: a face whose 82% inset
    gets a dark albedo."""
    vr = (verts * scale) @ rot.T
    nr = (normals / scale) @ rot.T
    nr /= np.linalg.norm(nr, axis=1, keepdims=True)
    shape = (Y.shape[0], X.shape[1])
    mask = np.zeros(shape, dtype=bool)
    nmap = np.zeros((3, *shape), dtype=np.float32)
    albedo = None
    for k, face in enumerate(faces):
        n = nr[k]
        if n[2] <= 1e-3:
            continue
        p = vr[list(face), :2]
        fm = _convex_polygon(X, Y, [(float(a), float(b)) for a, b in p])
        mask |= fm
        nmap[:, fm] = n[:, None]
        if screen == k:
            inset = p.mean(0) + 0.82 * (p - p.mean(0))
            albedo = np.where(_convex_polygon(X, Y, [(float(a), float(b)) for a, b in inset]),
                              np.float32(0.12), np.float32(1.0))
    alb = None if albedo is None else albedo[mask]
    return mask, nmap[:, mask], alb


# ----------------------------------------------------------------------------
# the canvas


class _Canvas:
    """Albedo and normal buffers of one scene plus a *stroke id* per pixel.

    Objects are painted far to near (painter's algorithm); every primitive painted
    is a stroke with its own (class, part, instance, salient) record, and the label
    maps are looked up from the stroke ids once at the end.
    """

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        half = min(h, w) / 2.0
        self.half = half
        self.xs = ((np.arange(w, dtype=np.float32) + 0.5 - w / 2) / half)[None, :]
        self.ys = ((h / 2 - np.arange(h, dtype=np.float32) - 0.5) / half)[:, None]
        self.ids = np.zeros((h, w), np.int16)
        self.nrm = np.zeros((3, h, w), np.float32)
        self.alb = np.zeros((3, h, w), np.float32)
        self.strokes: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]  # background
        self.tex = np.ones((h, w), np.float32)  # albedo modulation of textured objects

    def crop(self, x0: float, x1: float, y0: float, y1: float):
        """Pixel window covering the scene box [x0, x1] x [y0, y1] (None if off-image)."""
        c0 = max(0, int(math.floor(x0 * self.half + self.w / 2)))
        c1 = min(self.w, int(math.ceil(x1 * self.half + self.w / 2)) + 1)
        r0 = max(0, int(math.floor(self.h / 2 - y1 * self.half)))
        r1 = min(self.h, int(math.ceil(self.h / 2 - y0 * self.half)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def paint(self, win, mask, normals, colour, albedo, texture, cls, part, inst, salient):
        """Paint one stroke: ``mask`` over the window ``win``, its normals (3 x K),
        base ``colour`` times an optional albedo factor (K) times the scene texture
        at strength ``texture`` (0 = plain)."""
        r0, r1, c0, c1 = win
        self.ids[r0:r1, c0:c1][mask] = len(self.strokes)
        self.strokes.append((cls, part, inst, salient))
        self.nrm[:, r0:r1, c0:c1][:, mask] = normals
        a = None
        if texture > 0:
            a = 1.0 + (self.tex[r0:r1, c0:c1][mask] - 1.0) * np.float32(texture)
        if albedo is not None:
            a = albedo if a is None else a * albedo
        alb = self.alb[:, r0:r1, c0:c1]
        alb[:, mask] = colour[:, None] if a is None else colour[:, None] * a[None, :]

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(semseg, human_parts, instances, sal) looked up from the stroke ids."""
        table = np.array(self.strokes, dtype=np.int16)
        cls, part, inst, sal = (table[:, i] for i in range(4))
        ids = self.ids
        return (cls.astype(np.uint8)[ids], part.astype(np.uint8)[ids], inst[ids],
                sal.astype(np.uint8)[ids])


def _draw(canvas: _Canvas, kind: str, args: tuple, bbox, style) -> None:
    win = canvas.crop(*bbox)
    if win is None:
        return
    r0, r1, c0, c1 = win
    X = canvas.xs[:, c0:c1]  # 1 x w
    Y = canvas.ys[r0:r1, :]  # h x 1
    fn = _SOLIDS[kind]
    if kind == "capsule":
        m, n, alb = fn(X, Y, *args)
    else:
        cx, cy = args[0]
        m, n, alb = fn(X - cx, Y - cy, *args[1:])
    canvas.paint(win, m, n, style[0], alb, *style[1:])


def _draw_solid(canvas, kind, centre, radius, rng, style) -> None:
    """Draw solid ``kind`` centred at ``centre`` with overall radius ``radius``."""
    cx, cy = centre
    R = radius
    box = (cx - R, cx + R, cy - R, cy + R)  # encloses sphere, ellipsoid, torus
    big = (cx - 1.35 * R, cx + 1.35 * R, cy - 1.35 * R, cy + 1.35 * R)  # the others
    if kind == "sphere":
        _draw(canvas, "ellipsoid", ((cx, cy), R, R, R, 0.0), box, style)
    elif kind == "ellipsoid":
        ry = R * rng.uniform(0.36, 0.55)
        _draw(canvas, "ellipsoid", ((cx, cy), R, ry, ry, rng.uniform(0, math.pi)), box, style)
    elif kind == "cylinder":
        r = R * rng.uniform(0.3, 0.45)
        alpha = rng.uniform(0.2, 0.7)
        _draw(canvas, "cylinder", ((cx, cy), r, R * 0.85, alpha, rng.uniform(-0.35, 0.35)),
              big, style)
    elif kind == "cone":
        _draw(canvas, "cone", ((cx, cy), R * rng.uniform(0.45, 0.7), R, rng.uniform(-0.25, 0.25)),
              big, style)
    elif kind == "torus":
        _draw(canvas, "torus", ((cx, cy), R * 0.75, R * rng.uniform(0.15, 0.25)), box, style)
    elif kind == "capsule":
        half = R * rng.uniform(0.55, 0.75)
        r = R * rng.uniform(0.25, 0.38)
        ang = rng.uniform(-0.5, 0.5)
        dx, dy = half * math.cos(ang), half * math.sin(ang)
        _draw(canvas, "capsule", ((cx - dx, cy - dy), (cx + dx, cy + dy), r), big, style)
    elif kind in ("box", "slab", "pyramid"):
        if kind == "box":
            scale = rng.uniform(0.42, 0.62, size=3)
            rot = _rotation(rng.choice([-1, 1]) * rng.uniform(0.3, 1.2), rng.uniform(0.25, 0.7),
                            rng.uniform(-0.25, 0.25))
            shape = (_BOX_VERTS, _BOX_FACES, _BOX_NORMALS, scale, rot, None)
        elif kind == "slab":
            scale = np.array([0.85, 0.85 * rng.uniform(0.55, 0.75), 0.06])
            rot = _rotation(rng.uniform(-0.6, 0.6), rng.uniform(-0.35, 0.35),
                            rng.uniform(-0.2, 0.2))
            shape = (_BOX_VERTS, _BOX_FACES, _BOX_NORMALS, scale, rot, _BOX_FRONT)
        else:
            scale = np.array([rng.uniform(0.55, 0.75), rng.uniform(0.55, 0.8), 0.0])
            scale[2] = scale[0]
            rot = _rotation(rng.uniform(0, math.pi / 2), rng.uniform(-0.45, 0.45),
                            rng.uniform(-0.3, 0.3))
            shape = (_PYR_VERTS, _PYR_FACES, _PYR_NORMALS, scale, rot, None)
        verts, faces, normals, scale, rot, screen = shape
        _draw(canvas, "polyhedron", ((cx, cy), verts, faces, normals, scale * R, rot, screen),
              big, style)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"unknown solid {kind!r}")


_SOLIDS: dict[str, Callable] = {
    "ellipsoid": _ellipsoid, "capsule": _capsule, "torus": _torus,
    "cylinder": _cylinder, "cone": _cone, "polyhedron": _polyhedron,
}


def _draw_person(canvas: _Canvas, hip: tuple[float, float], height: float, rng, colours,
                 texture: float, inst: int, salient: int) -> None:
    """A stick-and-capsule figure: capsules for torso and limbs, a sphere for the head.

    Parts (label): head 1, torso 2, upper arm 3, lower arm 4, upper leg 5, lower leg 6.
    Painter order: the back arm, legs, torso, head, the front arm."""
    u = height
    skin, shirt, trousers, sleeve = colours
    tilt = rng.uniform(-0.35, 0.35)
    up = (math.sin(-tilt), math.cos(tilt))  # torso direction
    side = (up[1], -up[0])
    hx, hy = hip

    def at(p, d, length):
        return (p[0] + d[0] * length, p[1] + d[1] * length)

    def turn(d, ang):
        c, s = math.cos(ang), math.sin(ang)
        return (d[0] * c - d[1] * s, d[0] * s + d[1] * c)

    neck = at((hx, hy), up, 0.30 * u)
    down = (-up[0], -up[1])
    items = []  # (order key, kind, args, part, colour)

    def limb(root, outward, a_up, bend, l1, l2, r1, r2, parts, cols, key):
        d1 = turn(down, outward * a_up)
        j = at(root, d1, l1)
        d2 = turn(d1, outward * bend)
        end = at(j, d2, l2)
        items.append((key, (root, j, r1), parts[0], cols[0]))
        items.append((key + 0.1, (j, end, r2), parts[1], cols[1]))

    front = rng.integers(2)
    for k, sgn in enumerate((-1.0, 1.0)):
        hipj = at((hx, hy), side, sgn * 0.045 * u)
        limb(hipj, sgn, rng.uniform(-0.1, 0.6), rng.uniform(-0.9, 0.2), 0.22 * u, 0.22 * u,
             0.045 * u, 0.036 * u, (5, 6), (trousers, trousers), 1.0)
        shoulder = at(at(neck, down, 0.035 * u), side, sgn * 0.085 * u)
        key = 4.0 if k == front else 0.0
        limb(shoulder, sgn, rng.uniform(-0.3, 1.9), rng.uniform(0.0, 2.0), 0.15 * u, 0.14 * u,
             0.033 * u, 0.028 * u, (3, 4), (shirt, sleeve), key)
    items.append((2.0, (at((hx, hy), up, 0.03 * u), at(neck, down, 0.02 * u), 0.085 * u), 2, shirt))
    items.sort(key=lambda t: t[0])
    for _, (p0, p1, r), part, col in items:
        bbox = (min(p0[0], p1[0]) - r, max(p0[0], p1[0]) + r,
                min(p0[1], p1[1]) - r, max(p0[1], p1[1]) + r)
        _draw(canvas, "capsule", (p0, p1, r), bbox, (col, texture, PERSON, part, inst, salient))
        if part == 2:  # the head right after the torso, before the front arm
            head = at(neck, up, 0.075 * u)
            hr = 0.068 * u
            _draw(canvas, "ellipsoid", (head, hr, hr * 1.12, hr, tilt),
                  (head[0] - hr * 1.2, head[0] + hr * 1.2, head[1] - hr * 1.2, head[1] + hr * 1.2),
                  (skin, texture, PERSON, 1, inst, salient))


# ----------------------------------------------------------------------------
# the scene


def _background(canvas: _Canvas, rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    """Paint wall (or sky) and floor and the decals; return the valid-normal mask.

    The horizon is a horizontal line, so the floor is the block of rows below it."""
    xs, ys = canvas.xs, canvas.ys
    h, w = canvas.h, canvas.w
    alb, nrm = canvas.alb, canvas.nrm
    # the camera looks down at the scene (pitch) and turns (yaw): world normals
    # (y up, z to the camera) -> camera normals; the floor is (0, cos p, sin p) before the yaw
    cam = _rotation(rng.uniform(-0.6, 0.6), rng.uniform(0.35, 1.0), 0.0)
    floor_n = (cam @ np.array([0.0, 1.0, 0.0])).astype(np.float32)
    wall_n = (cam @ np.array([0.0, 0.0, 1.0])).astype(np.float32)
    horizon = rng.uniform(-0.7, 0.35) if rng.random() < cfg.p_floor else -10.0
    rh = int(np.searchsorted(-ys[:, 0], -horizon))  # first row below the horizon
    sky = rng.random() < cfg.p_sky
    valid = np.ones((h, w), dtype=bool)
    if sky:
        top, bottom = _muted(rng, 0.25), _muted(rng, 0.25)
        t = (ys - ys.min()) / max(float(ys.max() - ys.min()), 1e-6)  # h x 1
        alb[:] = (bottom[:, None, None] + (top - bottom)[:, None, None] * t[None])
        valid[:rh] = False
    else:
        c1, c2 = _muted(rng), _muted(rng)
        alb[:] = c1[:, None, None] + (c2 - c1)[:, None, None] * _pattern(rng, xs, ys)[None]
        nrm[:] = wall_n[:, None, None]
    if rh < h:
        c1, c2 = _muted(rng), _muted(rng)
        p = _pattern(rng, xs, ys[rh:] * 2.0)
        alb[:, rh:] = c1[:, None, None] + (c2 - c1)[:, None, None] * p[None]
        nrm[:, rh:] = floor_n[:, None, None]
    # flat decals: colour and shape without relief
    for _ in range(int(rng.integers(cfg.max_decals + 1))):
        col = _vivid(rng) if rng.random() < cfg.p_vivid_decal else _muted(rng, 0.35)
        cx, cy = rng.uniform(-1.2, 1.2), rng.uniform(-1.0, 1.0)
        r = rng.uniform(0.05, 0.3)
        disc = rng.random() < 0.5
        rx, ry = (r, r) if disc else (1.5 * r, 0.4 * r)
        win = canvas.crop(cx - rx, cx + rx, cy - ry, cy + ry)
        if win is None:
            continue
        r0, r1, c0, c1 = win
        X, Y = xs[:, c0:c1] - cx, ys[r0:r1] - cy
        m = (X * X + Y * Y < r * r) if disc else ((np.abs(X) < rx) & (np.abs(Y) < ry))
        alb[:, r0:r1, c0:c1][:, m] = col[:, None]
    return valid


def render_scene(seed: int, index: int, size: int | tuple[int, int] = 128,
                 persons: int | None = None, config: SceneConfig | None = None) -> SceneArrays:
    """Render sample ``index`` of ``seed`` at ``size`` (int or (H, W)).

    ``persons`` forces the number of person figures (else drawn from ``config``).
    """
    cfg = config or SceneConfig()
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    cv = _Canvas(h, w)
    bg_valid = _background(cv, rng, cfg)
    cv.tex = _smooth_noise(rng, h, w, 24) + 0.5  # albedo modulation in [0.5, 1.5]

    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    n_person = (int(rng.choice(3, p=cfg.person_probs)) if persons is None else int(persons))
    kinds = list(SHAPE_CLASSES)
    lo, hi = np.log(cfg.size_range[0]), np.log(cfg.size_range[1])
    plo, phi = np.log(cfg.person_height_range[0]), np.log(cfg.person_height_range[1])
    objects = []
    for i in range(n_obj + n_person):
        is_person = i >= n_obj
        size_ = float(np.exp(rng.uniform(plo, phi) if is_person else rng.uniform(lo, hi)))
        depth = -math.log(size_ * (0.5 if is_person else 1.0)) + rng.normal(0.0, 0.6)
        objects.append((depth, i, is_person, size_))
    objects.sort(key=lambda t: -t[0])  # far first

    classes: list[int] = []
    xr = w / min(h, w)
    yr = h / min(h, w)
    for _, _, is_person, size_ in objects:
        salient = int(rng.random() < cfg.p_salient)
        t = rng.uniform(0.4, 1.0) if rng.random() < 0.5 else 0.0  # texture strength
        inst = len(classes) + 1
        if is_person:
            skin = _hsv(rng.uniform(0.02, 0.11), rng.uniform(0.3, 0.55), rng.uniform(0.45, 0.95))
            shirt = _vivid(rng) if salient else _muted(rng)
            trousers = _vivid(rng) if salient else _muted(rng)
            sleeve = skin if rng.random() < 0.5 else shirt
            hip = (rng.uniform(-0.9, 0.9) * xr, rng.uniform(-0.8, 0.3) * yr)
            _draw_person(cv, hip, size_, rng, (skin, shirt, trousers, sleeve), t, inst, salient)
            classes.append(PERSON)
        else:
            kind = kinds[int(rng.integers(len(kinds)))]
            colour = _vivid(rng) if salient else _muted(rng)
            centre = (rng.uniform(-1.0, 1.0) * xr, rng.uniform(-1.0, 1.0) * yr)
            _draw_solid(cv, kind, centre, size_, rng, (colour, t, SHAPE_CLASSES[kind], 0, inst,
                                                       salient))
            classes.append(SHAPE_CLASSES[kind])

    # lighting: Lambert + ambient with a colour cast
    light = np.array([rng.uniform(-1, 1), rng.uniform(-0.3, 1), rng.uniform(0.25, 1)], np.float32)
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.15, 0.4)
    diffuse = rng.uniform(0.7, 1.05)
    cast = (1.0 + rng.uniform(-0.08, 0.08, size=3)).astype(np.float32)
    semseg, parts, instances, sal = cv.labels()
    valid = bg_valid | (cv.ids > 0)
    nl = np.maximum(np.tensordot(light, cv.nrm, axes=1), 0.0)
    shade = np.where(valid, np.float32(ambient) + np.float32(diffuse) * nl, np.float32(0.95))
    img = cv.alb * shade[None] * cast[:, None, None]
    # sensor noise: uniform with standard deviation sigma (cheaper than Gaussian)
    sigma = np.float32(rng.uniform(*cfg.noise_range) * math.sqrt(12.0))
    noise = rng.random((3, h, w), dtype=np.float32)
    noise -= 0.5
    noise *= sigma
    img += noise
    np.clip(img, 0.0, 1.0, out=img)

    normals = cv.nrm
    normals[1] *= -1.0  # y up (rendering) -> y down (PASCAL convention)
    np.multiply(normals, valid[None], out=normals)
    if not (semseg == PERSON).any():
        parts[:] = IGNORE
    return SceneArrays(img, semseg, parts, sal, normals, instances, classes)


class SyntheticScenes(Dataset):
    """A torch Dataset of ``n`` procedurally rendered scenes (see the module docstring).

    Args:
        n: number of samples (indices 0..n-1).
        size: output resolution, int (square) or (H, W).
        seed: scene seed; (seed, index) fixes the sample.
        tasks: tasks whose labels are returned (default: all four).
        transform: optional callable on the sample dict (``vmtlib.data.transforms``).
        config: the scene distribution (``SceneConfig``).

    ``ds[i]`` is a dict with ``image`` (float32 3xHxW in [0, 1]), ``semseg``,
    ``human_parts``, ``sal`` (int64 HxW), ``normals`` (float32 3xHxW) and ``meta``.
    """

    def __init__(self, n: int, size: int | tuple[int, int] = 128, seed: int = 0,
                 tasks: Iterable[str] | str | None = None,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 config: SceneConfig | None = None):
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = int(n)
        self.size = size
        self.seed = int(seed)
        self.tasks = ALL_TASKS if tasks is None else parse_tasks(tasks)
        self.transform = transform
        self.config = config or SceneConfig()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        index %= self.n
        sc = render_scene(self.seed, index, self.size, config=self.config)
        sample: dict[str, Any] = {"image": torch.from_numpy(sc.image)}
        if "semseg" in self.tasks:
            sample["semseg"] = torch.from_numpy(sc.semseg.astype(np.int64))
        if "human_parts" in self.tasks:
            sample["human_parts"] = torch.from_numpy(sc.human_parts.astype(np.int64))
        if "sal" in self.tasks:
            sample["sal"] = torch.from_numpy(sc.sal.astype(np.int64))
        if "normals" in self.tasks:
            sample["normals"] = torch.from_numpy(sc.normals)
        sample["meta"] = {"id": f"synthetic-{self.seed}-{index}", "seed": self.seed,
                          "index": index}
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self) -> str:
        return (f"SyntheticScenes(n={self.n}, size={self.size}, seed={self.seed}, "
                f"tasks={self.tasks})")
