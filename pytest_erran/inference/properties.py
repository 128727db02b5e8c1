"""Image properties for buckets such as "too dark" or "blurry", measured on the image itself.

On the gray image (0.2125 R + 0.7154 G + 0.0721 B) resized so its longer side is at most
128 px: brightness = mean (0-255), contrast = standard deviation, blur = variance of the 3x3
Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] over interior pixels (low = blurry).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from .images import open_image

NAMES = ("brightness", "contrast", "blur")
GRAY = np.array([0.2125, 0.7154, 0.0721])
MAX_SIDE = 128


def referenced(wheres: list[str], columns) -> list[str]:
    """The properties some `where` mentions and the data does not already have as a column."""
    text = " ".join(wheres)
    return [name for name in NAMES if name not in columns and re.search(rf"\b{name}\b", text)]


def measure(image: Image.Image) -> tuple[float, float, float]:
    rgb = image.convert("RGB")
    longer = max(rgb.size)
    if longer > MAX_SIDE:
        scale = MAX_SIDE / longer
        size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        rgb = rgb.resize(size, Image.BILINEAR)
    gray = np.asarray(rgb, np.float64) @ GRAY
    inner = gray[1:-1, 1:-1]
    laplacian = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * inner
    blur = float(laplacian.var()) if laplacian.size else float("nan")  # no interior below 3x3
    return float(gray.mean()), float(gray.std()), blur


def measure_all(paths: list[str], sources: list[str], threads: int, exif: str = "apply") -> np.ndarray:
    """[N, 3] brightness, contrast, blur of every image, decoded in `threads` threads (upright
    by its EXIF orientation when `exif` is "apply")."""
    values = np.empty((len(paths), len(NAMES)), np.float64)

    def one(i: int) -> None:
        with open_image(paths[i], sources[i], exif) as image:
            values[i] = measure(image)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="erran-properties") as pool:
        for future in [pool.submit(one, i) for i in range(len(paths))]:
            future.result()
    return values


class Collector:
    """Properties measured as the model's decode threads open each image (`inspect(i, image)`),
    so that a run which decodes every image anyway does not decode them a second time."""

    def __init__(self, count: int):
        self.values = np.full((count, len(NAMES)), np.nan)
        self.seen = np.zeros(count, bool)

    def __call__(self, index: int, image: Image.Image) -> None:
        self.values[index] = measure(image)
        self.seen[index] = True

    @property
    def complete(self) -> bool:
        return bool(self.seen.all())
