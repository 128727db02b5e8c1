"""Fingerprints for leakage between splits: a hash of the decoded RGB pixels (identical images,
whatever their file format or name) and a 64-bit difference hash (near-identical ones).

difference hash: the gray image area-averaged down to 9 x 8 pixels (each output pixel the mean
of the input pixels it covers, fractions of a pixel weighted by their share, rounded to 1e-6 so
that equal means compare equal), then per row the 8 comparisons "right neighbour brighter than
left", row by row, first bit the most significant.
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


def area_weights(size: int, cells: int) -> np.ndarray:
    """[cells, size] weights: the share of input pixel j inside output cell i, rows sum to 1."""
    edges = np.arange(cells + 1) * (size / cells)
    left, right = np.arange(size), np.arange(1, size + 1)
    overlap = np.clip(np.minimum(right[None, :], edges[1:, None]) - np.maximum(left[None, :], edges[:-1, None]),
                      0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def difference_hash(gray: np.ndarray) -> np.uint64:
    """The 64-bit difference hash of a 2-D gray image (see the module doc)."""
    gray = np.asarray(gray, np.float64)
    small = area_weights(gray.shape[0], HASH_HEIGHT) @ gray @ area_weights(gray.shape[1], HASH_WIDTH).T
    small = np.round(small, 6)
    bits = (small[:, 1:] > small[:, :-1]).reshape(-1)
    return np.frombuffer(np.packbits(bits).tobytes(), dtype=">u8").astype(np.uint64)[0]

