"""The error analysis's statistics against scipy (Fisher, BH, KS) and a hand computation (Holm)."""

import math

import numpy as np
import pytest
from scipy import stats

from pytest_erran.analysis.stats import benjamini_hochberg, fisher_greater, holm, kolmogorov_sf, ks_2samp


def random_tables(seed, count, high):
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(0, high, 4)) for _ in range(count)]


@pytest.mark.parametrize("table", [(3, 1, 2, 10), (0, 5, 3, 4), (5, 0, 0, 5), (1, 0, 0, 1), (0, 0, 3, 4),
                                   (12, 12, 5, 171), (200, 10, 100, 5000), (40, 40, 10, 30), (7, 0, 0, 0),
                                   *random_tables(0, 40, 30), *random_tables(1, 20, 2000)])
def test_fisher_one_sided_equals_scipy(table):
    a, b, c, d = table
    expected = stats.fisher_exact([[a, b], [c, d]], alternative="greater").pvalue
    assert fisher_greater(a, b, c, d) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_fisher_is_exact_on_a_hand_count():
    # 2 misses of 4 units in the bucket, 0 of 4 in the rest: P(X >= 2), X ~ Hypergeom(8, 2, 4)
    assert fisher_greater(2, 2, 0, 4) == pytest.approx(math.comb(2, 2) * math.comb(6, 2) / math.comb(8, 4))


@pytest.mark.parametrize("seed", range(6))
def test_benjamini_hochberg_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.random(30) ** 4, [1.0, 0.0, 0.5, 0.5]])  # ties and the edges too
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh").tolist())


def test_benjamini_hochberg_of_nothing_and_of_one():
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.03]) == [0.03]


def test_holm_by_hand():
    # sorted: a 0.01 (x4 = 0.04), b 0.02 (x3 = 0.06), c 0.03 (x2 = 0.06), d 0.5 (x1 = 0.5)
    assert holm({"c": 0.03, "a": 0.01, "d": 0.5, "b": 0.02}) == pytest.approx(
        {"a": 0.04, "b": 0.06, "c": 0.06, "d": 0.5})
    # monotone: a larger p never gets a smaller adjusted value; capped at 1
    assert holm({"x": 0.3, "y": 0.4}) == pytest.approx({"x": 0.6, "y": 0.6})
    assert holm({"x": 0.9, "y": 0.8}) == {"x": 1.0, "y": 1.0}
    assert holm({"only": 0.02}) == {"only": 0.02}


@pytest.mark.parametrize("n, m, shift", [(5, 7, 0.5), (20, 20, 1.0), (30, 45, 0.0), (100, 300, 0.3),
                                         (200, 200, 0.2), (300, 800, 0.1), (3, 1, 0.0)])
def test_ks_statistic_and_exact_p_equal_scipy(n, m, shift):
    rng = np.random.default_rng(n + m)
    x, y = rng.normal(0, 1, n), rng.normal(shift, 1, m)
    d, p = ks_2samp(x, y)
    expected = stats.ks_2samp(x, y, method="exact")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_ks_with_ties_takes_the_statistic_over_both_samples():
    x, y = [1, 1, 2, 2, 3], [2, 2, 3, 3, 3, 4]
    assert ks_2samp(x, y)[0] == pytest.approx(stats.ks_2samp(x, y).statistic)


@pytest.mark.parametrize("n, m, shift", [(1500, 3000, 0.05), (2000, 8000, 0.1), (500, 5000, 0.2), (600, 600, 0.1)])
def test_ks_large_samples_use_the_corrected_limit_close_to_exact(n, m, shift):
    rng = np.random.default_rng(n)
    x, y = rng.normal(0, 1, n), rng.normal(shift, 1, m)
    d, p = ks_2samp(x, y)
    assert d == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
    # Stephens' corrected limit, against scipy's exact value: within a few percent
    assert p == pytest.approx(stats.ks_2samp(x, y, method="exact").pvalue, rel=0.06)


@pytest.mark.parametrize("z", [0.05, 0.3, 0.5, 0.8, 0.99, 1.0, 1.3, 2.0, 3.5])
def test_kolmogorov_limit_equals_scipy(z):
    assert kolmogorov_sf(z) == pytest.approx(stats.kstwobign.sf(z), rel=1e-10, abs=1e-15)
