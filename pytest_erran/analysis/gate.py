"""Requirements -> verdicts: passed, failed, regressed, inconclusive or too_small."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import Requirement
from ..vocabulary import GateMode, Metric, Outcome, format_threshold
from .metrics import positives_needed, wilson
from .results import BucketResult

PASSED, FAILED, REGRESSED, INCONCLUSIVE, TOO_SMALL, SKIPPED, NOT_RUN = (
    Outcome.PASSED, Outcome.FAILED, Outcome.REGRESSED, Outcome.INCONCLUSIVE, Outcome.TOO_SMALL,
    Outcome.SKIPPED, Outcome.NOT_RUN)


@dataclass
class Verdict:
    requirement: Requirement
    value: float | None  # the measured metric the floor was applied to
    passed: bool
    outcome: Outcome
    message: str
    needed: int | None = None  # positives a too-small bucket would need
    raw_p: float | None = None  # a max_drop's regression p-value ...
    adjusted_p: float | None = None  # ... and after the family correction (Holm), when one applies

    @property
    def id(self) -> str:
        return self.requirement.id

    @property
    def headline(self) -> str:
        """'recall(dent)>=0.85 failed: recall 0.720 (36/50) < 0.85'"""
        return f"{self.id} {self.outcome}: {self.message}"

    @property
    def skipped(self) -> bool:
        """A max_drop-only requirement with nothing to compare against."""
        return self.outcome == SKIPPED

    @property
    def warning(self) -> bool:
        return self.passed and self.outcome in (INCONCLUSIVE, TOO_SMALL, SKIPPED)


def as_run(verdict: Verdict, outcome: str | None) -> Verdict:
    """The verdict as the test run saw it, given its item's pytest outcome (None: not run), so
    that the summary and the report say what the exit status says: a requirement that did not
    run is "not run", never its verdict; one that passed with a warning the run's filters made
    an error (`-W error`) failed."""
    if outcome is None:
        return Verdict(verdict.requirement, None, True, NOT_RUN,
                       "not run: deselected (-k, --lf, -m) or the run stopped before it (-x)")
    if outcome == "skipped" and verdict.outcome != SKIPPED:
        return Verdict(verdict.requirement, None, True, NOT_RUN, "not run: skipped by the test run")
    if outcome == "failed" and verdict.passed:
        return replace(verdict, passed=False, message=f"{verdict.message}; failed: this run's "
                       "warning filters make its ErranWarning an error")
    return verdict


def judge(requirement: Requirement, result: BucketResult, alpha: float, confidence: float,
          adjusted_p: float | None = None, family: int = 1) -> Verdict:
    """The floor (recall, precision, fp per image) and the baseline comparison (max_drop); a floor
    failure leads, a real regression comes next, then warnings (inconclusive, too small).
    `adjusted_p`: the drop's p-value after a correction over a family of `family` buckets."""
    floor = _floor(requirement, result, confidence)
    if requirement.max_drop is None:
        return floor
    drop = _drop(requirement, result, alpha, adjusted_p, family)
    if drop is None:
        why = _not_compared(result)
        if floor is None:
            return Verdict(requirement, None, True, SKIPPED, why)
        floor.message += f"; max_drop not checked: {why}"
        return floor
    if floor is None:
        return drop
    if not floor.passed or drop.outcome == PASSED:
        floor.message += f"; {drop.message}"
        floor.raw_p, floor.adjusted_p = drop.raw_p, drop.adjusted_p
        return floor
    drop.message = f"{floor.message}; {drop.message}"
    drop.value = floor.value
    return drop


def _not_compared(result: BucketResult) -> str:
    if result.comparison is None:
        return "no baseline to compare against yet; save one with --erran-save-baseline"
    # A baseline exists but none of this bucket's units are in it: renamed ids, replaced data.
    return (f"the baseline shares none of this bucket's {result.positives} positives (were the ids "
            "renamed or the data replaced?); save a new baseline with --erran-save-baseline")


