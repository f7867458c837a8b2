"""Kronecker products and sums of Kronecker products.

VMT-Adapter Eq. 2 defines the Kronecker product of A (a1 x a2) and B (b1 x b2)
as the (a1 b1) x (a2 b2) block matrix whose block (i, j) is a_ij B. PHM layers,
Compacter, Polyhistor's scaling kernels (Eq. 4, 6) and VMT-Adapter-Lite
(Eq. 6) all build a weight as a *sum* of such products,

    W = sum_i A_i (x) B_i,   A_i: (p, q),  B_i: (r, s),  W: (p r, q s).

A product ``x W`` need not build W. Write the input row x (length p r) as a
p x r matrix X (row-major, so x[a r + b] = X[a, b]); then

    (x W)[c s + e] = sum_i sum_{a, b} X[a, b] A_i[a, c] B_i[b, e]
                   = sum_i (A_i^T X B_i)[c, e],

which is :func:`kron_sum_matmul`. It touches only the factors (n (p q + r s)
numbers instead of p q r s), which is where the memory saving comes from.
Whether it is also faster depends on the sizes: ``benchmarks/bench_kron.py``
measures both at the Swin-T sizes.
"""

from __future__ import annotations

import torch


def kron(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched Kronecker product (Eq. 2).

    Args:
        a: ``(..., p, q)``.
        b: ``(..., r, s)``; leading dimensions broadcast with ``a``'s.

    Returns:
        ``(..., p r, q s)`` with block ``(i, j)`` equal to ``a[..., i, j] * b``.
    """
    p, q = a.shape[-2:]
    r, s = b.shape[-2:]
    out = a[..., :, None, :, None] * b[..., None, :, None, :]
    return out.reshape(*out.shape[:-4], p * r, q * s)


def kron_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of Kronecker products ``sum_i a[i] (x) b[i]``.

    Args:
        a: ``(n, p, q)``.
        b: ``(n, r, s)``.

    Returns:
        ``(p r, q s)``.
    """
    _check_factors(a, b)
    n, p, q = a.shape
    _, r, s = b.shape
    return torch.einsum("ipq,irs->prqs", a, b).reshape(p * r, q * s)


def kron_sum_matmul(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x @ kron_sum(a, b)`` without materialising the ``(p r, q s)`` matrix.

    Args:
        x: ``(..., p r)``.
        a: ``(n, p, q)``.
        b: ``(n, r, s)``.

    Returns:
        ``(..., q s)``, computed as ``sum_i a[i]^T X b[i]`` with X = x viewed as
        ``(..., p, r)`` (see the module docstring).
    """
    _check_factors(a, b)
    _, p, q = a.shape
    _, r, s = b.shape
    if x.shape[-1] != p * r:
        raise ValueError(f"x has {x.shape[-1]} features, the factors expect {p} * {r} = {p * r}")
    lead = x.shape[:-1]
    xm = x.reshape(-1, p, r)
    xb = torch.einsum("tpr,irs->tips", xm, b)  # X B_i: (tokens, n, p, s)
    y = torch.einsum("tips,ipq->tqs", xb, a)  # sum_i A_i^T (X B_i)
    return y.reshape(*lead, q * s)


def _check_factors(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"expected factors (n, p, q) and (n, r, s) with the same n, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
