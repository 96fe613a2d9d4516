"""Small statistics the health maths share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise


def quantile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank quantile (q=0.95: the smallest value at or above 95 % of them); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


@dataclass(frozen=True)
class CounterSample:
    """A cumulative counter (e.g. a Prometheus `_total`) read at one moment."""

    at: datetime
    value: float


def increase(samples: Sequence[CounterSample]) -> float:
    """How much a counter grew over the samples. A value below the previous one means the process
    restarted and counted again from zero, so all of the new value is growth (as Prometheus does)."""
    return sum(b.value - a.value if b.value >= a.value else b.value for a, b in pairwise(samples))


def increases_by_bucket(
    samples: Sequence[CounterSample], start: datetime, step_s: float, buckets: int
) -> list[float]:
    """The growth in each of `buckets` consecutive intervals of `step_s` from `start`: each step between
    two samples counts in the interval of the later sample (exact when samples fall on boundaries)."""
    counts = [0.0] * buckets
    for a, b in pairwise(samples):
        index = math.floor((b.at - start).total_seconds() / step_s - 1e-9)
        if 0 <= index < buckets:
            counts[index] += b.value - a.value if b.value >= a.value else b.value
    return counts


def _log_pmf(k: int, lam: float) -> float:
    return -lam + k * math.log(lam) - math.lgamma(k + 1)


def poisson_cdf(k: float, lam: float) -> float:
    """P(X ≤ k) for X ~ Poisson(lam), summed in log space (no underflow for large lam)."""
    top = math.floor(k)
    if top < 0:
        return 0.0
    if lam <= 0:
        return 1.0
    logs = [_log_pmf(i, lam) for i in range(top + 1)]
    peak = max(logs)
    return min(math.exp(peak) * sum(math.exp(v - peak) for v in logs), 1.0)


def poisson_sf(k: float, lam: float) -> float:
    """P(X ≥ k) for X ~ Poisson(lam)."""
    return max(1.0 - poisson_cdf(math.ceil(k) - 1, lam), 0.0)
