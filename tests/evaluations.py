"""Evaluations built without a pytest run, for testing the stages after prediction (reports,
baselines) on their own: a dev set and a predictions file written to a folder, evaluated through
the library API. Nothing is mocked: these are the evaluations the plugin itself would make."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest_erran
from builders import write_manifest
from conftest import rows_with_misses
from detection_builders import write_coco, write_coco_results

CLASSIFICATION = """
data = "dev.csv"
predictions = "preds.csv"
classes = ["ok", "scratch", "dent"]
negative = "ok"
"""


def classification_evaluation(root: Path, rows: list[dict], extra: str = "", **options):
    """rows as for builders.write_manifest; each row's `looks_like` (default: its label) is the
    predicted label, its `score` (default 0.9) the predicted score."""
    write_manifest(root, rows)
    with (root / "preds.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "score"])
        for row in rows:
            writer.writerow([row["id"], row.get("looks_like", row["label"]), row.get("score", 0.9)])
    (root / "erran.toml").write_text(textwrap.dedent(CLASSIFICATION) + textwrap.dedent(extra))
    return pytest_erran.evaluate(root / "erran.toml", rootdir=root, **options)


TWO_MORE_LOW_LIGHT = (1, 4, 5, 10, 17, 7, 13)  # rows_with_misses' misses, and two more low-light units


def regressed_evaluation(root: Path, extra: str, rows: list[dict] | None = None, **options):
    """rows_with_misses() saved as the baseline (.erran/baseline.json), then `rows` (by default
    the same with TWO_MORE_LOW_LIGHT missed) evaluated against it."""
    from pytest_erran.analysis.baseline import save_evaluation

    save_evaluation(root / ".erran" / "baseline.json", classification_evaluation(root, rows_with_misses(), extra))
    rows = rows if rows is not None else rows_with_misses(missed=TWO_MORE_LOW_LIGHT)
    return classification_evaluation(root, rows, extra, **options)


DETECTION = """
task = "detection"
data = "dev.json"
predictions = "preds.json"
"""


def detection_evaluation(root: Path, scene, extra: str = "", **options):
    """A Scene's COCO dev set and its detections as COCO results."""
    write_coco(root, scene)
    write_coco_results(root, scene)
    (root / "erran.toml").write_text(textwrap.dedent(DETECTION) + textwrap.dedent(extra))
    return pytest_erran.evaluate(root / "erran.toml", rootdir=root, **options)
