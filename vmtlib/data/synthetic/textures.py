"""Colours and textures of the synthetic scenes: vivid and muted colours (the saliency
rule), value noise and the background patterns (noise, stripes, checker).

Every function draws from the ``rng`` it is given, in a fixed order; the renderer
(``scene.py``) calls them in a fixed order too, so a scene is a function of
``(seed, index)``.
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache

import numpy as np


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def vivid(rng: np.random.Generator) -> np.ndarray:
    return hsv(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))


def muted(rng: np.random.Generator, max_sat: float = 0.3) -> np.ndarray:
    return hsv(rng.random(), rng.uniform(0.0, max_sat), rng.uniform(0.3, 0.9))


@lru_cache(maxsize=64)
def interp_matrix(n_out: int, n_grid: int) -> np.ndarray:
    """(n_out, n_grid) linear-interpolation weights from grid nodes to pixel centres."""
    t = (np.arange(n_out, dtype=np.float64) + 0.5) / n_out * (n_grid - 1)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, n_grid - 2)
    f = t - i0
    m = np.zeros((n_out, n_grid), dtype=np.float32)
    m[np.arange(n_out), i0] = 1.0 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random grid with ``cells`` nodes along the shorter side,
    upsampled bilinearly (two small matrix products)."""
    s = min(h, w)
    gy = max(2, round(cells * h / s))
    gx = max(2, round(cells * w / s))
    grid = rng.random((gy, gx), dtype=np.float32)
    return interp_matrix(h, gy) @ grid @ interp_matrix(w, gx).T


def pattern(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A background texture in [0, 1] over the whole image: noise, stripes or checker."""
    kind = rng.integers(3)
    if kind == 0:
        return smooth_noise(rng, ys.shape[0], xs.shape[1], int(rng.integers(3, 14)))
    ang = rng.uniform(0, math.pi)
    freq = rng.uniform(1.5, 9.0)
    c, s = math.cos(ang), math.sin(ang)
    u = (xs * c + ys * s) * freq + rng.uniform(0, 2 * math.pi)
    if kind == 1:
        return 0.5 + 0.5 * np.sin(u)
    v = (-xs * s + ys * c) * freq
    return ((np.sin(u) * np.sin(v)) > 0).astype(np.float32)
