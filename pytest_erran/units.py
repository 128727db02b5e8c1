"""The tables every stage shares, and what a task hands the shared stages.

Recall counts *units*: an image for classification, a ground-truth object for detection. A task
loads its dev set into two tables, and after prediction returns one frozen `TaskResult`; the
buckets, metrics, gate, baselines and reports read only these, never a task's own types.

images: one row per evaluated image, in dataset order

    id             str     the image's id (manifest `id`, else its path; COCO image id)
    image          str     its path as the dev set writes it (relative to the dev-set file)
    _path          str     absolute, normalised path on disk
    _source        str     where it is defined, for messages ("dev.csv line 7", "dev.json image 3")
    tags           tuple   of str
    width, height  float   detection: the image's size in pixels (given, or read from its header)
    label          str     classification: the true class
    ...                    the dev set's own metadata columns (numbers where every value is one)

units: one row per unit, in dataset order; a task's loader fills the first block, its predict
step adds the second, the pipeline may add image properties and hook columns

    id             str     the unit's id: stable across runs, what baselines pair units by
    image_id       str     id of its image
    label          str     the true class
    tags           tuple   of str (an object also carries its image's tags)
    _image_index   int     its image's row in `images`
    _source        str     where it is defined, for messages
    _display       str     how reports show it: "images/a.png", "images/a.png #17" (an object)
    x1, y1, x2, y2 float   detection: the box in image pixels (continuous coordinates)
    edge_distance  float   detection: min(x1/W, y1/H, (W-x2)/W, (H-y2)/H)
    area_fraction  float   detection: box area / image area
    ...                    metadata: the image's columns, and (detection) the object's own keys

    _hit           bool    added by predict: the unit was found (classification: predicted ==
                           label; detection: matched by a prediction, COCOeval's greedy rule)
    _pred          str     classification: the predicted class after class thresholds
    _score         float   classification: the model's probability of its top class (NaN
                           when the model or the predictions file gives labels only)

    brightness, contrast, blur   float   image properties, measured when a `where`, an automatic
                                         bucket or the error analysis needs them
    object_brightness, object_contrast   float   detection: the object's own box against its
                                         surroundings (docs/analysis.md), measured likewise

Internal columns start with "_" so that a dev set's own columns can never collide with them;
a manifest that has one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pandas as pd

HIT, PRED, SCORE = "_hit", "_pred", "_score"
IMAGE_INDEX, SOURCE, DISPLAY, PATH = "_image_index", "_source", "_display", "_path"
BOX = ["x1", "y1", "x2", "y2"]


class Match(IntEnum):
    """What matching made of one detection."""

    BELOW_THRESHOLD = 0  # its score is under its class's threshold: not a prediction
    TRUE_POSITIVE = 1  # it matched a ground-truth object
    FALSE_POSITIVE = 2  # it matched nothing
    IGNORED = 3  # it fell on a crowd box (COCO iscrowd): neither right nor wrong


@dataclass(frozen=True)
class PrecisionCounts:
    """The predictions of one class (or of all): right, wrong, and where the wrong ones are."""

    true_positives: int
    false_positives: int
    false_positive_images: list[str]  # one entry per false positive, in dataset order


@dataclass(frozen=True)
class ClassScores:
    """Classification's predictions as the model gave them, one row per unit (image)."""

    index: np.ndarray  # [N] int64: argmax class index, before class thresholds
    scores: np.ndarray | None  # [N, C] float32 probabilities; None for label-only outputs


@dataclass(frozen=True)
class Detections:
    """Detection's predictions after matching, one row per predicted box (any score)."""

    image: np.ndarray  # [P] int64: row in `images`
    label: np.ndarray  # [P] int64: class index
    score: np.ndarray  # [P] float32
    box: np.ndarray  # [P, 4] float32: x1, y1, x2, y2 in image pixels
    match: np.ndarray  # [P] int8: a `Match` value
    unit: np.ndarray  # [P] int64: row in `units` it matched, -1 for none
    iou: np.ndarray  # [P] float64: IoU with that unit, NaN for none
    # [P] int8: a `Match` value when every prediction counts, whatever its score: what precision/
    # recall curves and AP need. At or above its class's threshold it equals `match` (the greedy
    # rule takes predictions best score first, so a higher threshold keeps a prefix of it).
    match_any_score: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)


@dataclass(frozen=True)
class TaskResult:
    """What every task's predict step returns to the shared stages."""

    units: pd.DataFrame  # the dataset's units with `_hit` (and `_pred`, `_score`)
    precision: dict[str, PrecisionCounts]  # per class, and "all"; classification: defect classes
    predicted: int  # images run through a model this time (0: from cache, or a predictions file)
    predictions: ClassScores | Detections
