"""Samples per second of SyntheticScenes on one CPU core.

The CPU course generates its data on the fly, so a training step must never
wait on it: the issue asks for at least 200 samples/s at 128x128 on one core.
This renders ``--n`` consecutive samples (after a short warm-up) in the main
process with ``torch.set_num_threads(1)``, exactly what ``ds[i]`` costs a
DataLoader worker, and prints the rate (best of ``--repeats`` runs) twice: per
second of wall-clock time and per second of this process's CPU time. On a
shared machine the wall-clock rate drops with the load; the CPU-time rate is
what one dedicated core delivers.

Run: ``python benchmarks/bench_synthetic.py [--size 128] [--n 500] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vmtlib.data import SyntheticScenes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead")
    args = ap.parse_args()

    torch.set_num_threads(1)
    ds = SyntheticScenes(args.n * args.repeats + 20, size=args.size, seed=args.seed)
    for i in range(20):  # warm-up (caches, allocator)
        ds[i]
    rates, cpu_rates = [], []
    for r in range(args.repeats):
        start = 20 + r * args.n
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(start, start + args.n):
            ds[i]
        rates.append(args.n / (time.perf_counter() - t0))
        cpu_rates.append(args.n / (time.process_time() - c0))
    best, best_cpu = max(rates), max(cpu_rates)
    if args.json:
        print(json.dumps({"size": args.size, "n": args.n, "threads": 1,
                          "samples_per_s": round(best, 1),
                          "samples_per_cpu_s": round(best_cpu, 1),
                          "all_runs": [round(x, 1) for x in rates]}))
    else:
        runs = ", ".join(f"{x:.0f}" for x in rates)
        print(f"SyntheticScenes {args.size}x{args.size}, 1 thread: {best:.0f} samples/s "
              f"wall-clock (best of {args.repeats} x {args.n}; runs: {runs}), "
              f"{best_cpu:.0f} samples per CPU-second; target >= 200")


if __name__ == "__main__":
    main()
