"""Split coverage: the positives of every class and bucket in each split. A bucket with positives
in the evaluated split but fewer than `min_train` in the train split is uncovered: no model learns
what it never saw, and no retraining fixes that miss (move some of its images into train)."""

from __future__ import annotations

import numpy as np

from ..config import Requirement
from ..vocabulary import Metric, Outcome
from .gate import Verdict

SHOWN = 5


def split_coverage(evaluated: dict[str, np.ndarray], others: dict[str, np.ndarray | None],
                   evaluated_positive: np.ndarray, other_positive: np.ndarray, other_split: np.ndarray,
                   split: str, train_split: str, min_train: int, warned: set[str]) -> dict:
    """`evaluated` / `others`: bucket -> mask over the evaluated / the other splits' units (None
    where the bucket cannot be told there, e.g. a `where` on a column those rows lack)."""
    splits = sorted({split, *map(str, other_split)})
    in_split = {s: (other_split == s) & other_positive for s in splits if s != split}
    entries, uncovered = [], []
    for name, mask in evaluated.items():
        counts = {split: int((mask & evaluated_positive).sum())}
        other = others.get(name)
        for s, members in in_split.items():
            counts[s] = None if other is None else int((other & members).sum())
        train = counts.get(train_split)
        missing = (name in warned and train_split in counts and counts[split] > 0
                   and train is not None and train < min_train)
        if missing:
            uncovered.append(name)
        entries.append({"name": name, "positives": counts, "uncovered": missing})
    return {"evaluated_split": split, "train_split": train_split, "splits": splits,
            "train_found": train_split in splits, "min_train": min_train, "buckets": entries,
            "uncovered": uncovered}


def train_positives(coverage: dict | None, bucket: str) -> int | None:
    if coverage is None:
        return None
    for entry in coverage["buckets"]:
        if entry["name"] == bucket:
            return entry["positives"].get(coverage["train_split"])
    return None


def describe(coverage: dict, name: str) -> str:
    """'tube has 8 positives in dev but 0 in train'"""
    entry = next(e for e in coverage["buckets"] if e["name"] == name)
    counts = entry["positives"]
    return (f"{name} has {counts[coverage['evaluated_split']]} positives in {coverage['evaluated_split']} "
            f"but {counts[coverage['train_split']]} in {coverage['train_split']}")


def every_bucket_verdict(requirement: Requirement, coverage: dict) -> Verdict:
    """'coverage>=1': every class and bucket with evaluated positives has min_train in train."""
    need = int(requirement.threshold)  # the config's min_train, as `uncovered` counts
    short = coverage["uncovered"]
    if not short:
        return Verdict(requirement, 0.0, True, Outcome.PASSED,
                       f"every bucket with positives in {coverage['evaluated_split']} has at least {need} "
                       f"in {coverage['train_split']}")
    listed = "; ".join(describe(coverage, name) for name in short[:SHOWN])
    more = f" ... ({len(short)} in all)" if len(short) > SHOWN else ""
    return Verdict(requirement, float(len(short)), False, Outcome.FAILED,
                   f"{len(short)} bucket(s) have fewer than {need} positives in {coverage['train_split']}: "
                   f"{listed}{more}; no model learns what it never saw: move some of their images into "
                   f"{coverage['train_split']}")


def bucket_verdict(requirement: Requirement, count: int | None, train_split: str) -> Verdict:
    """'coverage(tube)>=5' on its own."""
    need = int(requirement.threshold)
    if count is None:
        return Verdict(requirement, None, False, Outcome.FAILED,
                       f"cannot count the bucket's positives in {train_split} (its `where` uses values "
                       "those rows do not have)")
    ok = count >= need
    return Verdict(requirement, float(count), ok, Outcome.PASSED if ok else Outcome.FAILED,
                   f"{count} positives in {train_split} {'>=' if ok else '<'} {need}"
                   + ("" if ok else f"; no model learns what it never saw: move some into {train_split}"))


def with_min_train(verdict: Verdict, count: int | None, train_split: str) -> Verdict:
    """A floor or max_drop requirement that also sets min_train: it fails when the train split
    holds fewer positives of the bucket."""
    need = verdict.requirement.min_train
    if need is None or verdict.requirement.metric == Metric.COVERAGE:
        return verdict
    if count is not None and count >= need:
        return verdict
    what = (f"only {count} positives in {train_split} (min_train {need})" if count is not None else
            f"its positives in {train_split} cannot be counted (min_train {need})")
    verdict.message += f"; {what}: no model learns what it never saw"
    verdict.passed = False
    verdict.outcome = Outcome.FAILED
    return verdict
