"""Structured versus materialised sums of Kronecker products at the Swin-T sizes.

VMT-Adapter-Lite (Eq. 6) needs x W_down and h W_up with W = sum_i A^i (x) B^i.
Two ways to compute it, timed here in one run on the same inputs:

- materialised: build W once (``kron_sum``), then one dense matmul;
- structured:   ``kron_sum_matmul``, which never builds W.

Run: ``python benchmarks/bench_kron.py [--tokens N] [--threads T]``. Prints one
row per Swin-T stage width and the ratio structured / materialised of the
forward+backward time (> 1 means the materialised path is faster), and
writes ``benchmarks/results/kron.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vmtlib.kron import kron_sum, kron_sum_matmul

RESULTS = Path(__file__).parent / "results" / "kron.json"


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2 * 56 * 56, help="B * H * W of stage 1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--rho", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    print(f"{'d':>5} {'tokens':>7} {'materialised ms':>16} {'structured ms':>14} {'ratio':>6}")
    for stage, d in enumerate((96, 192, 384, 768)):
        k, m = d // args.rho, args.m
        tokens = args.tokens // 4**stage  # the token count shrinks 4x per stage
        a = torch.randn(m, m, m, requires_grad=True)
        b = torch.randn(m, d // m, k // m, requires_grad=True)
        x = torch.randn(tokens, d, requires_grad=True)

        def materialised(x=x, a=a, b=b) -> None:
            (x @ kron_sum(a, b)).sum().backward()

        def structured(x=x, a=a, b=b) -> None:
            kron_sum_matmul(x, a, b).sum().backward()

        t_mat = timed(materialised, args.repeats)
        t_str = timed(structured, args.repeats)
        rows.append({"d": d, "k": k, "m": m, "tokens": tokens, "materialised_s": t_mat,
                     "structured_s": t_str, "ratio": t_str / t_mat})
        print(f"{d:>5} {tokens:>7} {t_mat * 1e3:>16.2f} {t_str * 1e3:>14.2f} {t_str / t_mat:>6.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "device": "cpu", "command": "python benchmarks/bench_kron.py"}
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
