"""A digest of every method's numerics, so that a refactoring can prove it changed none.

For each method of ``vmtlib.METHODS`` and each backbone setting below, a model is
built at ``torch.manual_seed(0)`` (so the digest also pins the order in which a
method draws its initial values), run on a fixed input for the four tasks, and
back-propagated from a fixed loss. Recorded per method and setting:

- ``keys``: sha256 of the sorted state-dict keys with their shapes (checkpoints and
  adapter files load by name);
- ``trainable``: the number of trainable parameters;
- ``init``: sha256 of the output tensors' bytes and of the trainable gradients' bytes
  at the seed-0 initialisation (outputs in task order, gradients by sorted name);
- ``perturbed``: the same after adding a small, name-seeded offset to every trainable
  parameter, so that zero-initialised branches (adapters' up-projections, LoRA's B)
  take part in the forward pass too;
- float sums of the outputs and gradients of both, for debugging a mismatch.

Bits depend on the CPU kernels: the digest records torch's version and CPU
capability and runs on one thread. ``tests/test_numerics_digest.py`` compares.

    python scripts/numerics_digest.py            # writes tests/data/numerics_digest.json
    python scripts/numerics_digest.py --check    # compares instead, exit 1 on a mismatch
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DIGEST = ROOT / "tests" / "data" / "numerics_digest.json"

# (name, backbone, img_size): the course backbone and Swin-T's shapes at a small input.
SETTINGS = (("swin_nano_64", "swin_nano", 64), ("swin_tiny_64", "swin_tiny", 64))
TASKS = ("semseg", "human_parts", "sal", "normals")
BATCH = 2


def _sha(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _name_seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def _run(model: torch.nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """Outputs and gradients of ``model`` on ``images``: hashes and float sums."""
    model.zero_grad(set_to_none=True)
    out = model(images)
    outs = [out[t] for t in model.tasks]
    loss = sum((o.float() * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
    loss.backward()
    named = sorted((n, p) for n, p in model.named_parameters() if p.requires_grad)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for _, p in named]
    return {
        "out": _sha(outs),
        "grad": _sha(grads),
        "out_sum": float(sum(o.detach().double().sum() for o in outs)),
        "grad_abs_sum": float(sum(g.double().abs().sum() for g in grads)),
    }


def method_digest(method: str, backbone: str, img_size: int) -> dict[str, Any]:
    """The digest of one method on one backbone setting (see the module docstring)."""
    import vmtlib

    torch.manual_seed(0)
    model = vmtlib.build_model(method, backbone=backbone, tasks=TASKS, pretrained=False,
                               img_size=img_size)
    model.eval()  # the decoders' dropout off; the encoder has no randomness
    images = torch.rand(BATCH, 3, img_size, img_size,
                        generator=torch.Generator().manual_seed(1))
    keys = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(model.state_dict().items()))
    record = {
        "keys": hashlib.sha256(keys.encode()).hexdigest(),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "init": _run(model, images),
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                g = torch.Generator().manual_seed(_name_seed(name))
                p.add_(0.02 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    record["perturbed"] = _run(model, images)
    return record


def environment() -> dict[str, str]:
    return {"torch": torch.__version__.split("+")[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def digest(methods: list[str] | None = None) -> dict[str, Any]:
    """``{"environment": ..., "methods": {setting: {method: record}}}`` on one thread."""
    import vmtlib

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result: dict[str, Any] = {"environment": environment(), "methods": {}}
        for name, backbone, size in SETTINGS:
            result["methods"][name] = {
                m: method_digest(m, backbone, size) for m in (methods or list(vmtlib.METHODS))
            }
        return result
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed digest")
    parser.add_argument("--out", type=Path, default=DIGEST)
    args = parser.parse_args(argv)
    result = digest()
    if args.check:
        committed = json.loads(args.out.read_text())
        bad = [(s, m) for s, rows in committed["methods"].items() for m, r in rows.items()
               if result["methods"].get(s, {}).get(m) != r]
        for s, m in bad:
            print(f"mismatch: {s} {m}", file=sys.stderr)
        return 1 if bad else 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
