"""The review sheet for the manual step of error analysis: up to `review` misses, spread over the
ranked buckets, with what a reviewer needs to give each a cause; and reading a filled sheet back,
so its causes become tags (and buckets) in the next run.

Choice: the ranked buckets take turns, in rank order, each giving its next miss not yet on the
sheet; within a bucket the misses come in the order of a hash of their ids, so the sheet is the
same on every run and not just the first images of the dev set. When every bucket is spent, the
remaining misses follow in the same hash order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ErranError
from ..tables import read_table
from .ranking import Ranked

PROPERTY_COLUMNS = ("brightness", "contrast", "blur", "object_brightness", "object_contrast", "edge_distance",
                    "area_fraction")


def _hash_order(ids: np.ndarray) -> np.ndarray:
    keys = [hashlib.sha1(str(i).encode()).hexdigest() for i in ids]
    return np.argsort(np.asarray(keys), kind="stable")


def choose(ranked: list[Ranked], missed: np.ndarray, ids: np.ndarray, count: int) -> list[tuple[int, str]]:
    """(unit row, the bucket it was picked for) of up to `count` misses."""
    order = _hash_order(ids)
    rank_of = np.empty(len(ids), np.int64)
    rank_of[order] = np.arange(len(ids))
    queues = []
    for entry in ranked:
        rows = np.flatnonzero(entry.missed)
        queues.append((entry.name, list(rows[np.argsort(rank_of[rows], kind="stable")])))
    chosen, taken = [], set()
    while len(chosen) < count and any(queue for _, queue in queues):
        for name, queue in queues:
            while queue and queue[0] in taken:
                queue.pop(0)
            if queue and len(chosen) < count:
                row = queue.pop(0)
                taken.add(row)
                chosen.append((int(row), name))
    for row in order:
        if len(chosen) >= count:
            break
        if missed[row] and row not in taken:
            chosen.append((int(row), ""))
            taken.add(row)
    return chosen


def sheet(units: pd.DataFrame, images: pd.DataFrame, chosen: list[tuple[int, str]], prediction: np.ndarray,
          score: np.ndarray, error: np.ndarray | None, auto: dict[str, np.ndarray]) -> pd.DataFrame:
    """The rows of the sheet: id, image, label, prediction, score, (error), bucket, auto, the
    properties, and an empty `cause` for the reviewer."""
    rows = np.array([row for row, _ in chosen], dtype=np.int64)
    picked = units.iloc[rows]
    frame = pd.DataFrame({
        "id": picked["id"].astype(str).to_numpy(),
        "image": images["image"].to_numpy(object)[picked["_image_index"].to_numpy()],
        "label": picked["label"].to_numpy(object),
        "prediction": prediction[rows],
        "score": score[rows],
    })
    if error is not None:
        frame["error"] = error[rows]
    frame["bucket"] = [name for _, name in chosen]
    frame["auto"] = [";".join(name for name, mask in auto.items() if mask[row]) for row in rows]
    for column in PROPERTY_COLUMNS:
        if column in picked.columns:
            frame[column] = picked[column].to_numpy(float)
    frame["cause"] = ""
    return frame


def sheet_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def read_causes(path: Path) -> dict[str, tuple[tuple[str, ...], str]]:
    """unit id -> (the causes a reviewer wrote, ';' between several; the row); blank rows are
    skipped."""
    table, sources = read_table(path, ("id", "cause"))
    missing = [c for c in ("id", "cause") if c not in table.columns]
    if missing:
        raise ErranError(f"{path}: a review sheet needs `id` and `cause` columns (missing "
                         f"{', '.join(missing)}); write one with --erran-misses PATH")
    causes: dict[str, tuple[tuple[str, ...], str]] = {}
    for unit, text, source in zip(table["id"], table["cause"], sources):
        found = tuple(t.strip() for t in str(text).split(";") if t.strip())
        if not found:
            continue
        if unit in causes:
            raise ErranError(f"{source}: a second row for id '{unit}' (first at {causes[unit][1]}); "
                             "give each miss one row")
        causes[unit] = (found, source)
    return causes


def apply_causes(causes: dict[str, tuple[tuple[str, ...], str]], tables: list[pd.DataFrame]) -> None:
    """Add each unit's causes to its `tags` (in every table holding it: the evaluated units, the
    other splits'). An id no table holds is an error naming its row."""
    known = set()
    for units in tables:
        ids = units["id"].astype(str)
        known.update(ids)
        hit = ids.isin(causes).to_numpy()
        if hit.any():
            tags = units["tags"].to_numpy(object).copy()
            for row in np.flatnonzero(hit):
                extra = causes[ids.iloc[row]][0]
                tags[row] = tuple(tags[row]) + tuple(c for c in extra if c not in tags[row])
            units["tags"] = tags
    for unit, (_, source) in causes.items():
        if unit not in known:
            raise ErranError(f"{source}: id '{unit}' is not a unit of the dev set (of any split); "
                             "remove the row, or write a new sheet with --erran-misses PATH")
