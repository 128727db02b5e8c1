"""Predictions made elsewhere: a table with one row per evaluated image (classification)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ErranError
from ...tables import numbers, read_table
from ..dataset import normalise


class _Reordered:
    """sources[order[i]], looked up only for an error."""

    def __init__(self, sources: list[str], order: np.ndarray):
        self.sources, self.order = sources, order

    def __getitem__(self, i: int) -> str:
        return self.sources[self.order[i]]


def read_classification(path: Path, images: pd.DataFrame, all_ids: set[str], all_images: set[str],
                        classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicted label and score (None without a score column) per evaluated image, in order.

    Rows are matched on `id` when the file has one, else on `image` as the manifest writes it.
    Rows for images of other splits are allowed; unknown images and duplicates are errors.
    """
    table, sources = read_table(path, ("id", "image", "label"))
    key = "id" if "id" in table.columns else "image"
    if key not in table.columns or "label" not in table.columns:
        raise ErranError(f"{path}: a predictions file needs an `image` (or `id`) column and a `label` "
                         f"column; it has {', '.join(map(str, table.columns))}")
    wanted = images["id"] if key == "id" else images["image"].map(normalise)
    known = all_ids if key == "id" else {normalise(p) for p in all_images}
    keys = table[key] if key == "id" else table[key].map(normalise)
    row_of: dict[str, int] = {}
    values = keys.tolist()
    if not keys.duplicated().any() and keys.isin(list(known)).all():
        row_of = dict(zip(values, range(len(values))))  # the usual file: no row to blame
        values = []
    for row, (value, source) in enumerate(zip(values, sources)):
        if value in row_of:
            raise ErranError(f"{source}: a second prediction for {key} '{value}' (first at "
                             f"{sources[row_of[value]]}); give exactly one per image")
        if value not in known:
            how = "ids" if key == "id" else "image paths"
            raise ErranError(f"{source}: {key} '{value}' is not in the dev set; write the {how} "
                             "as the manifest does")
        row_of[value] = row
    missing = [v for v in wanted if v not in row_of]
    if missing:
        raise ErranError(f"{path}: no prediction for {len(missing)} evaluated image(s), e.g. "
                         f"{', '.join(repr(m) for m in missing[:3])}; every dev image needs one")
    order = np.fromiter((row_of[v] for v in wanted), np.int64, len(wanted))
    labels = table["label"].to_numpy(object)[order]
    blank = np.flatnonzero(labels == "")
    if len(blank):
        raise ErranError(f"{sources[order[blank[0]]]}: empty `label`; every prediction needs one")
    unknown = np.flatnonzero(~np.isin(labels, np.asarray(classes, dtype=object)))
    if len(unknown):
        raise ErranError(f"{sources[order[unknown[0]]]}: predicted label '{labels[unknown[0]]}' is not "
                         f"one of the classes {list(classes)}")
    scores = None
    if "score" in table.columns:
        # only the evaluated images' rows: rows of other splits are not read
        scores = numbers(table["score"].iloc[order], _Reordered(sources, order),
                         "{source}: `score` must be a number")
    return labels, scores
