"""Intervals over seeds: what a trained comparison reports.

Every trained table of the course is run with several seeds (model
initialisation and batch order; the scenes are the same). A method's score
is the mean over seeds with a two-sided 95% Student-t interval,

    mean +- t_{0.975, n - 1} * sd / sqrt(n),

and a claim "A beats B" is checked on the *paired* differences d_s = A_s - B_s
over the same seeds s (same initialisation stream and batches), whose interval
is narrower than the two separate ones when the seeds' luck is shared. A
difference is *resolved* only when its interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy import stats


@dataclass(frozen=True)
class Interval:
    """``mean`` and its 95% interval ``[low, high]`` over ``n`` seeds (``half`` = half-width).

    With one seed the interval is unknown: ``half`` is ``nan``.
    """

    mean: float
    half: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    @property
    def resolved(self) -> bool:
        """Whether the interval excludes 0 (for a difference: a resolved sign)."""
        return self.n > 1 and (self.low > 0 or self.high < 0)

    def to_json(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "low": self.low, "high": self.high, "resolved": self.resolved}

    def __str__(self) -> str:
        return f"{self.mean:.2f}" if self.n < 2 else f"{self.mean:.2f} ± {self.half:.2f}"


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and Student-t interval of ``values`` (one per seed)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, math.nan, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n), n)


def paired_ci(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> Interval:
    """Interval of ``a - b`` over the seeds both have (``{seed: score}``)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no common seed: {sorted(a)} against {sorted(b)}")
    return mean_ci([a[s] - b[s] for s in seeds], level)
