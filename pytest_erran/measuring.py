"""The measuring stage: which images a run measures (properties, fingerprints, objects'
properties) and where the values come from: the cache, the model's own decode threads, or a
decode-only pass (a predictions file, predictions from the cache, the other splits' images).

Measurements depend on the images alone, so they are cached apart from any model's predictions:
a new model does not measure them again.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Settings
from .errors import ErranError
from .inference.cache import cache_key, cached_arrays, files_fingerprint, peek_arrays
from .inference.measurements import VERSION, Collector, Measurements, Regions, measure_all
from .inference.properties import NAMES, OBJECT_NAMES, referenced
from .tasks.dataset import Dataset, check_images_exist
from .units import BOX, IMAGE_INDEX
from .vocabulary import AUTO_PREFIX

MEASURED = NAMES + OBJECT_NAMES


class Measuring:
    def __init__(self, settings: Settings, dataset: Dataset, cache_dir: Path | None,
                 notes: list[str] | None = None):
        self.settings, self.dataset, self.cache_dir = settings, dataset, cache_dir
        self.notes = notes  # a cache that cannot be written is skipped with one line here
        units = dataset.units
        self.boxes = all(c in units.columns for c in BOX)
        wheres = [b.where for b in settings.buckets if b.where]
        self.blur_bucket = "blur" in referenced(wheres, units.columns, MEASURED)
        auto = [r.bucket for r in settings.requirements if r.bucket.startswith(AUTO_PREFIX)]
        # the gallery bins recall by every property, so it needs them too
        self.evaluated = bool(referenced(wheres, units.columns, MEASURED) or auto or settings.analyzing
                              or settings.forbid_leakage or settings.html is not None)
        others = dataset.other_images
        calibrating = any(name[len(AUTO_PREFIX):] not in settings.auto for name in auto)
        self.others = (others is not None and len(others) > 0
                       and (settings.analyzing or settings.forbid_leakage or calibrating))
        # hashes only when there are other splits' images to compare with
        self.fingerprints = others is not None and len(others) > 0 and (settings.analyzing or settings.forbid_leakage)
        self.measured: Measurements | None = None  # of the evaluated images
        self.other_measured: Measurements | None = None
        self.collector: Collector | None = None
        if self.evaluated:
            images = dataset.images
            self._evaluated_key = _keyer("evaluated", dataset.sha256, images, self._regions(units),
                                         self.fingerprints, settings.exif)
            self.measured = self._lookup(self._evaluated_key, len(images), len(self._regions(units)))
            if self.measured is None:
                self.collector = Collector(len(images), self._regions(units), self.fingerprints)

    @property
    def dhash(self) -> np.ndarray | None:
        return self.measured.dhash if self.fingerprints and self.measured is not None else None

    @property
    def pixels(self) -> np.ndarray | None:
        return self.measured.pixels if self.fingerprints and self.measured is not None else None

    @property
    def observe(self):
        """For the model's decode threads, while measurements are still to be made."""
        return None if self.collector is None else self.collector.observe

    @property
    def pending(self) -> bool:
        """Measurements of the evaluated images still to be made (during or after prediction)."""
        return self.evaluated and self.measured is None

    def _regions(self, units: pd.DataFrame) -> Regions:
        if not self.boxes or not len(units):
            return Regions.none()
        return Regions(units[IMAGE_INDEX].to_numpy(np.int64), units[BOX].to_numpy(np.float64))

    def _lookup(self, key, images: int, regions: int) -> Measurements | None:
        if self.cache_dir is None:
            return None
        found = peek_arrays(self.cache_dir, key())
        return None if found is None else Measurements.from_arrays(found, images, regions)

    def _stored(self, key, images: pd.DataFrame, regions: Regions, ready: Measurements | None,
                threads: int) -> Measurements:
        def compute() -> dict[str, np.ndarray]:
            found = ready or measure_all(images["_path"].tolist(), images["_source"].tolist(), regions, threads,
                                         self.fingerprints, self.settings.exif)
            return found.arrays()

        def valid(arrays: dict[str, np.ndarray]) -> bool:  # shapes, and no infinities (blur is NaN under 3x3 px)
            found = Measurements.from_arrays(arrays, len(images), len(regions))
            return found is not None and not any(np.isinf(a).any() for a in (found.images, found.regions))

        arrays, _ = cached_arrays(self.cache_dir, key, compute, valid=valid, notes=self.notes)
        return Measurements.from_arrays(arrays, len(images), len(regions)) or \
            Measurements.from_arrays(compute(), len(images), len(regions))

    def finish(self, threads: int) -> None:
        """Measure what the model's decode did not (all of it after a cache hit on predictions)."""
        dataset = self.dataset
        if self.pending:
            ready = self.collector.result if self.collector.complete else None
            self.measured = self._stored(self._evaluated_key, dataset.images, self._regions(dataset.units),
                                         ready, threads)
            self.collector = None
        if self.blur_bucket and self.measured is not None:  # NaN would silently leave it out of every blur bucket
            tiny = np.flatnonzero(np.isnan(self.measured.images[:, NAMES.index("blur")]))
            if len(tiny):
                row = tiny[0]
                raise ErranError(f"{dataset.images['_source'].iloc[row]}: image {dataset.images['_path'].iloc[row]} "
                                 "is too small to measure `blur`, which needs at least 3 x 3 pixels (after the "
                                 "longer side is scaled down to 128); a `where` uses blur: remove the image, "
                                 "or the blur bucket")
        if self.others and self.other_measured is None:
            images, units = dataset.other_images, dataset.other_units
            check_images_exist(images)
            key = _keyer("others", dataset.sha256, images, self._regions(units), self.fingerprints,
                         self.settings.exif)
            self.other_measured = self._stored(key, images, self._regions(units), None, threads)

    def add_columns(self, *evaluated_units: pd.DataFrame) -> None:
        """Properties as columns (a column the dev set already has wins) of the images, of
        `evaluated_units` (the dataset's units and copies of it), and of the other splits'."""
        if self.measured is not None:
            _columns(self.dataset.images, [self.dataset.units, *evaluated_units], self.measured, self.boxes)
        if self.other_measured is not None:
            _columns(self.dataset.other_images, [self.dataset.other_units], self.other_measured, self.boxes)


def _columns(images: pd.DataFrame, tables: list[pd.DataFrame], measured: Measurements, boxes: bool) -> None:
    for k, name in enumerate(NAMES):
        if name not in images.columns:
            images[name] = measured.images[:, k]
    for units in tables:
        rows = units[IMAGE_INDEX].to_numpy()
        for k, name in enumerate(NAMES):
            if name not in units.columns:
                units[name] = measured.images[rows, k]
        if boxes:
            for k, name in enumerate(OBJECT_NAMES):
                if name not in units.columns:
                    units[name] = measured.regions[:, k]


def _keyer(part: str, data_sha256: str, images: pd.DataFrame, regions: Regions, fingerprints: bool,
           exif: str):
    """The cache key, made once and only when asked (it stats every image)."""
    import hashlib

    @lru_cache(maxsize=1)
    def key() -> str:
        return cache_key(kind="measurements", version=VERSION, part=part, fingerprints=fingerprints,
                         exif=exif, data=data_sha256,
                         ids=images["id"].tolist(), files=files_fingerprint(images["_path"].tolist()),
                         regions=hashlib.sha256(regions.digest()).hexdigest())

    return key
