"""metrics.py checked against independent computations: scipy and brute force."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from pytest_erran.analysis.metrics import positives_needed, regression_p, wilson, z_value

CONFIDENCES = (0.68, 0.8, 0.9, 0.95, 0.99, 0.999)


def _wilson_grid():
    for n in list(range(1, 41)) + [57, 100, 250, 999, 5000]:
        for hits in sorted({0, 1, 2, n // 3, n // 2, n - 2, n - 1, n}):
            if 0 <= hits <= n:
                yield hits, n


WILSON_GRID = list(_wilson_grid())


def _scipy_wilson(hits, n, confidence):
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return ci.low, ci.high


# --- z_value ---------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_z_value_matches_scipy_normal_quantile(confidence):
    assert z_value(confidence) == pytest.approx(stats.norm.ppf(1 - (1 - confidence) / 2), rel=1e-12)


def test_z_value_familiar_values():
    assert z_value(0.95) == pytest.approx(1.959963984540054, rel=1e-12)
    assert z_value(0.99) == pytest.approx(2.5758293035489004, rel=1e-12)


# --- wilson ----------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_wilson_matches_scipy_over_grid(confidence):
    for hits, n in WILSON_GRID:
        low, high = wilson(hits, n, confidence)
        want_low, want_high = _scipy_wilson(hits, n, confidence)
        assert low == pytest.approx(want_low, rel=1e-9, abs=1e-12), (hits, n, confidence)
        assert high == pytest.approx(want_high, rel=1e-9, abs=1e-12), (hits, n, confidence)


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_wilson_bounds_are_ordered_and_inside_unit_interval(confidence):
    for hits, n in WILSON_GRID:
        low, high = wilson(hits, n, confidence)
        assert 0.0 <= low <= high <= 1.0, (hits, n, confidence)
        if 0 < hits < n:
            assert low <= hits / n <= high, (hits, n, confidence)


def test_wilson_interval_contains_the_point_estimate_at_the_edges():
    for confidence in CONFIDENCES:
        for n in range(1, 300):
            assert wilson(0, n, confidence)[0] == 0.0, (n, confidence)
            assert wilson(n, n, confidence)[1] == 1.0, (n, confidence)


@pytest.mark.parametrize("n", [1, 2, 7, 30, 1000])
@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_wilson_edges_zero_and_all_hits(n, confidence):
    z2 = z_value(confidence) ** 2
    low0, high0 = wilson(0, n, confidence)
    assert low0 == pytest.approx(0.0, abs=1e-15)
    assert high0 == pytest.approx(z2 / (n + z2), rel=1e-12)  # closed form for 0/n
    low_n, high_n = wilson(n, n, confidence)
    assert high_n == pytest.approx(1.0, abs=1e-15)
    assert low_n == pytest.approx(n / (n + z2), rel=1e-12)  # closed form for n/n


def test_wilson_is_symmetric_under_swapping_hits_and_misses():
    for hits, n in WILSON_GRID:
        low, high = wilson(hits, n, 0.95)
        low_m, high_m = wilson(n - hits, n, 0.95)
        assert low == pytest.approx(1 - high_m, abs=1e-12)
        assert high == pytest.approx(1 - low_m, abs=1e-12)


def test_wilson_default_confidence_is_095():
    assert wilson(7, 20) == wilson(7, 20, 0.95)


def test_wilson_with_nothing_to_count_is_the_whole_interval():
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 0, 0.99) == (0.0, 1.0)


def test_wilson_narrows_with_more_data_and_widens_with_confidence():
    assert wilson(90, 100)[1] - wilson(90, 100)[0] > wilson(900, 1000)[1] - wilson(900, 1000)[0]
    assert wilson(90, 100, 0.99)[0] < wilson(90, 100, 0.95)[0] < wilson(90, 100, 0.8)[0]


# --- regression_p ----------------------------------------------------------------------------

REGRESSION_GRID = (
    [(b, c) for b in range(0, 26) for c in range(0, 26)]
    + [(60, 40), (40, 60), (150, 120), (500, 450), (1000, 1), (1, 1000), (1000, 1000),
       (3000, 2900), (2900, 3000), (3000, 3000), (2000, 1900), (4000, 3950)]
)


def test_regression_p_is_one_without_flips():
    assert regression_p(0, 0) == 1.0


@pytest.mark.parametrize("b, c", [pair for pair in REGRESSION_GRID if sum(pair)])
def test_regression_p_matches_binomial_cdf(b, c):
    got = regression_p(b, c)
    assert got == pytest.approx(stats.binom.cdf(c, b + c, 0.5), rel=1e-9, abs=1e-300)
    assert got == pytest.approx(stats.binomtest(c, b + c, 0.5, alternative="less").pvalue,
                                rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("b, c", [(1, 0), (2, 0), (2, 1), (3, 1), (5, 0), (4, 2), (0, 3)])
def test_regression_p_small_counts_by_hand(b, c):
    n = b + c
    want = sum(math.comb(n, k) for k in range(c + 1)) / 2 ** n
    assert regression_p(b, c) == pytest.approx(want, rel=1e-15)


def test_regression_p_large_counts_known_value():
    # 3000 newly missed against 2900 newly caught: one-sided p ~ 0.0999 (normal approx ~ 0.097)
    p = regression_p(3000, 2900)
    assert p == pytest.approx(stats.binom.cdf(2900, 5900, 0.5), rel=1e-9)
    assert 0.05 < p < 0.15


def test_regression_p_is_one_when_nothing_was_newly_missed():
    for c in (1, 5, 100):
        assert regression_p(0, c) == 1.0


def test_regression_p_bounds_and_monotonicity():
    for b in range(0, 15):
        previous = None
        for c in range(0, 15):
            if b + c == 0:
                continue
            p = regression_p(b, c)
            assert 0.0 < p <= 1.0
            if previous is not None:
                assert p >= previous  # more newly caught: less evidence of regression
            previous = p
    for c in range(0, 10):
        ps = [regression_p(b, c) for b in range(1, 15)]
        assert ps == sorted(ps, reverse=True)  # more newly missed: more evidence


# --- positives_needed ------------------------------------------------------------------------


def _brute_positives_needed(threshold, confidence):
    n = 1
    while wilson(n, n, confidence)[0] < threshold:
        n += 1
    return n


REALISTIC_THRESHOLDS = (
    [i / 100 for i in range(0, 100)]
    + [0.005, 0.125, 0.333, 0.555, 0.875, 0.905, 0.925, 0.955, 0.975, 0.985, 0.995,
       0.9975, 0.998, 0.999]
)


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_positives_needed_matches_brute_force(confidence):
    for threshold in REALISTIC_THRESHOLDS:
        assert positives_needed(threshold, confidence) == _brute_positives_needed(threshold, confidence), (
            threshold, confidence)


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_positives_needed_is_the_smallest_sufficient_bucket(confidence):
    for threshold in REALISTIC_THRESHOLDS:
        needed = positives_needed(threshold, confidence)
        assert wilson(needed, needed, confidence)[0] >= threshold
        if needed > 1:
            assert wilson(needed - 1, needed - 1, confidence)[0] < threshold


def test_positives_needed_known_values():
    # n / (n + z^2) >= t  <=>  n >= t z^2 / (1 - t); at 95%, z^2 = 3.8415
    assert positives_needed(0.9, 0.95) == 35  # 9 * 3.8415 = 34.57
    assert positives_needed(0.95, 0.95) == 73  # 19 * 3.8415 = 72.99
    assert positives_needed(0.5, 0.95) == 4  # 3.84
    assert positives_needed(0.0, 0.95) == 1
    assert positives_needed(0.9) == positives_needed(0.9, 0.95)


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_positives_needed_is_none_at_threshold_one(confidence):
    assert positives_needed(1.0, confidence) is None
    assert positives_needed(1, confidence) is None


def test_positives_needed_grows_with_threshold_and_confidence():
    values = [positives_needed(t / 100) for t in range(0, 100)]
    assert values == sorted(values)
    assert positives_needed(0.9, 0.99) > positives_needed(0.9, 0.95) > positives_needed(0.9, 0.8)


# Thresholds that sit exactly on a boundary: t = wilson(m, m)[0], the lower bound a bucket of m
# positives all caught reaches. The gate decides "too small" with wilson(n, n)[0] < t, so m
# positives are enough there; positives_needed computes ceil(t z^2 / (1 - t)), which rounds to
# m + 1 (the float quotient lands a hair above m), and only ever steps upward from that guess.
TIE_CASES = [(m, confidence) for confidence, ms in ((0.95, (2, 6, 9, 12, 35)), (0.8, (3, 4, 7)))
             for m in ms]


@pytest.mark.parametrize("m, confidence", TIE_CASES)
def test_positives_needed_at_exact_boundary_ties(m, confidence):
    threshold = wilson(m, m, confidence)[0]
    assert _brute_positives_needed(threshold, confidence) == m  # the brute force itself is sound
    assert positives_needed(threshold, confidence) == m
