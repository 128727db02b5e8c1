"""Baselines through real pytest runs: save, compare unit by unit, fail only on real regressions."""

import json

import jsonschema
import pytest

from builders import CLASSES
from pytest_erran.config import load_schema
from pytest_erran.analysis.metrics import regression_p

WORSE = (0.3, 0.0, 0.0)  # "ok" gains 0.3: defects painted fainter than 20 + 0.3 * 255 flip to ok

GATE = """
[[require]]
bucket = "scratch"
recall = 0.5
max_drop = 0.02
[[require]]
bucket = "dent"
recall = 0.5
"""


def rows(n=90, faint=()):
    """n images; defects in `faint` are painted weakly, so the worse model misses them."""
    out = []
    for i in range(n):
        label = CLASSES[i % 3]
        out.append({"id": f"u{i:03d}", "label": label, "strength": 60 if i in faint else 200})
    return out


SCRATCH_FAINT = tuple(range(1, 60, 3))[:10]  # ten scratch images (i % 3 == 1)


@pytest.fixture
def workflow(project):
    project.model()
    project.data(rows(faint=SCRATCH_FAINT))
    project.config(GATE)
    return project


def baseline_file(project):
    return project.path / ".erran" / "baseline.json"


def test_save_compare_regress_and_accept(workflow):
    project = workflow
    # 1. no baseline yet: the gate runs on floors and says how to start comparing
    result = project.run()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*no baseline at*--erran-save-baseline*"])
    assert not baseline_file(project).exists()

    # 2. save it
    result = project.run("--erran-save-baseline")
    assert result.ret == 0
    document = json.loads(baseline_file(project).read_text())
    jsonschema.validate(document, load_schema("baseline.schema.json"))
    assert document["buckets"]["scratch"] == {"positives": 30, "hits": 30, "recall": 1.0, "missed": []}
    assert len(document["units"]) == 60 and len(document["model"]["sha256"]) == 64
    text = baseline_file(project).read_text()
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert [p.name for p in baseline_file(project).parent.iterdir()] == ["baseline.json"]

    # 3. same model against the baseline: passes, shows the comparison columns
    result = project.run()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["bucket*positives*recall*baseline*delta*-missed/+caught*p*",
                                 "every unit is as in the baseline: nothing new to accept"])

    # 4. a worse model: ten scratches newly missed, recall 1.0 -> 0.667, p = 2^-10
    project.model(bias=WORSE)
    result, report = project.report()
    assert result.ret == 1
    # the failure's own text (pytest 8 may leave it out of the short summary line)
    result.stdout.fnmatch_lines(["regressed: recall 0.667 (20/30) >= 0.50; recall 1.000 -> 0.667 on 30 "
                                 "shared units (10 newly missed, 0 newly caught, p = 0.000977): "
                                 "drop 0.333 > 0.02 and p < alpha 0.05"])
    scratch = {b["name"]: b for b in report["buckets"]}["scratch"]
    assert sorted(scratch["newly_missed"]) == sorted(f"u{i:03d}" for i in SCRATCH_FAINT)
    assert scratch["newly_caught"] == []
    assert scratch["regression_p"] == pytest.approx(regression_p(10, 0)) == pytest.approx(0.5 ** 10)
    assert scratch["baseline_recall"] == 1.0 and scratch["delta"] == pytest.approx(-10 / 30)
    outcome = {r["id"]: r["outcome"] for r in report["requirements"]}
    assert outcome == {"recall(scratch)>=0.50": "regressed", "recall(dent)>=0.50": "passed"}
    result.stdout.fnmatch_lines(["*newly missed in scratch: images/0001.png, images/0004.png*",
                                 "*accept these results as the new baseline with --erran-save-baseline*"])
    lines = [l for l in result.stdout.lines if l.startswith(("scratch ", "dent ", "all "))]
    assert lines[0].startswith("scratch") and "REGRESSED" in lines[0]

    # 5. accept it in a reviewed commit: saving writes the file even though the gate failed
    result = project.run("--erran-save-baseline")
    assert result.ret == 1
    assert json.loads(baseline_file(project).read_text())["buckets"]["scratch"]["hits"] == 20
    result = project.run()
    assert result.ret == 0


