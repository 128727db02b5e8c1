"""Classification's confusion matrix: true class by predicted class (after class thresholds)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """[C, C] counts: row = true class, column = predicted class, in `classes` order."""
    index = {c: i for i, c in enumerate(classes)}
    rows = np.fromiter((index[c] for c in labels), np.int64, len(labels))
    columns = np.fromiter((index[c] for c in predicted), np.int64, len(predicted))
    counts = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(counts, (rows, columns), 1)
    return counts
