"""Joint transforms of a multi-task sample dict, following the papers' protocol.

The MTI-Net / MTLoRA line of work (``pascal_context_format.md``) trains with a
random horizontal flip, a random scale in [0.75, 1.25] with a rotation in
[-20, 20] degrees, a resize to 512x512 and ImageNet normalisation; it
evaluates after the resize and the normalisation only. Each transform here is
a small callable ``sample -> sample`` acting on the keys it knows and passing
every other key (``meta``) through:

=============  =================  ===============================================
key            layout             how it is resampled
=============  =================  ===============================================
image          float32 3xHxW      bilinear; padding 0
semseg         int64 HxW          nearest; padding 255 (ignore)
human_parts    int64 HxW          nearest; padding 255 (ignore)
sal            int64 HxW          nearest; padding 255 (ignore; losses/metrics skip it)
normals        float32 3xHxW      see below; padding all-zero (invalid)
=============  =================  ===============================================

Geometry of the normals (PASCAL ``normals_distill`` convention: x right,
y down along the rows, z towards the camera):

* a horizontal flip mirrors the map and negates n_x;
* a rotation of the image by ``theta`` counter-clockwise on the screen rotates
  every normal by the same angle about the viewing axis. In y-down coordinates
  that is ``(nx, ny) -> (nx cos t + ny sin t, -nx sin t + ny cos t)``
  (the same as the ``in_plane + rot`` formula of the ASTMT/MTI-Net code);
  n_z is unchanged. A zoom does not change normals;
* resizing interpolates the vector field bilinearly from valid pixels only and
  renormalises it to unit length; validity itself is resampled with nearest
  neighbour, so invalid pixels stay all-zero and nothing invalid becomes valid.

Note that after :class:`RandomScaleRotate` the ``sal`` map contains 255 in the
padded area, so it is no longer strictly {0, 1}: the losses and metrics of
vmtlib ignore 255 for every task.

Randomness comes from ``torch``'s global generator (which DataLoader seeds per
worker) or from an explicit ``torch.Generator``; there is no other state, so the
transforms work in DataLoader workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

IGNORE = 255
LABEL_KEYS: tuple[str, ...] = ("semseg", "human_parts", "sal")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Sample = dict[str, Any]


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def _valid_normals(normals: torch.Tensor) -> torch.Tensor:
    """HxW bool: pixels whose normal is not all-zero."""
    return normals.abs().sum(0) > 0


def _size_of(sample: Sample) -> tuple[int, int]:
    for key in ("image", "normals", *LABEL_KEYS):
        if key in sample:
            return tuple(sample[key].shape[-2:])  # type: ignore[return-value]
    raise KeyError("the sample has no image or label to transform")


class Compose:
    """Apply transforms in order: ``Compose([t1, t2])(s) == t2(t1(s))``."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``; normals get n_x -> -n_x."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p = p
        self.generator = generator

    def __call__(self, sample: Sample) -> Sample:
        if float(torch.rand((), generator=self.generator)) >= self.p:
            return sample
        return hflip(sample)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def hflip(sample: Sample) -> Sample:
    """The deterministic horizontal flip of a sample (normals' x negated)."""
    out = dict(sample)
    for key in ("image", *LABEL_KEYS):
        if key in out:
            out[key] = out[key].flip(-1)
    if "normals" in out:
        n = out["normals"].flip(-1).clone()
        n[0] = -n[0]
        out["normals"] = n
    return out


def _affine_grid(h: int, w: int, scale: float, degrees: float) -> torch.Tensor:
    """Sampling grid (1 x H x W x 2) of a zoom by ``scale`` and a counter-clockwise
    (on screen) rotation by ``degrees`` about the image centre, output size = input size.

    Output pixel offset d_out (pixels, y down) comes from the input offset
    d_in = (1 / scale) * R(-theta) d_out, with R(theta) = [[c, s], [-s, c]] the
    screen-CCW rotation in y-down coordinates. In the normalised coordinates of
    ``affine_grid`` (x / (W/2), y / (H/2)) that is D^-1 (1/scale) R(-theta) D.
    """
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    # R(-theta) in y-down pixel coordinates: [[c, -s], [s, c]]
    a = torch.tensor([[c, -s * h / w], [s * w / h, c]], dtype=torch.float64) / scale
    theta = torch.zeros(1, 2, 3, dtype=torch.float64)
    theta[0, :, :2] = a
    return F.affine_grid(theta.float(), [1, 1, h, w], align_corners=False)


