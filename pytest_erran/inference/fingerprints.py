"""Fingerprints for leakage between splits: a hash of the decoded RGB pixels (identical images,
whatever their file format or name) and a 128-bit difference hash (near-identical ones).

difference hash: two 64-bit words. The first: the gray image area-averaged down to 9 x 8 pixels
(each output pixel the mean of the input pixels it covers, fractions of a pixel weighted by
their share, rounded to 1e-6 so that equal means compare equal), then per row the 8
comparisons "right neighbour brighter than left", row by row, first bit the most significant.
The second: the same on the transposed image (per column, "lower neighbour brighter than
upper"). One word alone is blind to structure along its rows: two parts with their tubes at
different heights hash alike horizontally; the vertical word tells them apart.
"""

from __future__ import annotations

import hashlib

import numpy as np

HASH_WIDTH, HASH_HEIGHT = 9, 8


def pixel_hash(pixels: np.ndarray) -> np.ndarray:
    """[2] uint64: the first 128 bits of sha256 over the array's shape and its bytes."""
    pixels = np.ascontiguousarray(pixels)
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(pixels.data)  # hashlib releases the GIL here: decode threads hash in parallel
    return np.frombuffer(digest.digest()[:16], dtype=">u8").astype(np.uint64)


def area_means(values: np.ndarray, cells: int, axis: int) -> np.ndarray:
    """`values` averaged over `cells` equal spans of `axis`, a pixel cut at a span's edge shared by
    its two spans in proportion: the whole pixels of each span summed at once (reduceat), the cut
    ones added in part. (No matrix product: see properties.gray_of.)"""
    values = np.moveaxis(np.asarray(values, np.float64), axis, 0)
    size = values.shape[0]
    edges = np.arange(cells + 1) * (size / cells)
    whole = np.floor(edges).astype(np.int64)
    column = (...,) + (None,) * (values.ndim - 1)  # per edge, broadcast over the other axes
    part = (edges - whole)[column]
    cut = part * values[np.minimum(whole, size - 1)]  # the share of the pixel an edge falls in
    if size >= cells:  # spans of at least a pixel: the whole-pixel starts increase strictly
        sums = np.add.reduceat(values, whole[:-1], axis=0) - cut[:-1] + cut[1:]
    else:  # a tiny image, stretched: every span lies inside one or two pixels
        running = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
        at_edges = running[np.minimum(whole, size)] + np.where((whole < size)[column], cut, 0)
        sums = at_edges[1:] - at_edges[:-1]
    return np.moveaxis(sums / (size / cells), 0, axis)


def _row_hash(gray: np.ndarray) -> np.uint64:
    small = np.round(area_means(area_means(gray, HASH_HEIGHT, 0), HASH_WIDTH, 1), 6)
    bits = (small[:, 1:] > small[:, :-1]).reshape(-1)
    return np.frombuffer(np.packbits(bits).tobytes(), dtype=">u8").astype(np.uint64)[0]


def difference_hash(gray: np.ndarray) -> np.ndarray:
    """[2] uint64: the horizontal and vertical difference hashes of a 2-D gray image (module doc)."""
    gray = np.asarray(gray, np.float64)
    return np.array([_row_hash(gray), _row_hash(gray.T)], np.uint64)

