"""The numbers of one requirement as JUnit test-case properties, for CI test tabs (GitLab,
Jenkins, Azure) that show a test's properties from --junitxml."""

from __future__ import annotations

from ..vocabulary import Metric


def requirement_properties(verdict, result) -> list[tuple[str, str]]:
    """(name, value) pairs for one requirement's test case: its bucket's recall counts and
    interval whatever the metric, the measured value and the threshold, and with a baseline the
    paired comparison. Numbers are written in full (repr), a missing one as an empty string."""
    requirement = verdict.requirement
    threshold = requirement.max_drop if requirement.metric == Metric.DROP else requirement.threshold
    properties = [("bucket", requirement.bucket), ("metric", str(requirement.metric)),
                  ("value", _text(verdict.value)), ("threshold", _text(threshold)),
                  ("outcome", str(verdict.outcome)),
                  ("positives", _text(result.positives)), ("hits", _text(result.hits)),
                  ("ci_low", _text(result.ci_low)), ("ci_high", _text(result.ci_high))]
    if result.true_positives is not None:
        properties += [("true_positives", _text(result.true_positives)),
                       ("false_positives", _text(result.false_positives))]
    comparison = result.comparison
    if comparison is not None:
        properties += [("baseline_value", _text(comparison.baseline_recall)), ("delta", _text(comparison.delta)),
                       ("newly_missed", _text(len(comparison.newly_missed))),
                       ("newly_caught", _text(len(comparison.newly_caught))),
                       ("regression_p", _text(comparison.regression_p))]
    return properties


def _text(value) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)
