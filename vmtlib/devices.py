"""Which device a process trains or evaluates on, and which rank it is.

Outside ``torchrun`` a process is rank 0 of 1; under ``torchrun --nproc_per_node N``
:func:`init_distributed` starts the process group (NCCL on GPUs, Gloo on the CPU) and
gives each rank its own GPU (``LOCAL_RANK``). An explicit ``cuda`` / ``cuda:N`` that
torch cannot see is refused with a one-line error before anything is built.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def check_device_available(device: str) -> None:
    """Refuse ``cuda`` / ``cuda:N`` where torch sees no such GPU (``auto`` and ``cpu`` pass)."""
    if not device.startswith("cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"device {device!r}: torch sees no CUDA GPU on this machine; "
                         f"use --device cpu or auto")
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise ValueError(f"device {device!r}: this machine has {count} CUDA GPU(s), "
                         f"cuda:0 to cuda:{count - 1}")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; an explicit device is checked."""
    check_device_available(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def distributed_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str = "auto") -> torch.device:
    """Start the process group when launched by torchrun; return this rank's device.

    ``device="auto"`` takes CUDA when available (rank ``LOCAL_RANK``'s GPU); an explicit
    ``cuda`` / ``cuda:N`` that torch cannot see is refused.
    """
    check_device_available(device)
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if not cuda:
        return torch.device("cpu")
    if device not in ("auto", "cuda"):  # an explicit cuda:N
        torch.cuda.set_device(device)  # else pinned memory opens a context on GPU 0 too
        return torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (an all-reduce MAX; every rank must call it)."""
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
