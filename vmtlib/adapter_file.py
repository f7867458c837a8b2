"""Adapter files: a trained model handed to someone else without its backbone.

A run directory's ``checkpoint.pt`` is for resuming (optimizer, RNG states, pickled
by torch). An adapter file is for using the model elsewhere, in the layout of
HuggingFace PEFT (``adapter_model.safetensors`` + ``adapter_config.json``):

``NAME.safetensors``
    The tensors the frozen backbone does not hold: every trainable parameter
    (the method's, and for full fine-tuning the whole backbone) and the decoders'
    whole state (their parameters and BatchNorm statistics), under the names of
    ``MultiTaskModel.state_dict()``, in float32 or (``fp16=True``, for shipping)
    float16. Its safetensors metadata holds a copy of the config under the key
    ``vmtlib_adapter_config``, so a file that travels alone still loads.
``NAME.json`` (beside it, same stem)
    The config, a JSON object (format version 1)::

        {"format": "vmtlib-adapter", "format_version": 1, "vmtlib_version": "0.1.0",
         "method": "vmt_adapter", "method_kwargs": {"rho": 4, ...},
         "backbone": "swin_nano", "tasks": ["semseg", ...], "decoder": "segformer",
         "decoder_dim": 64, "img_size": 128,
         "pretrained": true,              # the backbone weights the run was trained on
         "backbone_weights": "sha256:...", # vmtlib.backbone.weights_fingerprint of them
         "frozen_fingerprint": "sha256:...", # of the frozen tensors, see below
         "seed": 0, "dtype": "float32",
         "normalization": {"mean": [...], "std": [...]},  # of the input images in [0, 1]
         "tensors": 123, "parameters": {"encoder": ..., "decoders": ..., "total": ...},
         "source": {"run": "runs/x", "step": 300, "metrics": {...}}}   # optional

    When the JSON file is there it is the config; a copy in the metadata that
    differs from it is an error naming both.

Loading (:func:`load_adapter`) rebuilds the model with :func:`vmtlib.build_model`
from the config and the backbone weights the caller names (``pretrained``; default
the ones recorded), then checks that the frozen tensors are the ones the adapter
was trained on: ``frozen_fingerprint`` is the SHA-256 (16 hex digits) of the model's
frozen parameters, name by name in sorted order (name, shape and float32 bytes of
each), so it identifies the weights themselves and not the file they came from
(hub weights and a local copy of them agree). A different backbone is refused with
a message naming both fingerprints and both weight sources. A random-initialised
backbone (``pretrained=False``) is rebuilt from the run's ``seed``, as the Trainer
built it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from vmtlib.backbone import weights_fingerprint
from vmtlib.model import MultiTaskModel, build_model, count_parameters
from vmtlib.rng import seed_everything

FORMAT = "vmtlib-adapter"
FORMAT_VERSION = 1
METADATA_KEY = "vmtlib_adapter_config"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_REQUIRED = ("method", "method_kwargs", "backbone", "tasks", "decoder", "img_size",
             "frozen_fingerprint")


class AdapterMismatchError(ValueError):
    """An adapter file does not fit the backbone (or the model) it is loaded into."""


def config_path(path: str | Path) -> Path:
    """The JSON config beside adapter file ``path`` (``x.safetensors`` -> ``x.json``)."""
    return Path(path).with_suffix(".json")


def adapter_state(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    """What an adapter file holds: the trainable parameters and the decoders' state."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if k in trainable or k.startswith("decoders.")}


def frozen_fingerprint(model: MultiTaskModel) -> str:
    """``"sha256:<16 hex>"`` of the frozen parameters (sorted names, shapes, float32 bytes)."""
    digest = hashlib.sha256()
    frozen = sorted((n, p) for n, p in model.named_parameters() if not p.requires_grad)
    for name, p in frozen:
        digest.update(f"{name}:{tuple(p.shape)}\n".encode())
        digest.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def save_adapter(model: MultiTaskModel, path: str | Path, pretrained: bool | str | Path,
                 seed: int = 0, fp16: bool = False,
                 source: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as adapter file ``path`` (``.safetensors``) and its JSON config.

    ``pretrained``: the backbone weights the model was built with (recorded, and
    fingerprinted by :func:`vmtlib.backbone.weights_fingerprint`); ``seed``: the seed
    it was built under (what rebuilds a random backbone); ``fp16``: store the
    floating-point tensors as float16 (half the size; outputs change slightly);
    ``source``: optional provenance (run, step, metrics). Returns ``path``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"an adapter file ends in .safetensors, got {path}")
    state = adapter_state(model)
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    info = model.info
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vmtlib_version": _version(),
        "method": info["method"],
        "method_kwargs": info["kwargs"],
        "backbone": info["backbone"],
        "tasks": list(info["tasks"]),
        "decoder": info["decoder"],
        "decoder_dim": info["decoder_dim"],
        "img_size": info["img_size"],
        "pretrained": str(pretrained) if isinstance(pretrained, Path) else pretrained,
        "backbone_weights": weights_fingerprint(info["backbone"], pretrained),
        "frozen_fingerprint": frozen_fingerprint(model),
        "seed": int(seed),
        "dtype": "float16" if fp16 else "float32",
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "tensors": len(state),
        "parameters": {k: v for k, v in count_parameters(model).items() if k != "frozen"},
    }
    if source:
        config["source"] = source
    text = json.dumps(config, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={METADATA_KEY: json.dumps(config)})
    config_path(path).write_text(text)
    return path