def test_a_small_drop_is_inconclusive_not_a_failure(project):
    project.model()
    project.data(rows(faint=SCRATCH_FAINT[:2]))
    project.config(GATE)
    project.run("--erran-save-baseline")
    project.model(bias=WORSE)
    result, report = project.report()
    assert result.ret == 0  # 2 flips: p = 0.25, could be noise
    result.stdout.fnmatch_lines(["to accept these results as the new baseline, run again with --erran-save-baseline"])
    requirement = {r["id"]: r for r in report["requirements"]}["recall(scratch)>=0.50"]
    assert requirement["outcome"] == "inconclusive" and requirement["passed"] is True
    result.stdout.fnmatch_lines(["*inconclusive*", "*ErranWarning*inconclusive*"])


def test_alpha_one_makes_max_drop_plain(project):
    project.model()
    project.data(rows(faint=SCRATCH_FAINT[:2]))
    project.config(GATE.replace("[[require]]", "alpha = 1.0\n[[require]]", 1))
    project.run("--erran-save-baseline")
    project.model(bias=WORSE)
    result = project.run()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*regressed*"])


def test_drop_only_requirement_is_skipped_without_a_baseline(project):
    project.model()
    project.data(rows())
    project.config("""
    [[require]]
    bucket = "scratch"
    max_drop = 0.05
    """)
    result = project.run("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no baseline to compare against yet*"])


def test_dataset_drift_is_counted_and_pairing_uses_shared_units(project):
    project.model()
    project.data(rows(n=90))
    project.config(GATE)
    project.run("--erran-save-baseline")
    drifted = [r for r in rows(n=96) if r["id"] not in ("u001", "u002")]  # -2 defects, +4 defects
    project.data(drifted)
    result, report = project.report()
    assert result.ret == 0
    assert {k: report["baseline"][k] for k in ("shared", "added", "removed")} == \
        {"shared": 58, "added": 4, "removed": 2}
    result.stdout.fnmatch_lines(["*58 shared, 4 added, 2 removed positives*"])
    scratch = {b["name"]: b for b in report["buckets"]}["scratch"]
    assert (scratch["shared"], scratch["added"]) == (29, 2)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"erran_baseline": 99}', "schema version 1"),
    ('{"erran_baseline": 1, "task": "classification"}', "baseline key"),
])
def test_a_broken_baseline_is_a_usage_error(workflow, content, message):
    project = workflow
    baseline_file(project).parent.mkdir()
    baseline_file(project).write_text(content)
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"*baseline.json*{message}*"])
    assert baseline_file(project).read_text() == content  # never overwritten by a failed run


def test_baseline_path_option_and_task_mismatch(workflow):
    project = workflow
    project.run("--erran-save-baseline", "--erran-baseline=ci/base.json")
    assert (project.path / "ci" / "base.json").exists() and not baseline_file(project).exists()
    document = json.loads((project.path / "ci" / "base.json").read_text())
    document["task"] = "detection"
    (project.path / "ci" / "base.json").write_text(json.dumps(document))
    result = project.run("--erran-baseline=ci/base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*base.json: the baseline is for detection, this run is classification*"])


def test_lower_bound_gate_and_too_small_bucket(project):
    project.model()
    project.data(rows(n=30))
    project.config("""
    [[require]]
    bucket = "scratch"
    recall = 0.95
    gate = "lower_bound"
    [[require]]
    bucket = "dent"
    recall = 0.9
    """)
    result, report = project.report()
    assert result.ret == 1  # 10/10 scratches: lower bound 0.722 < 0.95, needs 73 positives
    by_id = {r["id"]: r for r in report["requirements"]}
    assert by_id["recall(scratch)>=0.95"]["outcome"] == "too_small"
    assert by_id["recall(scratch)>=0.95"]["positives_needed"] == 73
    assert by_id["recall(dent)>=0.90"]["outcome"] == "too_small"
    assert by_id["recall(dent)>=0.90"]["passed"] is True
