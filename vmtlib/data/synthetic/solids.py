"""The solids of the synthetic scenes, in closed form: each function maps a crop's
scene coordinates ``X`` (1 x w) and ``Y`` (h x 1), relative to the solid's centre,
y up, to ``(mask over the crop, normals 3 x K at the masked pixels, optional albedo
factor K)``. No function draws random numbers; :data:`SOLIDS` names them for
:func:`vmtlib.data.synthetic.canvas.draw`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _rot2(nx: np.ndarray, ny: np.ndarray, phi: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(phi), math.sin(phi)
    return nx * c - ny * s, nx * s + ny * c


def ellipsoid(X, Y, rx: float, ry: float, rz: float, phi: float):
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


def capsule(X, Y, p0: tuple[float, float], p1: tuple[float, float], r: float):
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


def torus(X, Y, big_r: float, r: float):
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


def cylinder(X, Y, r: float, h: float, alpha: float, phi: float):
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


def cone(X, Y, r: float, h: float, phi: float):
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


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
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


BOX_FACES = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))
BOX_VERTS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
BOX_NORMALS = _face_normals(BOX_VERTS, BOX_FACES)
PYR_FACES = ((0, 1, 2, 3), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4))
PYR_VERTS = np.array([[-1, -1, -1], [1, -1, -1], [1, -1, 1], [-1, -1, 1], [0, 1, 0]], float)
PYR_NORMALS = _face_normals(PYR_VERTS, PYR_FACES)
BOX_FRONT = 5  # the +z face of the box (the slab's screen)


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


def polyhedron(X, Y, verts: np.ndarray, faces, normals: np.ndarray, scale: np.ndarray,
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


SOLIDS: dict[str, Callable] = {
    "ellipsoid": ellipsoid, "capsule": capsule, "torus": torus,
    "cylinder": cylinder, "cone": cone, "polyhedron": polyhedron,
}