def _floor(requirement: Requirement, result: BucketResult, confidence: float) -> Verdict | None:
    if requirement.metric == Metric.DROP:
        return None
    threshold = requirement.threshold
    shown = format_threshold(threshold)
    value = getattr(result, requirement.metric)  # recall, precision or fp_per_image
    if value is None:
        return Verdict(requirement, None, False, FAILED, f"no predictions of this class to measure "
                       f"{requirement.metric} on")
    if requirement.metric == Metric.FP_PER_IMAGE:
        ok = requirement.spec.holds(value, threshold)
        text = f"false positives per image {value:.3f} {'<=' if ok else '>'} {shown}"
        return Verdict(requirement, value, ok, PASSED if ok else FAILED, text)
    if requirement.metric == Metric.PRECISION:
        n, hits = result.true_positives + result.false_positives, result.true_positives
    else:
        n, hits = result.positives, result.hits
    low = wilson(hits, n, confidence)[0]
    point = f"{requirement.metric} {value:.3f} ({hits}/{n})"
    best_low = wilson(n, n, confidence)[0]
    lower_bound = requirement.gate == GateMode.LOWER_BOUND
    if best_low < threshold:  # even a perfect score could not show the floor is met
        needed = positives_needed(threshold, confidence)
        counted = "predictions" if requirement.metric == Metric.PRECISION else "positives"
        need = f"{needed} {counted}" if needed else f"more {counted} than any finite bucket"
        small = (f"too small to tell: with {n} {counted} even {n}/{n} leaves the "
                 f"{confidence:.0%} lower bound at {best_low:.3f} < {shown}; it would need {need}")
        if lower_bound:
            return Verdict(requirement, low, False, TOO_SMALL, f"{point}: {small}", needed=needed)
        if value < threshold:
            return Verdict(requirement, value, False, FAILED, f"{point} < {shown}; {small}", needed=needed)
        return Verdict(requirement, value, True, TOO_SMALL, f"{point} >= {shown}, but {small}",
                       needed=needed)
    if lower_bound:
        ok = low >= threshold
        return Verdict(requirement, low, ok, PASSED if ok else FAILED,
                       f"{point}: {confidence:.0%} lower bound {low:.3f} {'>=' if ok else '<'} {shown}")
    ok = value >= threshold
    return Verdict(requirement, value, ok, PASSED if ok else FAILED,
                   f"{point} {'>=' if ok else '<'} {shown}")


def _drop(requirement: Requirement, result: BucketResult, alpha: float, adjusted_p: float | None,
          family: int) -> Verdict | None:
    comparison = result.comparison
    if comparison is None or comparison.delta is None:
        return None
    drop = -comparison.delta
    raw = comparison.regression_p
    p = raw if adjusted_p is None else adjusted_p
    corrected = "" if adjusted_p is None else f", {adjusted_p:.3g} after Holm over {family} buckets"
    flips = (f"{len(comparison.newly_missed)} newly missed, {len(comparison.newly_caught)} newly caught, "
             f"p = {raw:.3g}{corrected}")
    change = (f"recall {comparison.baseline_recall:.3f} -> {comparison.baseline_recall + comparison.delta:.3f} "
              f"on {comparison.shared} shared units ({flips})")
    limit = format_threshold(requirement.max_drop)
    which = "p" if adjusted_p is None else "Holm p"

    def verdict(*args) -> Verdict:
        return Verdict(requirement, drop, *args, raw_p=raw, adjusted_p=adjusted_p)

    if drop <= requirement.max_drop + 1e-12:
        return verdict(True, PASSED, f"{change}: drop within {limit}")
    if p < alpha:
        return verdict(False, REGRESSED, f"{change}: drop {drop:.3f} > {limit} and {which} < alpha {alpha:g}")
    return verdict(True, INCONCLUSIVE,
                   f"{change}: drop {drop:.3f} > {limit} but {which} >= alpha {alpha:g}, so it may be noise")
