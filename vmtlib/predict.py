"""Predictions on the user's own images (``python -m vmtlib predict``).

For an image of any size and any format PIL reads (EXIF orientation applied,
converted to RGB), the model sees it as the validation protocol shows images:
resized to ``img_size x img_size`` (bilinear), scaled to [0, 1] and normalised
with the ImageNet mean and std. Each task's output is resized back to the
image's own ``H x W`` (bilinear, on the logits) and written as a PNG:

=============  ==================================================================
semseg         class ids 0..20 as a palette PNG (mode ``P``) in the VOC colours
               (``vmtlib.plots.voc_palette``): the pixel values are the ids
human_parts    part ids 0..6, palette PNG in the same colours
sal            grey levels: ``round(255 * sigmoid(logit))``, mode ``L``
normals        RGB ``round(255 * (n + 1) / 2)`` of the unit normal, the
               ``normals_distill`` encoding of PASCAL_MT
=============  ==================================================================

Files: ``OUT/<stem>_<task>.png`` for each task and ``OUT/<stem>_panel.png``, the
image and its predictions side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from vmtlib.model import MultiTaskModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_rgb(path: str | Path) -> np.ndarray:
    """Any image PIL reads -> uint8 ``(H, W, 3)`` RGB, EXIF orientation applied."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to 8 bits
                arr = np.asarray(im, dtype=np.float64)
                peak = max(float(arr.max()), 1.0)
                im = Image.fromarray(np.round(arr / peak * 255).astype(np.uint8), "L")
            return np.array(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def prepare(image: np.ndarray, size: int, mean: Sequence[float] = IMAGENET_MEAN,
            std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> the normalised float32 ``(3, size, size)`` model input."""
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / s)[0]


def to_label_images(outputs: dict[str, torch.Tensor], size: tuple[int, int]
                    ) -> dict[str, np.ndarray]:
    """One image's raw outputs ``{task: (C, h, w)}`` -> arrays at ``size = (H, W)``:
    class ids (uint8 ``H x W``) for semseg / human parts, uint8 grey levels for
    saliency, uint8 ``H x W x 3`` for normals (see the module docstring)."""
    out = {}
    for task, y in outputs.items():
        y = F.interpolate(y[None].float(), size=size, mode="bilinear", align_corners=False)[0]
        base = task.partition("#")[0]
        if base in ("semseg", "human_parts"):
            out[task] = y.argmax(0).to(torch.uint8).numpy()
        elif base == "sal":
            out[task] = torch.round(torch.sigmoid(y[0]) * 255).to(torch.uint8).numpy()
        elif base == "normals":
            n = F.normalize(y, dim=0)
            rgb = torch.round((n + 1.0) * 0.5 * 255).clamp(0, 255).to(torch.uint8)
            out[task] = rgb.permute(1, 2, 0).numpy()
        else:
            raise ValueError(f"no picture for task {task!r}")
    return out


def label_png(task: str, array: np.ndarray) -> Image.Image:
    """The PIL image of :func:`to_label_images`' array for ``task``."""
    base = task.partition("#")[0]
    if base in ("semseg", "human_parts"):
        from vmtlib.plots import voc_palette

        im = Image.fromarray(array, "P")
        im.putpalette((voc_palette() * 255).round().astype(np.uint8).reshape(-1).tolist())
        return im
    if base == "sal":
        return Image.fromarray(array, "L")
    return Image.fromarray(array, "RGB")


def save_panel(image: np.ndarray, pictures: dict[str, Image.Image], path: Path) -> None:
    """The image and one picture per task side by side, titled, as a PNG."""
    from matplotlib.figure import Figure

    n = 1 + len(pictures)
    h, w = image.shape[:2]
    width = 2.6 * n
    fig = Figure(figsize=(width, 2.6 * h / w + 0.4))
    axes = fig.subplots(1, n)
    for ax, (title, pic) in zip(axes, [("image", image), *pictures.items()]):
        ax.imshow(np.asarray(pic.convert("RGB")) if isinstance(pic, Image.Image) else pic)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@torch.no_grad()
def predict_images(model: MultiTaskModel, images: Iterable[str | Path], out: str | Path,
                   img_size: int | None = None, batch_size: int = 4, panel: bool = True,
                   progress: bool = True, device: str | torch.device | None = None
                   ) -> list[dict[str, Path]]:
    """Write the predictions of ``model`` for every image into ``out``.

    ``img_size``: the square input side (default ``model.info["img_size"]``, the
    training resolution). Returns, per image, ``{task: png path, "panel": path}``.
    Two images with the same file stem would overwrite each other and are refused.
    """
    paths = [Path(p) for p in images]
    if not paths:
        raise ValueError("no image given")
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise ValueError(f"{stems[p.stem]} and {p} have the same name {p.stem!r}; their "
                             f"predictions would overwrite each other")
        stems[p.stem] = p
    size = int(img_size or model.info["img_size"])
    config = getattr(model, "adapter_config", {}) or {}
    norm = config.get("normalization", {})
    mean, std = norm.get("mean", IMAGENET_MEAN), norm.get("std", IMAGENET_STD)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    written: list[dict[str, Path]] = []
    bar = tqdm(total=len(paths), desc="predict", unit="image", disable=not progress)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        arrays = [read_rgb(p) for p in chunk]
        batch = torch.stack([prepare(a, size, mean, std) for a in arrays]).to(device)
        outputs = model(batch)
        for i, (p, arr) in enumerate(zip(chunk, arrays)):
            labels = to_label_images({t: y[i].cpu() for t, y in outputs.items()},
                                     arr.shape[:2])
            pictures = {t: label_png(t, a) for t, a in labels.items()}
            files: dict[str, Path] = {}
            for task, pic in pictures.items():
                files[task] = out / f"{p.stem}_{task}.png"
                pic.save(files[task])
            if panel:
                files["panel"] = out / f"{p.stem}_panel.png"
                save_panel(arr, pictures, files["panel"])
            written.append(files)
            bar.update(1)
    bar.close()
    return written