def rotate_normals_in_plane(normals: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate the (x, y) components of 3xHxW normals by ``degrees`` counter-clockwise on
    screen (y-down convention): (nx, ny) -> (nx c + ny s, -nx s + ny c)."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    out = normals.clone()
    out[0] = normals[0] * c + normals[1] * s
    out[1] = -normals[0] * s + normals[1] * c
    return out


def scale_rotate(sample: Sample, scale: float, degrees: float) -> Sample:
    """Zoom by ``scale`` and rotate by ``degrees`` (counter-clockwise) about the centre,
    keeping the size; labels nearest with 255 padding, normals nearest, rotated
    in-plane, padded all-zero; the image bilinear, padded with 0."""
    h, w = _size_of(sample)
    grid = _affine_grid(h, w, scale, degrees)
    out = dict(sample)
    if "image" in out:
        img = out["image"]
        out["image"] = F.grid_sample(img[None].float(), grid, mode="bilinear",
                                     padding_mode="zeros", align_corners=False)[0].to(img.dtype)
    for key in LABEL_KEYS:
        if key in out:
            lab = out[key]
            # sample (label - 255) with zero padding, then add 255 back: padding -> 255
            shifted = (lab.double() - IGNORE)[None, None]
            res = F.grid_sample(shifted, grid.double(), mode="nearest", padding_mode="zeros",
                                align_corners=False)[0, 0]
            out[key] = (res + IGNORE).round().to(lab.dtype)
    if "normals" in out:
        n = F.grid_sample(out["normals"][None].float(), grid, mode="nearest",
                          padding_mode="zeros", align_corners=False)[0]
        out["normals"] = rotate_normals_in_plane(n, degrees)
    return out


class RandomScaleRotate:
    """Random zoom in ``scale`` and rotation in ``[-degrees, degrees]`` (the protocol:
    0.75-1.25 and 20 degrees), size kept; see :func:`scale_rotate`."""

    def __init__(self, scale: tuple[float, float] = (0.75, 1.25), degrees: float = 20.0,
                 generator: torch.Generator | None = None):
        self.scale = (float(scale[0]), float(scale[1]))
        self.degrees = float(degrees)
        self.generator = generator

    def __call__(self, sample: Sample) -> Sample:
        s = _uniform(*self.scale, self.generator)
        d = _uniform(-self.degrees, self.degrees, self.generator)
        return scale_rotate(sample, s, d)

    def __repr__(self) -> str:
        return f"RandomScaleRotate(scale={self.scale}, degrees={self.degrees})"


def resize_normals(normals: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize 3xHxW normals: bilinear over valid pixels, renormalised to unit length;
    validity by nearest neighbour (invalid stays all-zero). Where the bilinear mean
    cancels out (opposite neighbours) the nearest valid normal is used."""
    n = normals[None].float()
    valid = _valid_normals(normals)[None, None].float()
    lin = F.interpolate(n, size=size, mode="bilinear", align_corners=False)[0]
    near = F.interpolate(n, size=size, mode="nearest-exact")[0]
    keep = F.interpolate(valid, size=size, mode="nearest-exact")[0, 0] > 0
    norm = lin.norm(dim=0, keepdim=True)
    unit = torch.where(norm > 1e-3, lin / norm.clamp_min(1e-12), near)
    unit = unit / unit.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return torch.where(keep[None], unit, torch.zeros_like(unit))


def resize(sample: Sample, size: int | tuple[int, int]) -> Sample:
    """Resize every map to ``size`` (int -> size x size): image bilinear, labels
    nearest, normals as in :func:`resize_normals`."""
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    out = dict(sample)
    if "image" in out:
        img = out["image"]
        out["image"] = F.interpolate(img[None].float(), size=hw, mode="bilinear",
                                     align_corners=False)[0].to(img.dtype)
    for key in LABEL_KEYS:
        if key in out:
            lab = out[key]
            res = F.interpolate(lab[None, None].double(), size=hw, mode="nearest-exact")[0, 0]
            out[key] = res.to(lab.dtype)
    if "normals" in out:
        out["normals"] = resize_normals(out["normals"], hw)
    return out


class Resize:
    """Resize to ``size`` (512 -> 512x512, the protocol); see :func:`resize`."""

    def __init__(self, size: int | tuple[int, int] = 512):
        self.size = size

    def __call__(self, sample: Sample) -> Sample:
        return resize(sample, self.size)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class Normalize:
    """``image = (image - mean) / std`` per channel (default ImageNet statistics)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        out["image"] = (sample["image"] - self.mean) / self.std
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def train_transform(size: int | tuple[int, int] = 512, normalize: bool = True,
                    generator: torch.Generator | None = None) -> Compose:
    """The training protocol: flip, scale 0.75-1.25 + rotation +-20 deg, resize, normalise."""
    ts: list[Callable[[Sample], Sample]] = [
        RandomHorizontalFlip(0.5, generator=generator),
        RandomScaleRotate((0.75, 1.25), 20.0, generator=generator),
        Resize(size),
    ]
    if normalize:
        ts.append(Normalize())
    return Compose(ts)


def val_transform(size: int | tuple[int, int] = 512, normalize: bool = True) -> Compose:
    """The evaluation protocol: resize to ``size`` and normalise."""
    ts: list[Callable[[Sample], Sample]] = [Resize(size)]
    if normalize:
        ts.append(Normalize())
    return Compose(ts)
