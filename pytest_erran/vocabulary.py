"""The closed sets the config, the gate and the reports speak, and the one table of metrics.

Each value is the string users see in the config, the report and the baseline, so a StrEnum
compares equal to it and serialises as it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

ALL = "all"  # the bucket of every unit
EVERY = "*"  # what a data check (coverage of every bucket, leakage) applies to: not one bucket
AUTO_PREFIX = "auto:"  # automatic cause buckets: auto:dark, auto:edge, ...


class TaskName(StrEnum):
    CLASSIFICATION = "classification"
    DETECTION = "detection"


class Metric(StrEnum):
    RECALL = "recall"
    PRECISION = "precision"
    FP_PER_IMAGE = "fp_per_image"
    DROP = "drop"  # a max_drop-only requirement: no floor, only the baseline comparison
    COVERAGE = "coverage"  # positives in the train split (min_train, require_coverage)
    LEAKAGE = "leakage"  # images shared with another split (forbid_leakage)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    REGRESSED = "regressed"
    INCONCLUSIVE = "inconclusive"
    TOO_SMALL = "too_small"
    SKIPPED = "skipped"
    NOT_RUN = "not_run"  # its item did not run: deselected (-k, --lf, -m) or after -x stopped


class GateMode(StrEnum):
    POINT = "point"  # the floor applies to the point estimate
    LOWER_BOUND = "lower_bound"  # the floor applies to the Wilson lower bound


class BucketKind(StrEnum):
    ALL = "all"
    CLASS = "class"  # a class's own bucket: predictions have a class, so precision exists here
    CUSTOM = "custom"  # [buckets.<name>]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric means: where its threshold is configured, how it is compared, how its
    requirement id reads, and which buckets it is defined on."""

    metric: Metric
    key: str  # the [[require]] key holding its threshold
    sign: str  # ">=" for a floor, "<=" for a ceiling
    buckets: frozenset[BucketKind]
    label: str  # its prefix in the summary's "required" column (recall has none)
    counts: bool = False  # its threshold is a whole number of units

    @property
    def holds(self) -> Callable[[float, float], bool]:
        """holds(value, threshold): the comparison the requirement asks for."""
        return operator.ge if self.sign == ">=" else operator.le

    def requirement_id(self, bucket: str, threshold: float) -> str:
        # No square brackets: pytest >= 9.2 reads "[...]" in a cached node id as parameters,
        # and --lf would then skip a failing requirement (pytest-dev/pytest#15045).
        limit = f"{threshold:.0f}" if self.counts else format_threshold(threshold)
        if bucket == EVERY:  # a data check, not a bucket's: 'coverage>=1', 'leakage<=0'
            return f"{self.metric}{self.sign}{limit}"
        return f"{self.metric}({bucket}){self.sign}{limit}"

    @property
    def applies_to_custom_buckets(self) -> bool:
        return BucketKind.CUSTOM in self.buckets


_EVERY_BUCKET = frozenset(BucketKind)
_PREDICTED_CLASSES = frozenset({BucketKind.ALL, BucketKind.CLASS})

METRICS: dict[Metric, MetricSpec] = {
    Metric.RECALL: MetricSpec(Metric.RECALL, "recall", ">=", _EVERY_BUCKET, ""),
    Metric.PRECISION: MetricSpec(Metric.PRECISION, "precision", ">=", _PREDICTED_CLASSES, "prec"),
    Metric.FP_PER_IMAGE: MetricSpec(Metric.FP_PER_IMAGE, "max_fp_per_image", "<=", _PREDICTED_CLASSES,
                                    "fp/img"),
    Metric.DROP: MetricSpec(Metric.DROP, "max_drop", "<=", _EVERY_BUCKET, "drop"),
    Metric.COVERAGE: MetricSpec(Metric.COVERAGE, "min_train", ">=", _EVERY_BUCKET, "train", counts=True),
    Metric.LEAKAGE: MetricSpec(Metric.LEAKAGE, "forbid_leakage", "<=", frozenset(), "leakage", counts=True),
}
FLOOR_METRICS = (Metric.RECALL, Metric.PRECISION, Metric.FP_PER_IMAGE)  # one per [[require]]


def format_threshold(value: float) -> str:
    """0.9 -> '0.90', 0.955 -> '0.955': two decimals unless that would round the value."""
    short = f"{value:.2f}"
    return short if float(short) == value else repr(float(value))
