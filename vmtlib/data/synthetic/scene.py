"""Composing one synthetic scene: :func:`render_scene` draws the background (wall or
sky, floor, decals), the objects far to near, the lighting and the sensor noise
from ``np.random.default_rng([seed, index])`` in one fixed order, and returns the
image with its four label maps (:class:`SceneArrays`); :class:`SceneConfig` holds
the knobs of the scene distribution. The module docstring of
``vmtlib.data.synthetic`` describes the scenes and the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vmtlib.data.synthetic.canvas import Canvas, draw_person, draw_solid
from vmtlib.data.synthetic.labels import IGNORE, PERSON, SHAPE_CLASSES
from vmtlib.data.synthetic.solids import rotation
from vmtlib.data.synthetic.textures import hsv, muted, pattern, smooth_noise, vivid


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


def paint_background(canvas: Canvas, rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    """Paint wall (or sky) and floor and the decals; return the valid-normal mask.

    The horizon is a horizontal line, so the floor is the block of rows below it."""
    xs, ys = canvas.xs, canvas.ys
    h, w = canvas.h, canvas.w
    alb, nrm = canvas.alb, canvas.nrm
    # the camera looks down at the scene (pitch) and turns (yaw): world normals
    # (y up, z to the camera) -> camera normals; the floor is (0, cos p, sin p) before the yaw
    cam = rotation(rng.uniform(-0.6, 0.6), rng.uniform(0.35, 1.0), 0.0)
    floor_n = (cam @ np.array([0.0, 1.0, 0.0])).astype(np.float32)
    wall_n = (cam @ np.array([0.0, 0.0, 1.0])).astype(np.float32)
    horizon = rng.uniform(-0.7, 0.35) if rng.random() < cfg.p_floor else -10.0
    rh = int(np.searchsorted(-ys[:, 0], -horizon))  # first row below the horizon
    sky = rng.random() < cfg.p_sky
    valid = np.ones((h, w), dtype=bool)
    if sky:
        top, bottom = muted(rng, 0.25), muted(rng, 0.25)
        t = (ys - ys.min()) / max(float(ys.max() - ys.min()), 1e-6)  # h x 1
        alb[:] = (bottom[:, None, None] + (top - bottom)[:, None, None] * t[None])
        valid[:rh] = False
    else:
        c1, c2 = muted(rng), muted(rng)
        alb[:] = c1[:, None, None] + (c2 - c1)[:, None, None] * pattern(rng, xs, ys)[None]
        nrm[:] = wall_n[:, None, None]
    if rh < h:
        c1, c2 = muted(rng), muted(rng)
        p = pattern(rng, xs, ys[rh:] * 2.0)
        alb[:, rh:] = c1[:, None, None] + (c2 - c1)[:, None, None] * p[None]
        nrm[:, rh:] = floor_n[:, None, None]
    # flat decals: colour and shape without relief
    for _ in range(int(rng.integers(cfg.max_decals + 1))):
        col = vivid(rng) if rng.random() < cfg.p_vivid_decal else muted(rng, 0.35)
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
    cv = Canvas(h, w)
    bg_valid = paint_background(cv, rng, cfg)
    cv.tex = smooth_noise(rng, h, w, 24) + 0.5  # albedo modulation in [0.5, 1.5]

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
            skin = hsv(rng.uniform(0.02, 0.11), rng.uniform(0.3, 0.55), rng.uniform(0.45, 0.95))
            shirt = vivid(rng) if salient else muted(rng)
            trousers = vivid(rng) if salient else muted(rng)
            sleeve = skin if rng.random() < 0.5 else shirt
            hip = (rng.uniform(-0.9, 0.9) * xr, rng.uniform(-0.8, 0.3) * yr)
            draw_person(cv, hip, size_, rng, (skin, shirt, trousers, sleeve), t, inst, salient)
            classes.append(PERSON)
        else:
            kind = kinds[int(rng.integers(len(kinds)))]
            colour = vivid(rng) if salient else muted(rng)
            centre = (rng.uniform(-1.0, 1.0) * xr, rng.uniform(-1.0, 1.0) * yr)
            draw_solid(cv, kind, centre, size_, rng, (colour, t, SHAPE_CLASSES[kind], 0, inst,
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
