"""Leakage between splits: an evaluated image whose decoded pixels are identical to another
split's image (same pixel hash), or near-identical (difference hashes within
`near_duplicate_bits` bits). Listed by the paths the dev set writes.

The distance of two difference hashes is the number of their 128 bits that differ. Near pairs
are found without comparing every pair: two hashes within k bits have horizontal words within k
bits, which agree exactly on at least one of k + 1 disjoint blocks of bits (pigeonhole), so
only pairs sharing a block are compared.
"""

from __future__ import annotations

import numpy as np

from ..config import Requirement
from ..vocabulary import Outcome
from .gate import Verdict

SHOWN = 5


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differing bits of [n, 2] hashes, row by row."""
    x = np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x).sum(axis=-1).astype(np.int64)
    return np.unpackbits(x[..., None].view(np.uint8), axis=-1).sum(axis=(-2, -1)).astype(np.int64)


def _block_pairs(a: np.ndarray, b: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (i, j) pairs: a[i] and b[j] agree on one of bits + 1 blocks."""
    blocks = min(bits + 1, 64)
    edges = np.linspace(0, 64, blocks + 1).astype(int)
    found_i, found_j = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = np.uint64((1 << (hi - lo)) - 1)
        ka = (a >> np.uint64(lo)) & mask
        kb = (b >> np.uint64(lo)) & mask
        order = np.argsort(kb, kind="stable")
        start = np.searchsorted(kb[order], ka, side="left")
        count = np.searchsorted(kb[order], ka, side="right") - start
        i = np.repeat(np.arange(len(a)), count)
        offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        found_i.append(i)
        found_j.append(order[np.repeat(start, count) + offsets])
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(found_i), np.concatenate(found_j)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def duplicates(evaluated_paths: list[str], evaluated_dhash: np.ndarray, evaluated_pixels: np.ndarray,
               split: str, other_paths: list[str], other_splits: list[str], other_dhash: np.ndarray,
               other_pixels: np.ndarray, bits: int) -> list[dict]:
    """Every (evaluated image, other split's image) pair that is identical or near-identical."""
    out = []
    if not len(evaluated_paths) or not len(other_paths):
        return out
    evaluated_dhash, other_dhash = np.asarray(evaluated_dhash, np.uint64), np.asarray(other_dhash, np.uint64)
    i, j = _block_pairs(evaluated_dhash[:, 0], other_dhash[:, 0], bits)
    distance = _hamming(evaluated_dhash[i], other_dhash[j])
    near = distance <= bits
    i, j, distance = i[near], j[near], distance[near]
    # identical pixels can only come with identical difference hashes, which block 0 catches
    same = (evaluated_pixels[i] == other_pixels[j]).all(axis=1)
    for a, b, d, identical in zip(i.tolist(), j.tolist(), distance.tolist(), same.tolist()):
        out.append({"kind": "identical" if identical else "near", "image": evaluated_paths[a], "split": split,
                    "other": other_paths[b], "other_split": other_splits[b], "distance": d})
    out.sort(key=lambda e: (e["kind"] != "identical", e["distance"], e["image"], e["other"]))
    return out


def describe(entry: dict) -> str:
    how = "identical to" if entry["kind"] == "identical" else f"near-identical ({entry['distance']} bits) to"
    return f"{entry['image']} is {how} {entry['other']} ({entry['other_split']})"


def verdict(requirement: Requirement, found: list[dict], split: str) -> Verdict:
    """'leakage<=0': no evaluated image has a copy in another split."""
    images = sorted({e["image"] for e in found})
    if not images:
        return Verdict(requirement, 0.0, True, Outcome.PASSED, f"no image of {split} has a copy in another split")
    listed = "; ".join(describe(e) for e in found[:SHOWN])
    more = f" ... ({len(found)} pairs in all)" if len(found) > SHOWN else ""
    return Verdict(requirement, float(len(images)), False, Outcome.FAILED,
                   f"{len(images)} image(s) of {split} have a copy in another split: {listed}{more}; "
                   "keep every copy in one split")
