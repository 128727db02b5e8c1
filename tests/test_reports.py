"""Both reports on evaluations built without a pytest run (evaluations.py): the JSON report holds
the evaluation's own numbers and validates against its schema; the terminal summary ranks
failing buckets first and lists what to look at."""

import jsonschema
import numpy as np
import pytest

from conftest import rows_with_misses
from detection_builders import random_scene
from evaluations import TWO_MORE_LOW_LIGHT, classification_evaluation, detection_evaluation
from pytest_erran.analysis.baseline import save_evaluation
from pytest_erran.config import load_schema
from pytest_erran.report.json_report import report_document
from pytest_erran.report.terminal import summary_lines
from pytest_erran.units import Match

GATES = """
[buckets.low_light]
where = "lighting == 'low'"
[[require]]
bucket = "scratch"
recall = 0.5
[[require]]
bucket = "dent"
recall = 0.95
[[require]]
bucket = "low_light"
max_drop = 0.05
"""


def text_of(lines):
    return [text for text, _ in lines]


@pytest.fixture
def evaluation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the summary shows paths relative to the working directory
    return classification_evaluation(tmp_path, rows_with_misses(), GATES)


def test_the_json_report_holds_the_evaluations_numbers(evaluation):
    document = report_document(evaluation)
    jsonschema.validate(document, load_schema("report.schema.json"))
    assert [b["name"] for b in document["buckets"]] == list(evaluation.buckets)
    for entry in document["buckets"]:
        result = evaluation.bucket(entry["name"])
        assert (entry["positives"], entry["hits"], entry["missed"]) == (result.positives, result.hits, result.missed)
        assert (entry["ci_low"], entry["ci_high"]) == (result.ci_low, result.ci_high)
    assert [(r["id"], r["outcome"], r["value"]) for r in document["requirements"]] == \
        [(v.id, v.outcome, v.value) for v in evaluation.verdicts]
    # class buckets carry the precision side, custom buckets do not
    by_name = {b["name"]: b for b in document["buckets"]}
    assert "precision" in by_name["dent"] and "precision" not in by_name["low_light"]
    assert document["model"]["path"] == "preds.csv" and document["data"]["units"] == 30
    assert "baseline" not in document


def test_the_summary_ranks_failing_buckets_first_and_lists_their_misses(evaluation):
    lines = text_of(summary_lines(evaluation))
    assert lines[0].startswith("predictions preds.csv  data ") and "30 units in 30 images" in lines[0]
    table = lines[2:2 + 1 + len(evaluation.buckets)]
    assert table[0].split() == ["bucket", "positives", "recall", "95%", "interval", "required", "status"]
    assert [row.split()[0] for row in table[1:]][:1] == ["dent"]  # the failing bucket leads
    dent = evaluation.bucket("dent")
    assert table[1].split()[:3] == ["dent", str(dent.positives), f"{dent.recall:.3f}"]
    assert "FAILED" in table[1]
    headline = f"recall(dent)>=0.95 failed: recall {dent.recall:.3f} ({dent.hits}/{dent.positives}) < 0.95; "
    at = next(i for i, line in enumerate(lines) if line.startswith(headline))
    paths = dict(zip(evaluation.units["id"], evaluation.units["_display"]))
    assert lines[at + 1] == "  missed in dent: " + ", ".join(paths[unit] for unit in dent.missed)
    assert "drop(low_light)<=0.05 skipped: no baseline to compare against yet" in lines[at + 3]
    assert lines[-1].startswith("look at the missed images above; --erran-report PATH writes all of them")


def test_with_a_baseline_the_summary_and_report_compare(tmp_path, evaluation):
    save_evaluation(tmp_path / ".erran" / "baseline.json", evaluation)
    rows = rows_with_misses(missed=TWO_MORE_LOW_LIGHT)
    again = classification_evaluation(tmp_path, rows, GATES)
    lines = text_of(summary_lines(again))
    assert lines[1].startswith("baseline .erran/baseline.json (model ")
    assert lines[1].endswith(": 20 shared, 0 added, 0 removed positives")
    low = again.bucket("low_light").comparison
    assert (len(low.newly_missed), len(low.newly_caught)) == (2, 0)
    document = report_document(again)
    jsonschema.validate(document, load_schema("report.schema.json"))
    entry = next(b for b in document["buckets"] if b["name"] == "low_light")
    assert entry["newly_missed"] == low.newly_missed and entry["regression_p"] == low.regression_p
    assert document["baseline"]["shared"] == 20


def test_a_detection_summary_shows_the_precision_side(tmp_path):
    evaluation = detection_evaluation(tmp_path, random_scene(2), """
        [[require]]
        bucket = "all"
        precision = 0.99
    """)
    lines = text_of(summary_lines(evaluation))
    head = lines[2].split()
    assert head[-4:] == ["precision", "fp/image", "required", "status"]
    everything = evaluation.bucket("all")
    row = next(line for line in lines[3:] if line.startswith("all "))
    assert f"{everything.precision:.3f}" in row and f"{everything.fp_per_image:.3f}" in row
    assert any(line.startswith("  false positives of all: ") for line in lines)
    jsonschema.validate(report_document(evaluation), load_schema("report.schema.json"))
    # every true positive points at a unit it hit, of its own class; the rest at none
    found, units = evaluation.predictions, evaluation.units
    true = found.match == Match.TRUE_POSITIVE
    assert units["_hit"].to_numpy()[found.unit[true]].all() and (found.unit[~true] == -1).all()
    assert (units["label"].to_numpy()[found.unit[true]] == np.array(evaluation.classes)[found.label[true]]).all()
    assert true.sum() == everything.true_positives == units["_hit"].sum()
    assert ((found.match == Match.FALSE_POSITIVE).sum()) == everything.false_positives
