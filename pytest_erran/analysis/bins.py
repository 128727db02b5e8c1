"""Recall by bin of a continuous property (brightness, edge distance...): where recall falls off,
without writing a bucket first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bin:
    low: float  # the bin holds values in [low, high); the last one includes its high
    high: float
    positives: int
    hits: int

    @property
    def recall(self) -> float | None:
        return self.hits / self.positives if self.positives else None


def recall_by_bins(values: np.ndarray, hit: np.ndarray, bins: int = 10) -> list[Bin]:
    """Quantile bins (deciles by default) of the positives' finite `values`; equal edges merge,
    so a property with few distinct values gets fewer bins. NaN values are in no bin."""
    values = np.asarray(values, np.float64)
    hit = np.asarray(hit, bool)
    finite = np.isfinite(values)
    values, hit = values[finite], hit[finite]
    if not len(values):
        return []
    # "lower": every edge is an observed value, so a bin boundary is exactly a value
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1), method="lower"))
    if len(edges) == 1:
        return [Bin(float(edges[0]), float(edges[0]), len(values), int(hit.sum()))]
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    positives = np.bincount(which, minlength=len(edges) - 1)
    hits = np.bincount(which, weights=hit, minlength=len(edges) - 1)
    return [Bin(float(edges[i]), float(edges[i + 1]), int(positives[i]), int(hits[i]))
            for i in range(len(edges) - 1)]
