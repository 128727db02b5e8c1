"""The tests error analysis needs, in plain Python and numpy (scipy is for the tests only):
one-sided Fisher exact, Benjamini-Hochberg q-values, Holm's step-down adjustment and the
two-sample Kolmogorov-Smirnov test."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

# Terms of a hypergeometric tail below this fraction of the sum so far no longer change it.
_NEGLIGIBLE = 1e-17


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher exact p-value for the table [[a, b], [c, d]] (rows: the bucket, the
    rest; columns: missed, hit): P(X >= a) for X ~ Hypergeometric(N = a+b+c+d, K = a+c misses,
    n = a+b drawn), small when the bucket holds more misses than chance would put there.

    The tail is summed from its largest term with the ratio of consecutive probabilities, so
    no term is computed from a huge binomial and nothing underflows before it matters.
    """
    for value in (a, b, c, d):
        if value < 0:
            raise ValueError(f"table cells must be counts, got {[[a, b], [c, d]]}")
    total, misses, drawn = a + b + c + d, a + c, a + b
    low, high = max(0, drawn - (total - misses)), min(drawn, misses)
    if a <= low:
        return 1.0
    if a > high:
        return 0.0
    mode = (drawn + 1) * (misses + 1) // (total + 2)

    def log_pmf(x: int) -> float:
        return _log_choose(misses, x) + _log_choose(total - misses, drawn - x) - _log_choose(total, drawn)

    def ratio_up(x: int) -> float:  # P(x + 1) / P(x)
        return (misses - x) * (drawn - x) / ((x + 1) * (total - misses - drawn + x + 1))

    if a > mode:  # the upper tail itself, from its largest term a down the slope
        term = math.exp(log_pmf(a))
        tail, x = term, a
        while x < high:
            term *= ratio_up(x)
            x += 1
            tail += term
            if term < tail * _NEGLIGIBLE:
                break
        return min(1.0, tail)
    # a at or below the mode: p is large; 1 - the lower tail below a, summed from a - 1 down.
    term = math.exp(log_pmf(a - 1))
    lower, x = term, a - 1
    while x > low:
        term /= ratio_up(x - 1)
        x -= 1
        lower += term
        if term < lower * _NEGLIGIBLE:
            break
    return min(1.0, max(0.0, 1.0 - lower))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values (adjusted p-values), in the input's order:
    q_(i) = min over j >= i of m p_(j) / j, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q.tolist()


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values: the k-th smallest of m is multiplied by (m - k + 1),
    made non-decreasing and capped at 1. Rejecting where adjusted < alpha keeps the chance of
    any false rejection in the family at most alpha, however the tests depend on each other."""
    names = sorted(p_values, key=lambda name: (p_values[name], name))
    m = len(names)
    adjusted, running = {}, 0.0
    for k, name in enumerate(names):
        running = max(running, min(1.0, (m - k) * p_values[name]))
        adjusted[name] = running
    return adjusted


# --- two-sample Kolmogorov-Smirnov ---------------------------------------------------------------

# Up to this many lattice cells ((n + 1)(m + 1): 500 x 500 values take 0.06 s) the p-value is
# exact; beyond it, the corrected Kolmogorov limit, within a few percent there.
EXACT_CELLS = 250_000


def ks_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """max |F_x(t) - F_y(t)| over every value t of either sample."""
    x, y = np.sort(np.asarray(x, float)), np.sort(np.asarray(y, float))
    points = np.concatenate([x, y])
    fx = np.searchsorted(x, points, side="right") / len(x)
    fy = np.searchsorted(y, points, side="right") / len(y)
    return float(np.abs(fx - fy).max())


def ks_2samp(x, y) -> tuple[float, float]:
    """(statistic, two-sided p-value) of the two-sample Kolmogorov-Smirnov test; NaNs dropped.

    The p-value is exact for small samples (the share of lattice paths that leave the band
    |i/n - j/m| < D), else Kolmogorov's limit with Stephens' small-sample correction,
    Q((sqrt(e) + 0.12 + 0.11 / sqrt(e)) D) with e = nm / (n + m), within a few percent of exact.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("both samples need at least one value")
    d = ks_statistic(x, y)
    if (n + 1) * (m + 1) <= EXACT_CELLS:
        return d, _exact_p(n, m, d)
    root = math.sqrt(n * m / (n + m))
    return d, kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def _exact_p(n: int, m: int, d: float) -> float:
    """P(D >= d) under the null, every ordering of the n + m values equally likely.

    A walk over the lattice (i of the first sample, j of the second seen) steps right with
    probability (n - i) / (n + m - i - j): the probability of reaching (n, m) without ever
    touching |i m - j n| >= d n m is propagated one anti-diagonal at a time."""
    g = math.gcd(n, m)
    lcm = n // g * m
    h = round(d * lcm)  # D is a multiple of 1/lcm; rounding removes float noise
    if h == 0:
        return 1.0
    # inside the band: |i m - j n| / g < h
    inside = np.zeros(1)
    inside[0] = 1.0
    first = 0  # the i of inside[0] on the current diagonal
    for k in range(1, n + m + 1):
        lo, hi = max(0, k - m), min(n, k)
        i = np.arange(lo, hi + 1)
        j = k - i
        remaining = n + m - (k - 1)
        # from (i - 1, j): a step of the first sample; from (i, j - 1): of the second
        previous = np.zeros(len(i))
        src = i - 1 - first
        ok = (src >= 0) & (src < len(inside))
        previous[ok] += inside[src[ok]] * (n - (i[ok] - 1)) / remaining
        src = i - first
        ok = (src >= 0) & (src < len(inside))
        previous[ok] += inside[src[ok]] * (m - (j[ok] - 1)) / remaining
        previous[np.abs(i * m - j * n) // g >= h] = 0.0
        inside, first = previous, lo
    return float(min(1.0, max(0.0, 1.0 - inside[-1])))


def kolmogorov_sf(z: float) -> float:
    """Q(z) = 1 - K(z), Kolmogorov's limit of P(sqrt(nm/(n+m)) D > z): for z >= 1 the series
    2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 z^2), below it 1 - the theta series
    sqrt(2 pi) / z sum_{k>=1} exp(-(2k-1)^2 pi^2 / (8 z^2)), each fast where the other is slow."""
    if z <= 0:
        return 1.0
    if z < 1:
        total = 0.0
        for k in range(1, 101):
            term = math.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8 * z * z))
            total += term
            if term < 1e-300 or term < total * _NEGLIGIBLE:
                break
        return float(min(1.0, max(0.0, 1.0 - math.sqrt(2 * math.pi) / z * total)))
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2 * k * k * z * z)
        total += term if k % 2 else -term
        if term < 1e-300:
            break
    return float(min(1.0, max(0.0, 2 * total)))
