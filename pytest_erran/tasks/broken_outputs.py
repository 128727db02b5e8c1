"""A model output holding NaN or infinity is a broken model, never a prediction: argmax over a
NaN column picks that column, so every image would be "predicted" as its class and the bucket
would pass. Every task checks what it reads from a model before using it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ErranError


class NonFinite(ValueError):
    """`what` (scores, boxes...) holds `value` for the image at `row` of the batch."""

    def __init__(self, what: str, value: float, row: int):
        super().__init__(f"{what} hold {value}")
        self.what, self.value, self.row = what, value, row


def check_finite(values, what: str, row: int | None = None) -> None:
    """Raise NonFinite for the first image (axis 0, or `row` for one image's values) with a
    value that is NaN or infinite."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc" or values.size == 0:
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    first = np.argwhere(~finite)[0]
    value = float(values[tuple(first)])
    raise NonFinite(what, value, int(first[0]) if row is None else row)


def broken_model(where: str, error: NonFinite, images: pd.DataFrame, start: int) -> ErranError:
    """The error for `error`, raised on the batch whose first image is row `start` of `images`."""
    row = start + error.row
    return ErranError(f"{where}: {error.what} hold {error.value} for image {images['image'].iloc[row]} "
                      f"({images['_source'].iloc[row]}); a model's outputs must be finite numbers, "
                      "and NaN or infinity is not a prediction: fix the model or its export "
                      "(or `[preprocess]`, if inputs it was not trained on make it overflow)")
