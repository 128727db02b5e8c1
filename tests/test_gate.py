"""The classification gate through real pytest runs: items, exit codes, recall per bucket."""


import jsonschema
import pytest

from conftest import rows_with_misses
from pytest_erran.config import load_schema
from pytest_erran.analysis.metrics import wilson

REQUIRE = """
[buckets.low_light]
where = "lighting == 'low'"
[buckets.severe]
tag = "severe"
[buckets.cam_two]
where = "camera == 2"
[[require]]
bucket = "scratch"
recall = 0.5
[[require]]
bucket = "dent"
recall = 0.99
"""


def hand_count(rows, member):
    """Recall counted by hand from the rows, independently of the plugin."""
    positives = [r for r in rows if r["label"] != "ok" and member(r)]
    hits = [r for r in positives if r["looks_like"] == r["label"]]
    return len(positives), len(hits), sorted(r["id"] for r in positives if r not in hits)


@pytest.fixture
def gated(project):
    rows = rows_with_misses()
    project.model()
    project.data(rows)
    project.config(REQUIRE)
    return project, rows


def test_recall_per_bucket_matches_a_hand_count(gated):
    project, rows = gated
    result, report = project.report()
    jsonschema.validate(report, load_schema("report.schema.json"))
    buckets = {b["name"]: b for b in report["buckets"]}
    members = {
        "all": lambda r: True,
        "scratch": lambda r: r["label"] == "scratch",
        "dent": lambda r: r["label"] == "dent",
        "low_light": lambda r: r["lighting"] == "low",
        "severe": lambda r: "severe" in r["tags"].split(";"),
        "cam_two": lambda r: r["camera"] == 2,
    }
    assert set(buckets) == set(members)
    for name, member in members.items():
        positives, hits, missed = hand_count(rows, member)
        entry = buckets[name]
        assert (entry["positives"], entry["hits"]) == (positives, hits), name
        assert entry["recall"] == pytest.approx(hits / positives)
        assert sorted(entry["missed"]) == missed
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx(wilson(hits, positives))
    assert report["data"]["units"] == len(rows)
    assert len(report["model"]["sha256"]) == 64


def test_requirements_are_items_and_the_exit_status_means_the_gate(gated):
    project, rows = gated
    result = project.run("-v")
    # scratch: 10 positives, 3 look like ok (4, 10 are scratch? counted below) -> passes 0.5
    result.stdout.fnmatch_lines([
        "*erran.toml::recall?dent?>=0.99 FAILED*",
        "*erran.toml::recall?scratch?>=0.50 PASSED*",
    ])
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*= erran =*", "bucket*positives*recall*95% interval*required*status*",
                                 "dent * FAILED*"])
    result.stdout.fnmatch_lines(["*missed in dent: images/0005.png, images/0017.png*"])


def test_failing_buckets_come_first_ranked_by_shortfall(project):
    rows = rows_with_misses(missed=(1, 4, 7, 2, 5))
    project.model()
    project.data(rows)
    project.config("""
    [[require]]
    bucket = "scratch"
    recall = 0.9
    [[require]]
    bucket = "dent"
    recall = 0.95
    [[require]]
    bucket = "all"
    recall = 0.1
    """)
    result = project.run()
    lines = [l for l in result.stdout.lines if l.startswith(("scratch ", "dent ", "all "))]
    # dent 8/10 -> shortfall 0.15; scratch 7/10 -> shortfall 0.2: scratch first, passing last
    assert [l.split()[0] for l in lines] == ["scratch", "dent", "all"]


def test_passing_gate_exits_zero(project):
    project.model()
    project.data(rows_with_misses(missed=()))
    project.config("""
    [[require]]
    bucket = "scratch"
    recall = 0.9
    """)
    result = project.run()
    assert result.ret == 0
    result.assert_outcomes(passed=1)


def test_items_run_whatever_paths_pytest_is_given(gated):
    project, _ = gated
    project.pytester.makepyfile(test_user="def test_user(): pass")
    tests_dir = project.path / "other"
    tests_dir.mkdir()
    result = project.run("other")  # a folder with no tests: the gate still runs
    result.assert_outcomes(passed=1, failed=1)
    result = project.run("test_user.py")
    result.assert_outcomes(passed=2, failed=1)


def test_collect_only_lists_requirements_without_running_the_model(gated):
    project, _ = gated
    (project.path / "model.onnx").write_bytes(b"not a model")  # --co must not load it
    result = project.run("--co", "-q")
    result.stdout.fnmatch_lines(["erran.toml::recall(dent)>=0.99", "erran.toml::recall(scratch)>=0.50"])
    assert result.ret == 0


