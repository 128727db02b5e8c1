"""Image properties for buckets such as "too dark" or "blurry", measured on the image itself.

On the gray image (0.2125 R + 0.7154 G + 0.0721 B) resized so its longer side is at most
128 px: brightness = mean (0-255), contrast = standard deviation, blur = variance of the 3x3
Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] over interior pixels (low = blurry). The resize
box-averages k x k pixel blocks, k = longer side // 128 (PIL's reduce: exact and fast), then
bilinear for what is left (a 300 px side: blocks of 2, then 150 -> 128).

Regions (a detection's objects), on the full-resolution gray image: object_brightness = the
mean over the box's pixels, object_contrast = |that mean - the mean of the ring of width
max(2, ceil(box's shorter side / 4)) px around it| (clipped to the image; NaN without a ring).
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image


NAMES = ("brightness", "contrast", "blur")
OBJECT_NAMES = ("object_brightness", "object_contrast")
GRAY = np.array([0.2125, 0.7154, 0.0721])
MAX_SIDE = 128


def referenced(wheres: list[str], columns, names=NAMES) -> list[str]:
    """The properties some `where` mentions and the data does not already have as a column."""
    text = " ".join(wheres)
    return [name for name in names if name not in columns and re.search(rf"\b{name}\b", text)]


def measure(image: Image.Image) -> tuple[float, float, float]:
    return of_gray(small_gray(image.convert("RGB")))


def small_gray(rgb: Image.Image) -> np.ndarray:
    """The gray image the properties are measured on: longer side at most MAX_SIDE px."""
    longer = max(rgb.size)
    if longer > MAX_SIDE:
        scale = MAX_SIDE / longer
        size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        factor = longer // MAX_SIDE
        if factor >= 2:  # a bilinear resize from full size costs half a PNG decode; blocks do not
            rgb = rgb.reduce(factor)
        if rgb.size != size:
            rgb = rgb.resize(size, Image.BILINEAR)
    return gray_of(np.asarray(rgb))


def gray_of(pixels: np.ndarray) -> np.ndarray:
    """0.2125 R + 0.7154 G + 0.0721 B in float64, elementwise: a matrix product here would go to
    a multithreaded BLAS, whose threads, per image on a busy machine, cost 10x the arithmetic."""
    gray = pixels[..., 0] * GRAY[0]
    gray += pixels[..., 1] * GRAY[1]
    gray += pixels[..., 2] * GRAY[2]
    return gray


def of_gray(gray: np.ndarray) -> tuple[float, float, float]:
    """brightness, contrast, blur of a small gray image."""
    laplacian = gray[:-2, 1:-1] + gray[2:, 1:-1]
    laplacian += gray[1:-1, :-2]
    laplacian += gray[1:-1, 2:]
    laplacian -= 4 * gray[1:-1, 1:-1]
    mean, variance = _moments(gray)
    blur = _moments(laplacian)[1] if laplacian.size else float("nan")  # no interior below 3x3
    return mean, math.sqrt(variance), blur


def _moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and variance in two passes (exact for a constant image)."""
    flat = values.reshape(-1)
    mean = float(flat.sum()) / flat.size
    centred = flat - mean
    centred *= centred  # not a dot product: no BLAS threads (see gray_of)
    return mean, float(centred.sum()) / flat.size


def ring_width(width: int, height: int) -> int:
    return max(2, math.ceil(min(width, height) / 4))


def pixel_bounds(box, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixels a continuous x1, y1, x2, y2 box touches, clipped to the image, at least one."""
    x1, y1, x2, y2 = box
    c0 = min(max(int(math.floor(x1)), 0), width - 1)
    r0 = min(max(int(math.floor(y1)), 0), height - 1)
    c1 = min(max(int(math.ceil(x2)), c0 + 1), width)
    r1 = min(max(int(math.ceil(y2)), r0 + 1), height)
    return c0, r0, c1, r1


def object_properties(pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[k, 2] object_brightness, object_contrast of each box on the RGB pixels [H, W, 3]."""
    height, width = pixels.shape[:2]
    out = np.full((len(boxes), 2), np.nan)
    for k, box in enumerate(boxes):
        if not np.isfinite(box).all():
            continue
        c0, r0, c1, r1 = pixel_bounds(box, width, height)
        m = ring_width(c1 - c0, r1 - r0)
        o0, p0, o1, p1 = max(c0 - m, 0), max(r0 - m, 0), min(c1 + m, width), min(r1 + m, height)
        gray = gray_of(pixels[p0:p1, o0:o1])
        inside = gray[r0 - p0:r1 - p0, c0 - o0:c1 - o0]
        inner_sum, inner_count = float(inside.sum()), inside.size
        ring_count = gray.size - inner_count
        mean = inner_sum / inner_count
        out[k, 0] = mean
        if ring_count:
            out[k, 1] = abs(mean - (float(gray.sum()) - inner_sum) / ring_count)
    return out
