"""Baselines: the previous model's per-unit results, loaded for paired comparison, saved atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ErranError
from ..files import write_json
from .buckets import positive_mask

SCHEMA_VERSION = 1


@dataclass
class Baseline:
    path: Path
    units: dict[str, str] = field(repr=False)  # positive unit id -> true label
    missed: set[str] = field(repr=False)  # positive units the baseline model missed
    document: dict = field(repr=False)


def load(path: Path, task: str) -> Baseline | None:
    """The baseline at `path`, or None when there is none yet. A broken file is an error."""
    if not path.exists():
        return None
    fix = "fix it, or delete it and save a new one with --erran-save-baseline"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ErranError(f"{path}: the baseline is not valid JSON ({e}); {fix}") from None
    except OSError as e:
        raise ErranError(f"{path}: cannot read the baseline: {e.strerror}") from None
    if not isinstance(document, dict) or document.get("erran_baseline") != SCHEMA_VERSION:
        version = document.get("erran_baseline") if isinstance(document, dict) else None
        raise ErranError(f"{path}: not an erran baseline of schema version {SCHEMA_VERSION} "
                         f"(found {version!r}); {fix}")
    import jsonschema

    from ..config import load_schema

    try:
        jsonschema.validate(document, load_schema("baseline.schema.json"))
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path)) or "top level"
        raise ErranError(f"{path}: baseline key '{where}': {e.message}; {fix}") from None
    if document["task"] != task:
        raise ErranError(f"{path}: the baseline is for {document['task']}, this run is {task}; "
                         f"point --erran-baseline at a {task} baseline or save a new one")
    missed = {unit for bucket in document["buckets"].values() for unit in bucket["missed"]}
    return Baseline(path=path, units=document["units"], missed=missed, document=document)


def save(path: Path, *, task: str, negative: str | None, model: dict, data: dict, buckets: dict,
         units: dict[str, str]) -> None:
    from .. import __version__

    document = {
        "erran_baseline": SCHEMA_VERSION,
        "erran_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "negative": negative,
        "model": model,
        "data": data,
        "buckets": buckets,
        "units": units,
    }
    write_json(path, document)


def save_evaluation(path: Path, evaluation) -> None:
    """This run as a baseline: per bucket positives, hits and missed ids; every positive unit."""
    negative = evaluation.settings.negative
    units = evaluation.units
    positive = units[positive_mask(units, negative)]
    buckets = {
        name: {"positives": r.positives, "hits": r.hits, "recall": r.recall, "missed": r.missed}
        for name, r in evaluation.buckets.items()
    }
    save(path, task=evaluation.task, negative=negative, model=evaluation.model, data=evaluation.data,
         buckets=buckets, units=dict(zip(positive["id"].astype(str), positive["label"].astype(str))))
