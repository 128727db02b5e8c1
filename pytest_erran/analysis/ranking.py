"""Buckets of misses, ranked: which causes hold the most misses, and which hold more than chance.

Examined: every defect class, every configured bucket, every automatic bucket, every tag, and
each class crossed with each of the others (`dent & auto:dark`). Buckets holding exactly the same
positives are one hypothesis (named both ways). For each: misses, positives, miss_rate,
share (of all misses), lift (its miss rate over the rest's), the one-sided Fisher exact p-value
that its miss rate exceeds the rest's, and the Benjamini-Hochberg q-value over every bucket
examined. Buckets with the same misses are merged into one line; below `min_positives` a bucket
is listed as too small to tell, after every ranked one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .stats import benjamini_hochberg, fisher_greater

CLASS, BUCKET, AUTO, TAG, CROSS = "class", "bucket", "auto", "tag", "cross"


@dataclass
class Candidate:
    name: str
    mask: np.ndarray  # bool over units
    kind: str
    cls: str | None = None  # the class of a class bucket or a cross
    part: str | None = None  # the bucket a class is crossed with (or the bucket itself)


@dataclass
class Ranked:
    name: str
    kind: str
    cls: str | None
    part: str | None
    members: np.ndarray = field(repr=False)  # positives in the bucket
    missed: np.ndarray = field(repr=False)  # its misses
    misses: int
    positives: int
    miss_rate: float
    share: float
    lift: float | None  # None: infinite, the rest has no misses
    p: float
    q: float = 1.0
    too_small: bool = False
    merged: list[str] = field(default_factory=list)  # other buckets with the same misses
    order: int = 0
    extra: dict = field(default_factory=dict)  # suggestions, error types, the baseline compare
    flips: tuple = field(default=(), repr=False)  # (newly caught ids, newly missed ids)

    @property
    def title(self) -> str:
        return merged_title(self.name, self.merged)

    def document(self) -> dict:
        return {"name": self.name, "kind": self.kind, "class": self.cls, "part": self.part,
                "merged": self.merged, "misses": self.misses, "positives": self.positives,
                "miss_rate": self.miss_rate, "share": self.share, "lift": self.lift, "p": self.p,
                "q": self.q, "too_small": self.too_small, **self.extra}


def merged_title(name: str, merged: list[str], shown: int = 3) -> str:
    """'dent & auto:dark = auto:dark': the first `shown` merged names and how many more, since a
    line of ten names joined by '=' hides which bucket it is about (the JSON lists them all)."""
    if len(merged) <= shown + 1:
        return " = ".join([name, *merged])
    return " = ".join([name, *merged[:shown]]) + f" (+{len(merged) - shown} more with the same misses)"


def tag_masks(units: pd.DataFrame) -> dict[str, np.ndarray]:
    """'tag:<t>' -> units carrying tag t, for every tag seen."""
    tags = sorted({t for row in units["tags"] for t in row})
    return {f"tag:{t}": np.fromiter((t in row for row in units["tags"]), bool, len(units)) for t in tags}


def candidates(labels: np.ndarray, classes: list[str], buckets: dict[str, np.ndarray],
               auto: dict[str, np.ndarray], tags: dict[str, np.ndarray]) -> list[Candidate]:
    """Classes, configured buckets, automatic buckets, tags, then each class crossed with each."""
    found = [Candidate(c, labels == c, CLASS, cls=c) for c in classes]
    others = ([Candidate(n, m, BUCKET, part=n) for n, m in buckets.items()]
              + [Candidate(n, m, AUTO, part=n) for n, m in auto.items()]
              + [Candidate(n, m, TAG, part=n) for n, m in tags.items()])
    crosses = [Candidate(f"{c} & {o.name}", (labels == c) & o.mask, CROSS, cls=c, part=o.name)
               for c in classes for o in others]
    return found + others + crosses


def rank(found: list[Candidate], positive: np.ndarray, hit: np.ndarray,
         min_positives: int) -> tuple[list[Ranked], list[Ranked]]:
    """(the buckets holding misses, ranked; every distinct bucket examined)."""
    total = int(positive.sum())
    all_missed = positive & ~hit
    total_misses = int(all_missed.sum())
    distinct: dict[bytes, Ranked] = {}
    for order, candidate in enumerate(found):
        members = candidate.mask & positive
        n = int(members.sum())
        if n == 0 or n == total:  # empty, or every positive (`all` again): nothing to compare
            continue
        key = np.packbits(members).tobytes()
        if key in distinct:  # the same positives under another name: one hypothesis
            distinct[key].merged.append(candidate.name)
            continue
        missed = members & ~hit
        a = int(missed.sum())
        rest, rest_misses = total - n, total_misses - a
        rest_rate = rest_misses / rest if rest else None
        distinct[key] = Ranked(
            name=candidate.name, kind=candidate.kind, cls=candidate.cls, part=candidate.part,
            members=members, missed=missed, misses=a, positives=n, miss_rate=a / n,
            share=a / total_misses if total_misses else 0.0,
            lift=(a / n) / rest_rate if rest_rate else None,  # rest_rate > 0: n < total
            p=fisher_greater(a, n - a, rest_misses, rest - rest_misses),
            too_small=n < min_positives, order=order)
    examined = list(distinct.values())
    for entry, q in zip(examined, benjamini_hochberg([e.p for e in examined])):
        entry.q = q
    return _merge_same_misses([e for e in examined if e.misses]), examined


def _merge_same_misses(entries: list[Ranked]) -> list[Ranked]:
    """One line per set of misses: the most telling bucket (big enough, smallest p, fewest
    positives) names the others."""
    groups: dict[bytes, list[Ranked]] = {}
    for entry in entries:
        groups.setdefault(np.packbits(entry.missed).tobytes(), []).append(entry)
    kept = []
    for group in groups.values():
        group.sort(key=lambda e: (e.too_small, e.p, e.positives, e.order))
        head = group[0]
        head.merged = head.merged + [name for e in group[1:] for name in [e.name, *e.merged]]
        kept.append(head)
    return sorted(kept, key=lambda e: (e.too_small, -e.misses, e.p, e.order))
