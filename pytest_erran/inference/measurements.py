"""Everything measured on an image's pixels in one pass: its properties (brightness, contrast,
blur), its fingerprints (pixel hash, difference hash) and the properties of regions on it (a
detection's objects: object_brightness, object_contrast).

Measured either in the model's own decode threads, from the image already decoded for the model
(`Collector.observe`, handed to run_batches), or, when no model decodes the images (a
predictions file, cached predictions, images of other splits), by `measure_all` in a decode-only
pass. Both call `measure_image`, so the values are the same whichever path made them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .fingerprints import difference_hash, pixel_hash
from .images import open_image
from .properties import NAMES, OBJECT_NAMES, object_properties, of_gray, small_gray

VERSION = 2  # part of the cache key: bump when a formula changes


@dataclass
class Regions:
    """Boxes to measure on each image: region k lies on image `image[k]`."""

    image: np.ndarray  # [K] int64 row of the image
    box: np.ndarray  # [K, 4] float64 x1, y1, x2, y2 in image pixels

    @classmethod
    def none(cls) -> "Regions":
        return cls(np.zeros(0, np.int64), np.zeros((0, 4)))

    def __len__(self) -> int:
        return len(self.image)

    def of_images(self, count: int) -> list[np.ndarray]:
        """Per image, the indices of its regions."""
        order = np.argsort(self.image, kind="stable")
        bounds = np.searchsorted(self.image[order], np.arange(count + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(count)]

    def digest(self) -> bytes:
        return np.ascontiguousarray(self.image, np.int64).tobytes() + \
            np.ascontiguousarray(self.box, np.float64).tobytes()


@dataclass
class Measurements:
    images: np.ndarray  # [N, 3] brightness, contrast, blur
    dhash: np.ndarray  # [N, 2] uint64 difference hash (horizontal, vertical)
    pixels: np.ndarray  # [N, 2] uint64 pixel hash
    regions: np.ndarray  # [K, 2] object_brightness, object_contrast

    @classmethod
    def empty(cls, images: int, regions: int) -> "Measurements":
        return cls(np.full((images, len(NAMES)), np.nan), np.zeros((images, 2), np.uint64),
                   np.zeros((images, 2), np.uint64), np.full((regions, len(OBJECT_NAMES)), np.nan))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"images": self.images, "dhash": self.dhash, "pixels": self.pixels, "regions": self.regions}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], images: int, regions: int) -> "Measurements | None":
        """The stored arrays, or None when they do not have the expected shapes (stale entry)."""
        try:
            found = cls(arrays["images"], arrays["dhash"], arrays["pixels"], arrays["regions"])
        except KeyError:
            return None
        shapes = (found.images.shape, found.dhash.shape, found.pixels.shape, found.regions.shape)
        if shapes != ((images, len(NAMES)), (images, 2), (images, 2), (regions, len(OBJECT_NAMES))):
            return None
        return found


def measure_image(image: Image.Image, boxes: np.ndarray, fingerprints: bool = True
                  ) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray, np.ndarray]:
    """(properties, difference hash, pixel hash, [k, 2] region properties) of one image; the
    hashes are 0 without `fingerprints` (no other split to compare with: not worth their time)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    gray = small_gray(rgb)
    dhash, hashed = np.zeros(2, np.uint64), np.zeros(2, np.uint64)
    regions = np.zeros((0, len(OBJECT_NAMES)))
    if fingerprints or len(boxes):
        pixels = np.asarray(rgb)
        if len(boxes):
            regions = object_properties(pixels, boxes)
        if fingerprints:
            dhash, hashed = difference_hash(gray), pixel_hash(pixels)
    return of_gray(gray), dhash, hashed, regions


class Collector:
    """Measures each image the model's decode threads hand it; `observe(i, image)` is called
    once per image, from any thread, each writing its own rows."""

    def __init__(self, count: int, regions: Regions, fingerprints: bool = True):
        self.result = Measurements.empty(count, len(regions))
        self.fingerprints = fingerprints
        self._boxes = regions.box
        self._of_image = regions.of_images(count)
        self._seen = np.zeros(count, bool)

    def observe(self, i: int, image: Image.Image) -> None:
        rows = self._of_image[i]
        values, dhash, pixels, regions = measure_image(image, self._boxes[rows], self.fingerprints)
        self.result.images[i] = values
        self.result.dhash[i] = dhash
        self.result.pixels[i] = pixels
        self.result.regions[rows] = regions
        self._seen[i] = True

    @property
    def complete(self) -> bool:
        """Every image was measured: the model decoded them all (not a cache hit)."""
        return bool(self._seen.all())


def measure_all(paths: list[str], sources: list[str], regions: Regions, threads: int,
                fingerprints: bool = True, exif: str = "apply") -> Measurements:
    """Every image decoded once, in `threads` threads, for its measurements alone; turned upright
    by its EXIF orientation as the model's decode does (`exif`)."""
    collector = Collector(len(paths), regions, fingerprints)

    def one(i: int) -> None:
        with open_image(paths[i], sources[i], exif) as image:
            collector.observe(i, image)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="erran-measure") as pool:
        for future in [pool.submit(one, i) for i in range(len(paths))]:
            future.result()
    return collector.result