def read_adapter_config(path: str | Path) -> dict[str, Any]:
    """The config of adapter file ``path``: the JSON beside it, else the metadata copy."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter file not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        embedded = (f.metadata() or {}).get(METADATA_KEY)
    embedded = json.loads(embedded) if embedded else None
    beside = config_path(path)
    if beside.is_file():
        config = json.loads(beside.read_text())
        if embedded is not None and embedded != config:
            diff = sorted(k for k in set(config) | set(embedded)
                          if config.get(k) != embedded.get(k))
            raise AdapterMismatchError(
                f"{beside} and the config stored in {path} differ in {', '.join(diff)}; "
                f"remove the JSON file to use the stored one, or re-export")
    elif embedded is not None:
        config = embedded
    else:
        raise FileNotFoundError(f"{path} has no config: neither {beside} nor stored metadata")
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: not a vmtlib adapter file (format {config.get('format')!r})")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {config['format_version']} is newer than "
                         f"this vmtlib reads ({FORMAT_VERSION}); upgrade vmtlib")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ValueError(f"{path}: config lacks {', '.join(missing)}")
    return config


def load_adapter(path: str | Path, pretrained: bool | str | Path | None = None,
                 device: str | torch.device = "cpu") -> MultiTaskModel:
    """Rebuild the model of adapter file ``path`` in eval mode (see the module docstring).

    ``pretrained``: the backbone weights, as for :func:`vmtlib.build_model` (``True``,
    ``False`` or a local file); ``None`` takes the ones recorded in the config. Raises
    :class:`AdapterMismatchError` when the backbone's frozen tensors are not the ones
    the adapter was trained on. ``model.adapter_config`` is the config.
    """
    from safetensors.torch import load_file

    path = Path(path)
    config = read_adapter_config(path)
    if pretrained is None:
        pretrained = config.get("pretrained", False)
    seed_everything(int(config.get("seed", 0)))
    model = build_model(
        config["method"], backbone=config["backbone"], tasks=config["tasks"],
        pretrained=pretrained, decoder=config["decoder"], img_size=int(config["img_size"]),
        decoder_dim=config.get("decoder_dim"), **config["method_kwargs"],
    )
    here = frozen_fingerprint(model)
    if here != config["frozen_fingerprint"]:
        raise AdapterMismatchError(
            f"{path} was trained on the backbone {config['backbone']} with weights "
            f"{config.get('pretrained')!r} (fingerprint {config['frozen_fingerprint']}, "
            f"file {config.get('backbone_weights')}), but pretrained={pretrained!r} gives "
            f"fingerprint {here} (file {_safe_fingerprint(config['backbone'], pretrained)}); "
            f"pass the weights it was trained on")
    state = load_file(str(path))
    expected = adapter_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise AdapterMismatchError(
            f"{path} does not match a {config['method']} model on {config['backbone']}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise AdapterMismatchError(f"{path}: tensor {k} has shape {tuple(v.shape)}, "
                                       f"the model expects {tuple(expected[k].shape)}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False)
    model.adapter_config = config
    return model.to(device).eval()


def model_from_run(run_dir: str | Path) -> tuple[MultiTaskModel, dict[str, Any]]:
    """The trained model of a run directory (``config.json`` + ``checkpoint.pt``), rebuilt
    as the Trainer built it (:func:`vmtlib.evaluate.build_model_of`: same seed, backbone
    weights and decoder width), on the CPU, and the run's config."""
    from vmtlib.evaluate import build_model_of
    from vmtlib.rundir import CHECKPOINT, RunDir, load_checkpoint
    from vmtlib.train_config import TrainConfig

    run = RunDir(run_dir)
    saved = run.saved_config()
    if saved is None:
        raise FileNotFoundError(f"{run.path} is not a run directory: no config.json")
    model = build_model_of(TrainConfig.from_json(saved), torch.device("cpu"))
    load_checkpoint(run.path / CHECKPOINT, model)
    return model.eval(), saved


def export_run(run_dir: str | Path, out: str | Path, fp16: bool = False) -> Path:
    """``python -m vmtlib export --run DIR --out FILE``: the run's adapter file."""
    run_dir = Path(run_dir)
    model, cfg = model_from_run(run_dir)
    source: dict[str, Any] = {"run": str(run_dir)}
    final = run_dir / "final.json"
    if final.is_file():
        result = json.loads(final.read_text())
        source.update({k: result[k] for k in ("steps", "metrics", "delta_m") if k in result})
    return save_adapter(model, out, pretrained=cfg.get("pretrained", True),
                        seed=int(cfg.get("seed", 0)), fp16=fp16, source=source)


def _safe_fingerprint(backbone: str, pretrained: bool | str | Path) -> str | None:
    try:
        return weights_fingerprint(backbone, pretrained)
    except (FileNotFoundError, ValueError):
        return None


def _version() -> str:
    from vmtlib import __version__

    return __version__
