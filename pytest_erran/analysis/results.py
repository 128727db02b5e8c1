"""Per-bucket results: positives, hits, recall and interval; paired flips against a baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..units import PrecisionCounts
from ..vocabulary import METRICS, BucketKind, Metric
from .baseline import Baseline
from .buckets import Bucket, positive_mask
from .metrics import regression_p, wilson


@dataclass
class Comparison:
    """This bucket against the baseline, over the units both runs share."""

    shared: int  # positives present in both runs
    added: int  # positives of this run the baseline did not have
    baseline_recall: float | None
    delta: float | None  # recall change on the shared units
    newly_missed: list[str]
    newly_caught: list[str]
    regression_p: float


@dataclass
class BucketResult:
    name: str
    positives: int
    hits: int
    ci_low: float
    ci_high: float
    missed: list[str]  # unit ids, in dataset order
    missed_paths: list[str] = field(default_factory=list)
    kind: BucketKind = BucketKind.CUSTOM
    # precision side, for class buckets and "all": predictions of the class that were right/wrong
    true_positives: int | None = None
    false_positives: int | None = None
    images: int | None = None
    false_positive_images: list[str] = field(default_factory=list)
    comparison: Comparison | None = None

    @property
    def recall(self) -> float | None:
        return self.hits / self.positives if self.positives else None

    @property
    def precision(self) -> float | None:
        if self.true_positives is None or self.true_positives + self.false_positives == 0:
            return None
        return self.true_positives / (self.true_positives + self.false_positives)

    @property
    def fp_per_image(self) -> float | None:
        if self.false_positives is None or not self.images:
            return None
        return self.false_positives / self.images


def bucket_results(units: pd.DataFrame, buckets: dict[str, Bucket], negative: str | None,
                   confidence: float, precision_counts: dict[str, PrecisionCounts], images: int,
                   baseline: Baseline | None) -> dict[str, BucketResult]:
    """`units` carries `_hit`; `precision_counts` maps a class (and "all") to its counts."""
    labels = units["label"].to_numpy()
    positive = positive_mask(units, negative)
    hit = units["_hit"].to_numpy(bool)
    ids = units["id"].to_numpy()
    paths = units["_display"].to_numpy()
    results = {}
    for name, bucket in buckets.items():
        members = bucket.mask & positive
        n = int(members.sum())
        hits = int((members & hit).sum())
        missed = members & ~hit
        low, high = wilson(hits, n, confidence)
        # Predictions belong to a class: precision exists on the buckets its metric names.
        counts = precision_counts.get(bucket.name) if bucket.kind in METRICS[Metric.PRECISION].buckets else None
        results[name] = BucketResult(
            name=name, positives=n, hits=hits, ci_low=low, ci_high=high,
            missed=ids[missed].tolist(), missed_paths=paths[missed].tolist(), kind=bucket.kind,
            true_positives=counts.true_positives if counts else None,
            false_positives=counts.false_positives if counts else None,
            images=images if counts else None,
            false_positive_images=counts.false_positive_images if counts else [],
            comparison=compare_units(ids[members], hit[members], labels[members], baseline) if baseline else None,
        )
    return results


def compare_units(ids: np.ndarray, hit: np.ndarray, labels: np.ndarray, baseline: Baseline) -> Comparison:
    """These units (ids, hit now, true labels) against the baseline's."""
    # A unit is shared when the baseline had it with the same true label: a relabelled unit is
    # a different question, so it counts as added.
    known = np.fromiter((baseline.units.get(i) == label for i, label in zip(ids, labels)), bool, len(ids))
    was_hit = np.fromiter((i not in baseline.missed for i in ids), bool, len(ids))
    shared = int(known.sum())
    newly_missed = ids[known & was_hit & ~hit].tolist()
    newly_caught = ids[known & ~was_hit & hit].tolist()
    if shared:
        before = float((known & was_hit).sum()) / shared
        delta = float((known & hit).sum()) / shared - before
    else:
        before = delta = None
    return Comparison(shared=shared, added=int(len(ids) - shared), baseline_recall=before, delta=delta,
                      newly_missed=newly_missed, newly_caught=newly_caught,
                      regression_p=regression_p(len(newly_missed), len(newly_caught)))