def test_k_lf_and_junitxml_work_on_requirements(gated):
    project, _ = gated
    result = project.run("-k", "scratch")
    result.assert_outcomes(passed=1, deselected=1)
    project.run()  # records the failure for --lf
    result = project.run("--lf")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1 and "passed" not in outcomes
    result = project.run("--junitxml=junit.xml")
    xml = (project.path / "junit.xml").read_text()
    assert 'name="recall(dent)&gt;=0.99"' in xml and "<failure" in xml


def test_inactive_without_a_model(pytester):
    pytester.makepyfile(test_a="def test_a(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "erran:" not in result.stdout.str() and "= erran =" not in result.stdout.str()


def test_disabled_with_p_no_erran(gated):
    project, _ = gated
    project.pytester.makepyfile(test_a="def test_a(): pass")
    result = project.run("-p", "no:erran")
    result.assert_outcomes(passed=1)


def test_fixtures_give_results_to_user_tests(gated):
    project, rows = gated
    project.pytester.makepyfile(test_user="""
        def test_scratch(erran_results, erran_dataset, erran_model):
            scratch = erran_results.bucket("scratch")
            assert scratch.positives == 10
            assert scratch.hits + len(scratch.missed) == scratch.positives
            assert scratch.recall == scratch.hits / scratch.positives
            assert len(erran_dataset.images) == 30
            assert erran_model.input.name == "image"
    """)
    result = project.run("test_user.py")
    result.assert_outcomes(passed=2, failed=1)


def test_command_line_overrides_the_config(gated):
    project, rows = gated
    project.data(rows_with_misses(missed=()), name="clean.csv")
    result = project.run("--erran-data=clean.csv")
    result.assert_outcomes(passed=2)


def test_config_in_pyproject(project):
    project.model()
    project.data(rows_with_misses(missed=()))
    project.pytester.makepyprojecttoml("""
        [tool.erran]
        model = "model.onnx"
        data = "dev.csv"
        classes = ["ok", "scratch", "dent"]
        negative = "ok"
        [[tool.erran.require]]
        bucket = "dent"
        recall = 0.9
    """)
    result = project.run()
    result.assert_outcomes(passed=1)


def test_xdist_runs_the_model_once_and_reports_once(gated):
    project, rows = gated
    project.pytester.makepyfile(test_user="""
        def test_a(erran_results): assert erran_results.bucket("dent").positives == 10
        def test_b(erran_results): assert erran_results.bucket("all").positives == 20
    """)
    result = project.pytester.runpytest_subprocess("-n", "2", "--erran-save-baseline",
                                                   "--erran-report=r.json")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == 1
    assert result.stdout.str().count("= erran =") == 1
    assert (project.path / ".erran" / "baseline.json").exists() and (project.path / "r.json").exists()
    cache = list((project.path / ".pytest_cache" / "d" / "erran-predictions").glob("*.npz"))
    assert len(cache) == 1


def test_works_with_xdist_disabled(gated):
    project, _ = gated
    result = project.run("-p", "no:xdist")
    result.assert_outcomes(passed=1, failed=1)


def test_summary_is_coloured_unless_no_color(gated, monkeypatch):
    project, _ = gated
    monkeypatch.delenv("PY_COLORS", raising=False)  # pytester sets it; it would override both
    monkeypatch.setenv("FORCE_COLOR", "1")
    coloured = project.pytester.runpytest_subprocess()
    assert "\x1b[31m" in coloured.stdout.str()  # the FAILED row is red
    monkeypatch.setenv("NO_COLOR", "1")
    plain = project.pytester.runpytest_subprocess()
    assert "\x1b[" not in plain.stdout.str()
    plain.stdout.fnmatch_lines(["*= erran =*", "dent * FAILED"])


def test_report_header_names_model_data_and_config(gated):
    project, _ = gated
    result = project.run()
    result.stdout.fnmatch_lines(["erran: model *model.onnx, data *dev.csv, 2 requirement(s) from *erran.toml"])


def test_classification_precision_and_its_false_positives(project):
    rows = rows_with_misses(n=12, missed=())
    for row in rows:
        if row["id"] in ("u000", "u003"):  # two "ok" images that look like scratches
            row["looks_like"] = "scratch"
    project.model()
    project.data(rows)
    project.config("""
    [[require]]
    bucket = "scratch"
    precision = 0.9
    """)
    result, report = project.report()
    scratch = {b["name"]: b for b in report["buckets"]}["scratch"]
    true_scratches = sum(1 for r in rows if r["label"] == "scratch")  # all caught
    assert (scratch["true_positives"], scratch["false_positives"]) == (true_scratches, 2)
    assert scratch["precision"] == pytest.approx(true_scratches / (true_scratches + 2))
    assert scratch["false_positive_images"] == ["images/0000.png", "images/0003.png"]
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*false positives of scratch: images/0000.png, images/0003.png"])
