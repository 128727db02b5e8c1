"""Bucket definitions -> boolean masks over the units table."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import BucketSpec, Settings
from ..errors import ErranError, prefixed
from ..vocabulary import ALL, AUTO_PREFIX, EVERY, BucketKind
from . import where


@dataclass
class Bucket:
    name: str
    mask: np.ndarray  # bool, one per unit
    kind: BucketKind = BucketKind.CUSTOM


def bucket_kind(name: str, classes: tuple[str, ...]) -> BucketKind:
    if name == ALL:
        return BucketKind.ALL
    return BucketKind.CLASS if name in classes else BucketKind.CUSTOM


def positive_mask(units: pd.DataFrame, negative: str | None) -> np.ndarray:
    """The units recall counts: every unit whose true class is not the negative one."""
    labels = units["label"].to_numpy()
    return labels != negative if negative is not None else np.ones(len(units), bool)


def bucket_names(classes: tuple[str, ...], negative: str | None, specs: tuple[BucketSpec, ...]) -> list[str]:
    """Every bucket name, checked for clashes, in a fixed order: all, classes, then custom."""
    names = [ALL] + [c for c in classes if c != negative]
    for spec in specs:
        if spec.name.startswith(AUTO_PREFIX):
            raise ErranError(f"[buckets.{spec.name}]: names starting with '{AUTO_PREFIX}' are the automatic "
                             "buckets' (auto:dark, auto:edge, ...); rename it")
        if spec.name == ALL or spec.name in classes:
            what = "the bucket of all units" if spec.name == ALL else f"the bucket of class '{spec.name}'"
            raise ErranError(f"[buckets.{spec.name}]: '{spec.name}' is already {what}; rename it")
        names.append(spec.name)
    return names


def check_references(names: list[str], classes: tuple[str, ...], settings: Settings) -> None:
    """Catch typos before any model runs: requirements, `class` filters, thresholds, negative,
    and metrics asked of buckets they are not defined on."""
    negative = settings.negative
    if negative is not None and negative not in classes:
        raise ErranError(f"negative = '{negative}' is not one of the classes {list(classes)}")
    for name in (r.bucket for r in settings.requirements if r.bucket != EVERY):  # data checks: no bucket
        if name == negative:
            raise ErranError(f"[[require]] bucket = '{name}': '{name}' is the negative class; recall "
                             "counts defects, so require it on a defect class or bucket")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ErranError(f"[[require]] bucket = '{name}' is not a bucket; {hint}known buckets: "
                             f"{', '.join(names)}")
    for spec in settings.buckets:
        if spec.cls is not None and spec.cls not in classes:
            raise ErranError(f"[buckets.{spec.name}] class = '{spec.cls}' is not one of the classes "
                             f"{list(classes)}")
    for name in settings.class_thresholds:
        if name not in classes:
            raise ErranError(f"[class_thresholds] '{name}' is not one of the classes {list(classes)}")
    for requirement in settings.requirements:
        if requirement.bucket == EVERY:
            continue
        if bucket_kind(requirement.bucket, classes) not in requirement.spec.buckets:
            raise ErranError(f"[[require]] {requirement.id}: {requirement.metric} is defined for a "
                             "class's own bucket or 'all' (predictions have a class, not a bucket)")


def build_buckets(units: pd.DataFrame, classes: tuple[str, ...], negative: str | None,
                  specs: tuple[BucketSpec, ...]) -> dict[str, Bucket]:
    labels = units["label"].to_numpy()
    buckets = {ALL: Bucket(ALL, np.ones(len(units), bool), BucketKind.ALL)}
    for cls in classes:
        if cls != negative:
            buckets[cls] = Bucket(cls, labels == cls, BucketKind.CLASS)
    for spec in specs:
        buckets[spec.name] = Bucket(spec.name, bucket_mask(units, spec))
    return buckets


def check_wheres(specs: tuple[BucketSpec, ...]) -> None:
    """Every `where` parsed and checked (where.py) before any data is read."""
    for spec in specs:
        if spec.where is not None:
            with _naming(spec):
                where.parse(spec.where)


def bucket_mask(units: pd.DataFrame, spec: BucketSpec) -> np.ndarray:
    """The units in a configured bucket: every condition it gives holds."""
    mask = np.ones(len(units), bool)
    if spec.where is not None:
        mask &= _where(units, spec)
    if spec.tag is not None:
        mask &= np.fromiter((spec.tag in tags for tags in units["tags"]), bool, len(units))
    if spec.cls is not None:
        mask &= units["label"].to_numpy() == spec.cls
    return mask


def _where(units: pd.DataFrame, spec: BucketSpec) -> np.ndarray:
    with _naming(spec):
        return where.evaluate(spec.where, units)


def _naming(spec: BucketSpec):
    return prefixed(f"[buckets.{spec.name}] where = {spec.where!r}")
