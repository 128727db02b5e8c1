"""Automatic cause buckets (auto:dark, auto:edge, ...) and their thresholds.

A threshold set in [auto] is used as given. An unset one is calibrated to the rig when the data
has a train split: the train split's 5th percentile of the property (95th for `bright`), so a
dark-background inspection line is not all "dark". Otherwise a documented default. A unit is in
the bucket when its value is at or below the threshold (at or above for `bright`): inclusive, so
that a calibrated edge threshold of 0 (many train objects touch the border) still holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..vocabulary import AUTO_PREFIX

# The fewest train values a percentile is calibrated on; fewer fall back to the default.
MIN_CALIBRATION = 20
RARE_DEFAULT = 0.05  # a class is rare below this share of the positives


@dataclass(frozen=True)
class AutoSpec:
    key: str  # its [auto] key; the bucket is "auto:<key>"
    column: str  # the property it thresholds
    below: bool  # members lie at or below the threshold (at or above for `bright`)
    percentile: float  # calibrated on train
    default: float
    objects: bool = False  # a property of detection objects (needs boxes)

    @property
    def bucket(self) -> str:
        return AUTO_PREFIX + self.key


SPECS = (
    AutoSpec("dark", "brightness", True, 5, 40.0),
    AutoSpec("bright", "brightness", False, 95, 215.0),
    AutoSpec("low_contrast", "contrast", True, 5, 20.0),
    AutoSpec("blurry", "blur", True, 5, 50.0),
    AutoSpec("edge", "edge_distance", True, 5, 0.02, objects=True),
    AutoSpec("small", "area_fraction", True, 5, 0.002, objects=True),
    AutoSpec("faint", "object_contrast", True, 5, 10.0, objects=True),
)
BY_BUCKET = {spec.bucket: spec for spec in SPECS}
IMAGE_COLUMNS = ("brightness", "contrast", "blur")  # measured per image, calibrated on images


@dataclass(frozen=True)
class Threshold:
    spec: AutoSpec
    value: float
    source: str  # "config", "train", or "default"
    calibrated_on: int = 0  # train values behind a calibrated threshold

    def document(self) -> dict:
        return {"bucket": self.spec.bucket, "property": self.spec.column,
                "operator": self.operator, "value": self.value, "source": self.source,
                **({"percentile": self.spec.percentile, "train_values": self.calibrated_on}
                   if self.source == "train" else {})}

    @property
    def operator(self) -> str:
        return "<=" if self.spec.below else ">="

    def mask(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, float)
        with np.errstate(invalid="ignore"):
            inside = values <= self.value if self.spec.below else values >= self.value
        return inside & ~np.isnan(values)


def available(columns) -> list[AutoSpec]:
    """The automatic buckets whose property the units have (objects only for detection)."""
    return [spec for spec in SPECS if spec.column in columns]


def names(has_boxes: bool) -> list[str]:
    return [spec.bucket for spec in SPECS if has_boxes or not spec.objects]


def thresholds(configured: dict, specs: list[AutoSpec], train: dict[str, np.ndarray] | None) -> dict[str, Threshold]:
    """bucket -> Threshold; `train` maps a property to the train split's values (None: no train)."""
    out = {}
    for spec in specs:
        if spec.key in configured:
            out[spec.bucket] = Threshold(spec, float(configured[spec.key]), "config")
            continue
        values = None if train is None else train.get(spec.column)
        values = None if values is None else np.asarray(values, float)
        values = None if values is None else values[~np.isnan(values)]
        if values is not None and len(values) >= MIN_CALIBRATION:
            out[spec.bucket] = Threshold(spec, float(np.percentile(values, spec.percentile)), "train",
                                         len(values))
        else:
            out[spec.bucket] = Threshold(spec, spec.default, "default")
    return out


def masks(units: pd.DataFrame, found: dict[str, Threshold]) -> dict[str, np.ndarray]:
    """auto bucket -> its mask over `units` (a unit without the value is in none)."""
    return {name: threshold.mask(units[threshold.spec.column].to_numpy(float))
            for name, threshold in found.items() if threshold.spec.column in units.columns}


def rare_classes(counts: dict[str, int], share: float) -> set[str]:
    """Classes holding less than `share` of all the positives counted."""
    total = sum(counts.values())
    return {cls for cls, n in counts.items() if total and n / total < share}
