"""Box columns of the units table and COCO box conversion, shared by the dev-set and predictions readers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...errors import ErranError
from ...units import BOX

CROWD_COLUMNS = ["_image_index", "label", *BOX]


# Computed for every object: metadata of these names is dropped.
UNIT_COLUMNS = {"id", "image_id", "label", *BOX, "edge_distance", "area_fraction", "tags", "image"}


def coco_boxes(bboxes: list, sources: Callable[[int], str], what: str) -> np.ndarray:
    """COCO [x, y, width, height] lists -> [N, 4] x1y1x2y2, or an error naming the entry."""
    try:
        xywh = np.array(bboxes, dtype=float) if bboxes else np.zeros((0, 4))
        shaped = xywh.shape == (len(bboxes), 4)
    except (TypeError, ValueError):
        shaped = False
    if not shaped:  # ragged or not numbers: find the culprit, one box at a time
        for i, box in enumerate(bboxes):
            try:
                fine = np.shape(np.array(box, dtype=float)) == (4,)
            except (TypeError, ValueError):
                fine = False
            if not fine:
                raise ErranError(f"{sources(i)}: bbox {box!r} is not 4 numbers; {what} boxes "
                                 "are [x, y, width, height]")
    flag = next((i for i, box in enumerate(bboxes) if any(isinstance(v, bool) for v in box)), None)
    if flag is not None:  # np.array would read JSON true as 1.0
        raise ErranError(f"{sources(flag)}: bbox {bboxes[flag]!r} holds a boolean; give 4 numbers "
                         "[x, y, width, height]")
    bad = np.flatnonzero(~np.isfinite(xywh).all(axis=1))
    if len(bad):
        raise ErranError(f"{sources(bad[0])}: bbox {bboxes[bad[0]]!r} holds a missing or "
                         "non-finite number; give 4 numbers [x, y, width, height]")
    negative = np.flatnonzero((xywh[:, 2] < 0) | (xywh[:, 3] < 0))
    if len(negative):
        raise ErranError(f"{sources(negative[0])}: bbox {bboxes[negative[0]]!r} has a negative "
                         "width or height; COCO boxes are [x, y, width, height], not corners")
    return np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
