"""Painting one scene: the :class:`Canvas` (albedo, normals and a stroke id per pixel),
:func:`draw` (one solid from ``solids.py`` painted on its bounding-box crop), and the
two kinds of object built from solids: :func:`draw_solid` (one of the nine solid
classes at a random shape) and :func:`draw_person` (a figure of capsules and a head,
with its part labels). The object functions draw their shape parameters from
``rng`` in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np

from vmtlib.data.synthetic.labels import PERSON
from vmtlib.data.synthetic.solids import (
    BOX_FACES,
    BOX_FRONT,
    BOX_NORMALS,
    BOX_VERTS,
    PYR_FACES,
    PYR_NORMALS,
    PYR_VERTS,
    SOLIDS,
    rotation,
)


class Canvas:
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


def draw(canvas: Canvas, kind: str, args: tuple, bbox, style) -> None:
    win = canvas.crop(*bbox)
    if win is None:
        return
    r0, r1, c0, c1 = win
    X = canvas.xs[:, c0:c1]  # 1 x w
    Y = canvas.ys[r0:r1, :]  # h x 1
    fn = SOLIDS[kind]
    if kind == "capsule":
        m, n, alb = fn(X, Y, *args)
    else:
        cx, cy = args[0]
        m, n, alb = fn(X - cx, Y - cy, *args[1:])
    canvas.paint(win, m, n, style[0], alb, *style[1:])


def draw_solid(canvas, kind, centre, radius, rng, style) -> None:
    """Draw solid ``kind`` centred at ``centre`` with overall radius ``radius``."""
    cx, cy = centre
    R = radius
    box = (cx - R, cx + R, cy - R, cy + R)  # encloses sphere, ellipsoid, torus
    big = (cx - 1.35 * R, cx + 1.35 * R, cy - 1.35 * R, cy + 1.35 * R)  # the others
    if kind == "sphere":
        draw(canvas, "ellipsoid", ((cx, cy), R, R, R, 0.0), box, style)
    elif kind == "ellipsoid":
        ry = R * rng.uniform(0.36, 0.55)
        draw(canvas, "ellipsoid", ((cx, cy), R, ry, ry, rng.uniform(0, math.pi)), box, style)
    elif kind == "cylinder":
        r = R * rng.uniform(0.3, 0.45)
        alpha = rng.uniform(0.2, 0.7)
        draw(canvas, "cylinder", ((cx, cy), r, R * 0.85, alpha, rng.uniform(-0.35, 0.35)),
              big, style)
    elif kind == "cone":
        draw(canvas, "cone", ((cx, cy), R * rng.uniform(0.45, 0.7), R, rng.uniform(-0.25, 0.25)),
              big, style)
    elif kind == "torus":
        draw(canvas, "torus", ((cx, cy), R * 0.75, R * rng.uniform(0.15, 0.25)), box, style)
    elif kind == "capsule":
        half = R * rng.uniform(0.55, 0.75)
        r = R * rng.uniform(0.25, 0.38)
        ang = rng.uniform(-0.5, 0.5)
        dx, dy = half * math.cos(ang), half * math.sin(ang)
        draw(canvas, "capsule", ((cx - dx, cy - dy), (cx + dx, cy + dy), r), big, style)
    elif kind in ("box", "slab", "pyramid"):
        if kind == "box":
            scale = rng.uniform(0.42, 0.62, size=3)
            rot = rotation(rng.choice([-1, 1]) * rng.uniform(0.3, 1.2), rng.uniform(0.25, 0.7),
                            rng.uniform(-0.25, 0.25))
            shape = (BOX_VERTS, BOX_FACES, BOX_NORMALS, scale, rot, None)
        elif kind == "slab":
            scale = np.array([0.85, 0.85 * rng.uniform(0.55, 0.75), 0.06])
            rot = rotation(rng.uniform(-0.6, 0.6), rng.uniform(-0.35, 0.35),
                            rng.uniform(-0.2, 0.2))
            shape = (BOX_VERTS, BOX_FACES, BOX_NORMALS, scale, rot, BOX_FRONT)
        else:
            scale = np.array([rng.uniform(0.55, 0.75), rng.uniform(0.55, 0.8), 0.0])
            scale[2] = scale[0]
            rot = rotation(rng.uniform(0, math.pi / 2), rng.uniform(-0.45, 0.45),
                            rng.uniform(-0.3, 0.3))
            shape = (PYR_VERTS, PYR_FACES, PYR_NORMALS, scale, rot, None)
        verts, faces, normals, scale, rot, screen = shape
        draw(canvas, "polyhedron", ((cx, cy), verts, faces, normals, scale * R, rot, screen),
              big, style)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"unknown solid {kind!r}")


def draw_person(canvas: Canvas, hip: tuple[float, float], height: float, rng, colours,
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
        draw(canvas, "capsule", (p0, p1, r), bbox, (col, texture, PERSON, part, inst, salient))
        if part == 2:  # the head right after the torso, before the front arm
            head = at(neck, up, 0.075 * u)
            hr = 0.068 * u
            draw(canvas, "ellipsoid", (head, hr, hr * 1.12, hr, tilt),
                  (head[0] - hr * 1.2, head[0] + hr * 1.2, head[1] - hr * 1.2, head[1] + hr * 1.2),
                  (skin, texture, PERSON, 1, inst, salient))
