"""gate.judge outcome rules and results._compare, on hand-built results; expectations by hand/scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pytest_erran.analysis.baseline import Baseline
from pytest_erran.analysis.buckets import Bucket
from pytest_erran.config import Requirement
from pytest_erran.analysis.gate import FAILED, INCONCLUSIVE, PASSED, REGRESSED, SKIPPED, TOO_SMALL, judge
from pytest_erran.analysis.metrics import positives_needed
from pytest_erran.analysis.results import BucketResult, Comparison, PrecisionCounts, bucket_results

ALPHA, CONFIDENCE = 0.05, 0.95


def result(positives=100, hits=90, *, tp=None, fp=None, images=None, comparison=None, name="x"):
    return BucketResult(name=name, positives=positives, hits=hits, ci_low=0.0, ci_high=1.0,
                        missed=[f"m{i}" for i in range(positives - hits)], true_positives=tp,
                        false_positives=fp, images=images, comparison=comparison)


def comparison(delta, p, *, baseline_recall=0.9, shared=100, missed=3, caught=1):
    return Comparison(shared=shared, added=0, baseline_recall=baseline_recall, delta=delta,
                      newly_missed=[f"nm{i}" for i in range(missed)],
                      newly_caught=[f"nc{i}" for i in range(caught)], regression_p=p)


def recall(threshold, max_drop=None, gate="point", bucket="x"):
    return Requirement(bucket=bucket, metric="recall", threshold=threshold, max_drop=max_drop, gate=gate)


def drop_only(max_drop=0.02, bucket="x"):
    return Requirement(bucket=bucket, metric="drop", threshold=None, max_drop=max_drop)


def scipy_low(hits, n, confidence=CONFIDENCE):
    return stats.binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson").low


# --- Requirement.id --------------------------------------------------------------------------


@pytest.mark.parametrize("requirement, expected", [
    (Requirement("scratch", "recall", 0.9), "recall(scratch)>=0.90"),
    (Requirement("x", "recall", 0.955), "recall(x)>=0.955"),
    (Requirement("x", "drop", None, max_drop=0.02), "drop(x)<=0.02"),
    (Requirement("x", "fp_per_image", 0.1), "fp_per_image(x)<=0.10"),
    (Requirement("x", "precision", 0.8), "precision(x)>=0.80"),
    (Requirement("x", "recall", 0.9, max_drop=0.02), "recall(x)>=0.90"),
    (Requirement("x", "recall", 0.9, gate="lower_bound"), "recall(x)>=0.90"),
    (Requirement("all", "recall", 1.0), "recall(all)>=1.00"),
    (Requirement("x", "recall", 0.5), "recall(x)>=0.50"),
])
def test_requirement_id(requirement, expected):
    assert requirement.id == expected


def test_verdict_id_is_the_requirement_id():
    requirement = recall(0.9, bucket="scratch")
    assert judge(requirement, result(), ALPHA, CONFIDENCE).id == "recall(scratch)>=0.90"


# --- recall floor on the point estimate --------------------------------------------------------


@pytest.mark.parametrize("hits, outcome", [(92, PASSED), (90, PASSED), (89, FAILED), (50, FAILED)])
def test_point_gate_compares_recall_to_the_floor(hits, outcome):
    verdict = judge(recall(0.9), result(100, hits), ALPHA, CONFIDENCE)
    assert verdict.outcome == outcome
    assert verdict.passed is (outcome == PASSED)
    assert verdict.value == pytest.approx(hits / 100)
    assert not verdict.skipped and not verdict.warning
    assert verdict.needed is None


def test_point_gate_passes_even_when_the_lower_bound_is_under_the_floor():
    assert scipy_low(92, 100) < 0.9  # the point estimate alone decides
    verdict = judge(recall(0.9), result(100, 92), ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED and verdict.passed


# --- recall floor on the Wilson lower bound ----------------------------------------------------


@pytest.mark.parametrize("positives, hits", [(100, 95), (100, 99), (200, 190), (500, 470), (1000, 920)])
def test_lower_bound_gate_applies_the_floor_to_the_wilson_lower_bound(positives, hits):
    low = scipy_low(hits, positives)
    verdict = judge(recall(0.9, gate="lower_bound"), result(positives, hits), ALPHA, CONFIDENCE)
    assert verdict.value == pytest.approx(low, rel=1e-9)
    assert verdict.passed is bool(low >= 0.9)
    assert verdict.outcome == (PASSED if low >= 0.9 else FAILED)


def test_lower_bound_gate_fails_what_the_point_gate_passes():
    # 95/100: point 0.95 >= 0.90, but the 95% lower bound is ~0.888
    assert scipy_low(95, 100) < 0.9
    assert judge(recall(0.9), result(100, 95), ALPHA, CONFIDENCE).outcome == PASSED
    verdict = judge(recall(0.9, gate="lower_bound"), result(100, 95), ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED and not verdict.passed
    # 99/100: lower bound ~0.9455 clears it
    assert judge(recall(0.9, gate="lower_bound"), result(100, 99), ALPHA, CONFIDENCE).outcome == PASSED


def test_lower_bound_gate_uses_the_given_confidence():
    # 97/100: 80% lower bound ~0.947, 99% lower bound ~0.897
    requirement = recall(0.92, gate="lower_bound")
    assert judge(requirement, result(100, 97), ALPHA, 0.8).outcome == PASSED
    assert judge(requirement, result(100, 97), ALPHA, 0.99).outcome == FAILED
    assert judge(requirement, result(100, 97), ALPHA, 0.8).value == pytest.approx(scipy_low(97, 100, 0.8))


# --- too small -------------------------------------------------------------------------------

# At 95%, n/n has lower bound n / (n + 3.8415): for a 0.90 floor, 35 positives are the least
# (34 -> 0.8985, 35 -> 0.9011); brute force with scipy below.


def _brute_needed(threshold, confidence=CONFIDENCE):
    n = 1
    while scipy_low(n, n, confidence) < threshold:
        n += 1
    return n


def test_too_small_threshold_hand_check():
    assert _brute_needed(0.9) == 35
    assert positives_needed(0.9, CONFIDENCE) == 35


@pytest.mark.parametrize("positives, hits", [(10, 10), (10, 9), (34, 34), (34, 31), (1, 1)])
def test_too_small_point_gate_with_recall_at_floor_passes_with_warning(positives, hits):
    assert scipy_low(positives, positives) < 0.9  # even n/n cannot show 0.90
    verdict = judge(recall(0.9), result(positives, hits), ALPHA, CONFIDENCE)
    assert verdict.outcome == TOO_SMALL
    assert verdict.passed is True
    assert verdict.warning is True
    assert verdict.needed == positives_needed(0.9, CONFIDENCE) == 35
    assert verdict.value == pytest.approx(hits / positives)
    assert "35 positives" in verdict.message


@pytest.mark.parametrize("positives, hits", [(10, 8), (34, 30), (1, 0)])
def test_too_small_point_gate_with_recall_under_floor_fails(positives, hits):
    verdict = judge(recall(0.9), result(positives, hits), ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED
    assert verdict.passed is False and verdict.warning is False
    assert verdict.needed == 35


@pytest.mark.parametrize("positives, hits", [(10, 10), (10, 5), (34, 34)])
def test_too_small_lower_bound_gate_does_not_pass(positives, hits):
    verdict = judge(recall(0.9, gate="lower_bound"), result(positives, hits), ALPHA, CONFIDENCE)
    assert verdict.outcome == TOO_SMALL
    assert verdict.passed is False
    assert verdict.warning is False  # a failure, not a warning
    assert verdict.needed == 35
    assert verdict.value == pytest.approx(scipy_low(hits, positives), rel=1e-9, abs=1e-12)


def test_exactly_enough_positives_is_not_too_small():
    verdict = judge(recall(0.9), result(35, 35), ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED and verdict.needed is None
    verdict = judge(recall(0.9, gate="lower_bound"), result(35, 35), ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED and verdict.value == pytest.approx(35 / (35 + 1.959963984540054 ** 2))


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.95, 0.99])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_too_small_needed_matches_brute_force(threshold, confidence):
    needed = _brute_needed(threshold, confidence)
    small = judge(recall(threshold), result(needed - 1, needed - 1), ALPHA, confidence) if needed > 1 else None
    if small is not None:
        assert small.outcome == TOO_SMALL and small.needed == needed
    enough = judge(recall(threshold), result(needed, needed), ALPHA, confidence)
    assert enough.outcome == PASSED and enough.needed is None


def test_floor_of_one_is_always_too_small_and_needs_no_finite_bucket():
    verdict = judge(recall(1.0), result(10000, 10000), ALPHA, CONFIDENCE)
    assert verdict.outcome == TOO_SMALL and verdict.passed
    assert verdict.needed is None
    assert "more positives than any finite bucket" in verdict.message


def test_empty_bucket_fails():
    verdict = judge(recall(0.9), result(0, 0), ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED and not verdict.passed and verdict.value is None


# --- max_drop --------------------------------------------------------------------------------


def test_drop_within_max_drop_passes():
    verdict = judge(recall(0.5, max_drop=0.02), result(100, 89, comparison=comparison(-0.01, 0.3)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED and verdict.passed and not verdict.warning
    assert verdict.value == pytest.approx(0.89)  # the floor's value leads


def test_drop_exactly_max_drop_passes_despite_float_noise():
    delta = 0.88 - 0.90  # -0.020000000000000018
    assert -delta > 0.02
    verdict = judge(drop_only(0.02), result(comparison=comparison(delta, 0.001, baseline_recall=0.9)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED and verdict.passed


def test_improvement_passes():
    verdict = judge(drop_only(0.0), result(comparison=comparison(0.05, 1.0, missed=0, caught=5)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED and verdict.passed


def test_drop_beyond_max_drop_with_small_p_regresses():
    verdict = judge(recall(0.5, max_drop=0.02), result(100, 85, comparison=comparison(-0.05, 0.01)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == REGRESSED
    assert verdict.passed is False and verdict.warning is False


def test_drop_beyond_max_drop_with_large_p_is_inconclusive():
    verdict = judge(recall(0.5, max_drop=0.02), result(100, 85, comparison=comparison(-0.05, 0.2)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == INCONCLUSIVE
    assert verdict.passed is True
    assert verdict.warning is True


@pytest.mark.parametrize("p, outcome", [(0.0499, REGRESSED), (0.05, INCONCLUSIVE), (0.0501, INCONCLUSIVE)])
def test_alpha_boundary(p, outcome):
    verdict = judge(drop_only(0.02), result(comparison=comparison(-0.05, p)), 0.05, CONFIDENCE)
    assert verdict.outcome == outcome


@pytest.mark.parametrize("p", [0.2, 0.5, 0.99, 0.9999999])
def test_alpha_one_makes_any_drop_beyond_max_drop_a_regression(p):
    verdict = judge(drop_only(0.02), result(comparison=comparison(-0.03, p)), 1.0, CONFIDENCE)
    assert verdict.outcome == REGRESSED and not verdict.passed
    within = judge(drop_only(0.02), result(comparison=comparison(-0.01, p)), 1.0, CONFIDENCE)
    assert within.outcome == PASSED and within.passed


def test_alpha_one_with_real_flip_counts():
    # the smallest possible drop beyond max_drop: 1 newly missed, 0 caught on 10 shared -> p = 0.5
    from pytest_erran.analysis.metrics import regression_p
    p = regression_p(1, 0)
    assert p == 0.5 < 1.0
    verdict = judge(drop_only(0.0), result(comparison=comparison(-0.1, p, shared=10, missed=1, caught=0)),
                    1.0, CONFIDENCE)
    assert verdict.outcome == REGRESSED


def test_drop_only_without_baseline_is_skipped():
    verdict = judge(drop_only(0.02), result(comparison=None), ALPHA, CONFIDENCE)
    assert verdict.skipped is True
    assert verdict.passed is True and verdict.outcome == SKIPPED  # never reported as "passed"
    assert verdict.warning is True
    assert verdict.value is None
    assert "no baseline to compare against yet" in verdict.message


def test_drop_only_without_shared_units_is_skipped():
    empty = Comparison(shared=0, added=10, baseline_recall=None, delta=None, newly_missed=[],
                       newly_caught=[], regression_p=1.0)
    verdict = judge(drop_only(0.02), result(comparison=empty), ALPHA, CONFIDENCE)
    assert verdict.skipped is True and verdict.passed and verdict.outcome == SKIPPED
    assert "the baseline shares none of this bucket's" in verdict.message  # not "no baseline"


def test_drop_only_with_baseline_is_judged_on_the_drop():
    verdict = judge(drop_only(0.02), result(comparison=comparison(-0.05, 0.001)), ALPHA, CONFIDENCE)
    assert verdict.outcome == REGRESSED and not verdict.skipped
    assert verdict.value == pytest.approx(0.05)  # the drop itself


def test_floor_with_max_drop_but_no_baseline_is_the_floor_verdict_not_skipped():
    verdict = judge(recall(0.9, max_drop=0.02), result(100, 80, comparison=None), ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED and not verdict.skipped
    verdict = judge(recall(0.9, max_drop=0.02), result(100, 95, comparison=None), ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED and not verdict.skipped
    assert "max_drop not checked" in verdict.message


def test_floor_failure_takes_precedence_over_a_regression():
    verdict = judge(recall(0.9, max_drop=0.02), result(100, 80, comparison=comparison(-0.1, 0.0001)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED and verdict.passed is False
    assert verdict.value == pytest.approx(0.8)


def test_floor_failure_takes_precedence_over_inconclusive():
    verdict = judge(recall(0.9, max_drop=0.02), result(100, 80, comparison=comparison(-0.1, 0.5)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED and verdict.passed is False


def test_regression_comes_before_a_passing_floor():
    verdict = judge(recall(0.5, max_drop=0.02), result(100, 85, comparison=comparison(-0.1, 0.001)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == REGRESSED and not verdict.passed
    assert verdict.value == pytest.approx(0.85)  # reported on the floor's metric


def test_regression_comes_before_too_small():
    verdict = judge(recall(0.9, max_drop=0.02), result(10, 10, comparison=comparison(-0.1, 0.001)),
                    ALPHA, CONFIDENCE)
    assert verdict.outcome == REGRESSED and not verdict.passed


def test_too_small_with_inconclusive_drop_still_passes_with_warning():
    verdict = judge(recall(0.9, max_drop=0.02), result(10, 10, comparison=comparison(-0.1, 0.5)),
                    ALPHA, CONFIDENCE)
    assert verdict.passed and verdict.warning
    assert verdict.outcome in (TOO_SMALL, INCONCLUSIVE)


def test_lower_bound_floor_failure_beats_regression():
    verdict = judge(recall(0.9, max_drop=0.02, gate="lower_bound"),
                    result(100, 95, comparison=comparison(-0.1, 0.001)), ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED


# --- precision and false positives per image ----------------------------------------------------


@pytest.mark.parametrize("tp, fp, threshold, outcome", [
    (90, 10, 0.8, PASSED), (90, 10, 0.9, PASSED), (90, 10, 0.95, FAILED), (70, 30, 0.8, FAILED),
])
def test_precision_floor(tp, fp, threshold, outcome):
    requirement = Requirement("x", "precision", threshold)
    verdict = judge(requirement, result(tp=tp, fp=fp, images=50), ALPHA, CONFIDENCE)
    assert verdict.outcome == outcome
    assert verdict.value == pytest.approx(tp / (tp + fp))


def test_precision_lower_bound_uses_predictions_as_the_count():
    requirement = Requirement("x", "precision", 0.8, gate="lower_bound")
    verdict = judge(requirement, result(positives=10, hits=1, tp=90, fp=10, images=50), ALPHA, CONFIDENCE)
    assert verdict.value == pytest.approx(scipy_low(90, 100), rel=1e-9)
    assert verdict.outcome == (PASSED if scipy_low(90, 100) >= 0.8 else FAILED) == PASSED


def test_precision_too_small_counts_predictions_not_positives():
    # 5/5 predictions right: lower bound 0.566 < 0.80, although the bucket has 1000 positives
    requirement = Requirement("x", "precision", 0.8)
    verdict = judge(requirement, result(positives=1000, hits=990, tp=5, fp=0, images=50), ALPHA, CONFIDENCE)
    assert verdict.outcome == TOO_SMALL and verdict.passed
    assert verdict.needed == _brute_needed(0.8) == 16


def test_precision_without_predictions_fails():
    requirement = Requirement("x", "precision", 0.8)
    verdict = judge(requirement, result(tp=0, fp=0, images=50), ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED and not verdict.passed and verdict.value is None


def _not_passed_or_refused(requirement, bucket_result):
    """A requirement on a bucket with no precision counts must not pass: a clear failure, or an
    ErranError naming the problem, are both acceptable."""
    from pytest_erran.errors import ErranError
    try:
        verdict = judge(requirement, bucket_result, ALPHA, CONFIDENCE)
    except ErranError:
        return
    assert verdict.passed is False, verdict


def test_precision_on_a_bucket_without_precision_counts_does_not_crash():
    _not_passed_or_refused(Requirement("x", "precision", 0.8), result(tp=None, fp=None))


def test_fp_per_image_on_a_bucket_without_counts_does_not_silently_pass():
    _not_passed_or_refused(Requirement("x", "fp_per_image", 0.1), result(tp=None, fp=None))


@pytest.mark.parametrize("fp, images, outcome", [
    (5, 100, PASSED), (10, 100, PASSED), (11, 100, FAILED), (30, 100, FAILED), (0, 1, PASSED),
])
def test_fp_per_image_ceiling(fp, images, outcome):
    requirement = Requirement("x", "fp_per_image", 0.1)
    verdict = judge(requirement, result(tp=50, fp=fp, images=images), ALPHA, CONFIDENCE)
    assert verdict.outcome == outcome
    assert verdict.passed is (outcome == PASSED)
    assert verdict.value == pytest.approx(fp / images)
    assert verdict.needed is None


def test_fp_per_image_is_not_subject_to_too_small():
    verdict = judge(Requirement("x", "fp_per_image", 0.1), result(tp=1, fp=0, images=1), ALPHA, CONFIDENCE)
    assert verdict.outcome == PASSED


# --- results._compare via bucket_results ---------------------------------------------------------

# id, true label, hit now, baseline label (None: not in baseline), baseline missed
UNITS = [
    ("u1", "scratch", True, "scratch", False),  # shared, hit both times
    ("u2", "scratch", False, "scratch", False),  # newly missed
    ("u3", "dent", True, "dent", True),  # newly caught
    ("u4", "dent", False, "dent", True),  # missed both times
    ("u5", "scratch", False, "dent", False),  # relabelled: added, not newly missed
    ("u6", "scratch", True, None, False),  # new unit: added
    ("u7", "ok", True, None, False),  # negative: not a positive at all
    ("u8", "dent", False, "dent", False),  # newly missed
    ("u9", "scratch", True, "scratch", False),  # shared, hit both times
    ("u10", "ok", False, None, False),  # negative
]


def _frame():
    return pd.DataFrame({
        "id": [u[0] for u in UNITS], "label": [u[1] for u in UNITS], "_hit": [u[2] for u in UNITS],
        "_display": [f"img/{u[0]}.png" for u in UNITS],
    })


def _baseline():
    return Baseline(path=Path("baseline.json"), units={u[0]: u[3] for u in UNITS if u[3] is not None},
                    missed={u[0] for u in UNITS if u[4]}, document={})


def _buckets(frame):
    labels = frame["label"].to_numpy()
    ids = frame["id"].to_numpy()
    return {
        "all": Bucket("all", np.ones(len(frame), bool), kind="all"),
        "scratch": Bucket("scratch", labels == "scratch", kind="class"),
        "dent": Bucket("dent", labels == "dent", kind="class"),
        "fresh": Bucket("fresh", np.isin(ids, ["u5", "u6"])),
    }


def _results(baseline):
    frame = _frame()
    return bucket_results(frame, _buckets(frame), "ok", CONFIDENCE, {}, 10, baseline)


def test_compare_all_bucket_by_hand():
    r = _results(_baseline())["all"]
    assert (r.positives, r.hits) == (8, 4)  # u1 u3 u6 u9 hit; u7 u10 are negatives
    c = r.comparison
    assert c.shared == 6  # u1 u2 u3 u4 u8 u9
    assert c.added == 2  # u5 (relabelled), u6 (new)
    assert c.baseline_recall == pytest.approx(4 / 6)  # u1 u2 u8 u9 were hits
    assert c.delta == pytest.approx(3 / 6 - 4 / 6)  # now u1 u3 u9
    assert c.newly_missed == ["u2", "u8"]
    assert c.newly_caught == ["u3"]
    assert c.regression_p == pytest.approx(stats.binom.cdf(1, 3, 0.5)) == 0.5


def test_compare_class_bucket_with_relabelled_unit():
    c = _results(_baseline())["scratch"].comparison
    assert (c.shared, c.added) == (3, 2)  # u1 u2 u9 shared; u5 relabelled, u6 new
    assert c.baseline_recall == pytest.approx(1.0)
    assert c.delta == pytest.approx(2 / 3 - 1.0)
    assert c.newly_missed == ["u2"]  # u5 was a hit as a dent, is a miss as a scratch: not counted
    assert c.newly_caught == []
    assert c.regression_p == pytest.approx(0.5)  # P(X <= 0), X ~ Bin(1, 1/2)


def test_compare_bucket_with_equal_flips():
    c = _results(_baseline())["dent"].comparison
    assert (c.shared, c.added) == (3, 0)
    assert c.baseline_recall == pytest.approx(1 / 3)  # u8
    assert c.delta == pytest.approx(0.0)  # now u3
    assert c.newly_missed == ["u8"] and c.newly_caught == ["u3"]
    assert c.regression_p == pytest.approx(0.75)  # P(X <= 1), X ~ Bin(2, 1/2)


def test_compare_bucket_with_nothing_shared():
    c = _results(_baseline())["fresh"].comparison
    assert (c.shared, c.added) == (0, 2)
    assert c.baseline_recall is None and c.delta is None
    assert c.newly_missed == [] and c.newly_caught == []
    assert c.regression_p == 1.0


def test_no_baseline_no_comparison():
    for r in _results(None).values():
        assert r.comparison is None


def test_bucket_results_counts_and_missed_in_dataset_order():
    results = _results(_baseline())
    assert results["all"].missed == ["u2", "u4", "u5", "u8"]
    assert results["all"].missed_paths == ["img/u2.png", "img/u4.png", "img/u5.png", "img/u8.png"]
    assert results["all"].ci_low == pytest.approx(scipy_low(4, 8), rel=1e-9)


def test_compare_feeds_judge():
    # all: 4/6 -> 3/6 on shared units, a drop of 1/6 with p = 0.5
    r = _results(_baseline())["all"]
    assert judge(drop_only(0.1), r, ALPHA, CONFIDENCE).outcome == INCONCLUSIVE
    assert judge(drop_only(0.1), r, 1.0, CONFIDENCE).outcome == REGRESSED
    assert judge(drop_only(0.2), r, ALPHA, CONFIDENCE).outcome == PASSED


def test_baseline_recall_counts_every_shared_miss_not_only_flips():
    # 4 shared units, baseline missed 2 (u3 u4); u4 still missed, u3 now caught
    frame = _frame()
    baseline = _baseline()
    dent = bucket_results(frame, _buckets(frame), "ok", CONFIDENCE, {}, 10, baseline)["dent"].comparison
    before_hits = sum(1 for u in UNITS if u[1] == "dent" and u[3] == "dent" and not u[4])
    assert dent.baseline_recall == pytest.approx(before_hits / dent.shared)


# --- precision counts reach the class buckets and "all" ----------------------------------------


def _class_setup():
    from pytest_erran.analysis.buckets import build_buckets
    from pytest_erran.config import BucketSpec

    frame = _frame().assign(tags=[()] * len(UNITS))
    buckets = build_buckets(frame, ("ok", "scratch", "dent"), "ok", (BucketSpec("fresh", tag="x"),))
    counts = {"scratch": PrecisionCounts(3, 1, ["a.png"]), "dent": PrecisionCounts(1, 2, ["b.png", "c.png"])}
    counts["all"] = PrecisionCounts(4, 3, ["a.png", "b.png", "c.png"])  # as evaluate._with_hits builds it
    return bucket_results(frame, buckets, "ok", CONFIDENCE, counts, 10, None)


def test_precision_counts_reach_class_buckets():
    results = _class_setup()
    assert (results["scratch"].true_positives, results["scratch"].false_positives) == (3, 1)
    assert results["scratch"].precision == pytest.approx(0.75)
    assert results["dent"].fp_per_image == pytest.approx(2 / 10)
    assert results["fresh"].true_positives is None and results["fresh"].precision is None


def test_precision_counts_reach_the_all_bucket():
    results = _class_setup()
    assert (results["all"].true_positives, results["all"].false_positives) == (4, 3)
    assert results["all"].precision == pytest.approx(4 / 7)
    assert results["all"].fp_per_image == pytest.approx(3 / 10)
    assert results["all"].false_positive_images == ["a.png", "b.png", "c.png"]


def test_fp_per_image_on_all_fails_when_there_are_too_many_false_positives():
    verdict = judge(Requirement("all", "fp_per_image", 0.1), _class_setup()["all"], ALPHA, CONFIDENCE)
    assert verdict.outcome == FAILED and not verdict.passed
