"""Recall, Wilson intervals and the exact paired test: small closed forms, no scipy needed."""

from __future__ import annotations

import math
from statistics import NormalDist


def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for hits / n; (0, 1) when there is nothing to count."""
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Exact edges: the interval must contain the point estimate despite rounding.
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    return low, high


def positives_needed(threshold: float, confidence: float = 0.95) -> int | None:
    """The fewest positives for which catching all of them puts the Wilson lower bound at or
    above `threshold`. With hits == n the bound is n / (n + z^2); None when no n is enough."""
    if threshold >= 1:
        return None
    z2 = z_value(confidence) ** 2
    # Start just under the closed form, then settle with the very test the gate uses.
    n = max(1, math.ceil(threshold * z2 / (1 - threshold)) - 1)
    while n > 1 and wilson(n - 1, n - 1, confidence)[0] >= threshold:
        n -= 1
    while wilson(n, n, confidence)[0] < threshold:
        n += 1
    return n


def regression_p(newly_missed: int, newly_caught: int) -> float:
    """One-sided exact McNemar: P(X <= newly_caught) for X ~ Binomial(b + c, 1/2).

    Small when many units flipped to missed and few the other way. Exact integer arithmetic:
    the binomial terms are built incrementally, so large counts stay cheap.
    """
    n = newly_missed + newly_caught
    if n == 0:
        return 1.0
    term, total = 1, 1  # C(n, 0)
    for k in range(newly_caught):
        term = term * (n - k) // (k + 1)
        total += term
    return min(1.0, total / (1 << n))
