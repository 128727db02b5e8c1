"""What CI reads: the Markdown summary (pull-request comment and job summary) and its cutting
rule, the JUnit properties of each requirement, and the outputs written by real pytest runs."""

import re
import xml.etree.ElementTree as ElementTree

import pytest

from conftest import rows_with_misses
from evaluations import regressed_evaluation
from pytest_erran.analysis.ranking import merged_title
from pytest_erran.report.markdown import MARKER, Section, assemble, cell_text, code, markdown_document

GATES = """
alpha = 0.5
[buckets.low_light]
where = "lighting == 'low'"
[[require]]
bucket = "scratch"
recall = 0.95
[[require]]
bucket = "dent"
recall = 0.5
[[require]]
bucket = "low_light"
max_drop = 0.01
"""


@pytest.fixture
def regressed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return regressed_evaluation(tmp_path, GATES)


def table_rows(text: str) -> list[list[str]]:
    """Every Markdown table line split into cells (escaped pipes stay inside their cell)."""
    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in text.splitlines() if line.startswith("|")]


def test_the_markdown_names_the_verdict_the_failing_bucket_and_the_newly_missed(regressed):
    text = markdown_document(regressed, html_link="erran.html")
    lines = text.splitlines()
    assert lines[0] == MARKER
    assert lines[1] == "### ❌ erran: 2 of 3 requirements failed"
    rows = table_rows(text)
    head = [c.strip() for c in rows[0]]
    assert head[:3] == ["bucket", "positives", "recall"] and head[-1] == "status"
    body = [[c.strip() for c in row] for row in rows[2:2 + len(regressed.buckets)]]
    # ranked as the terminal ranks them: the failing buckets first, each with its numbers
    assert {body[0][0], body[1][0]} == {"`scratch`", "`low_light`"} and body[0][-1].startswith("**")
    for row in body:
        result = regressed.bucket(row[0].strip("`"))
        assert (int(row[1]), row[2]) == (result.positives, f"{result.recall:.3f}")
    assert any(line.startswith("- `recall(scratch)>=0.95` failed: recall 0.500 (5/10) &lt; 0.95;") for line in lines)
    newly = regressed.bucket("all").comparison.newly_missed
    paths = dict(zip(regressed.units["id"], regressed.units["_display"]))
    assert f"**Newly missed since the baseline** ({len(newly)})" in lines
    for unit in newly:
        assert any(line.startswith(f"| `{paths[unit]}` | `scratch` | `scratch`, `low_light` |") for line in lines)
    assert lines[-1] == "[erran-html]: erran.html"


def test_with_the_analysis_the_markdown_says_what_to_try_and_ranks_the_causes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evaluation = regressed_evaluation(tmp_path, GATES, analyze=True)
    lines = markdown_document(evaluation).splitlines()
    steps = evaluation.analysis["next"]
    assert steps and all(f"- **{cell_text('try next: ' + step)}**" in lines for step in steps)
    assert len([line for line in lines if line.startswith("- compare: ")]) == len(evaluation.analysis["compare"])
    at = lines.index("**Top causes**")
    rows = [[c.strip() for c in row] for row in table_rows("\n".join(lines[at:]))]
    assert rows[0] == ["bucket", "misses", "positives", "miss rate", "lift", "q", "try"]
    ranked = [b for b in evaluation.analysis["buckets"] if not b["too_small"]][:5]
    assert [(r[0].strip("`"), int(r[1]), int(r[2])) for r in rows[2:2 + len(ranked)]] == \
        [(merged_title(b["name"], b["merged"]), b["misses"], b["positives"]) for b in ranked]


def test_long_listings_are_cut_between_rows_with_and_n_more():
    rows = [f"| `images/{i:05d}.png` | x |" for i in range(1000)]
    head = ["<!-- m -->", "### verdict", ""]
    tail = ["[erran-html]: g.html"]
    text = assemble(head, [Section(["**title**", ""], ["| a | b |", "| --- | --- |"], rows,
                                   lambda n: f"| ... and {n} more | |")], tail, 2_000)
    assert len(text) <= 2_000
    lines = text.splitlines()
    kept = [line for line in lines if line.startswith("| `images/")]
    assert 0 < len(kept) < 1000 and kept == rows[:len(kept)]  # whole rows, in order
    assert f"| ... and {1000 - len(kept)} more | |" in lines
    assert lines[:3] == head and lines[-1] == tail[0]
    # the comment limit holds for a document of any length, by characters or by bytes
    wide = [f"| `é{i}` | {'ü' * 50} |" for i in range(5_000)]
    for size in (len, lambda t: len(t.encode("utf-8"))):
        text = assemble(head, [Section([], [], wide, lambda n: f"| ... and {n} more | |")], tail, 65_536, size)
        assert size(text) <= 65_536 and text.splitlines()[-3].startswith("| ... and ")
    with pytest.raises(ValueError):
        assemble(head, [], tail, 10)


def test_markdown_cells_keep_paths_verbatim_and_tables_intact():
    assert code("a|b`c") == "``a\\|b`c``"
    assert code("`x") == "`` `x ``"
    assert code("plain.png") == "`plain.png`"


def test_a_run_writes_every_output_and_appends_the_job_summary(project, monkeypatch):
    project.model()
    project.data(rows_with_misses())
    project.config("""
    html = "out/gallery.html"
    [[require]]
    bucket = "scratch"
    recall = 0.95
    [[require]]
    bucket = "dent"
    recall = 0.5
    """)
    summary = project.path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("ERRAN_HTML_URL", raising=False)
    result, report = project.report("--erran-markdown=out/erran.md", "--junitxml=junit.xml")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["written: gallery out/gallery.html, markdown out/erran.md",
                                 "look at the missed images above*"])
    markdown = (project.path / "out" / "erran.md").read_text()
    assert markdown.splitlines()[-1] == "[erran-html]: gallery.html"  # relative to the Markdown
    assert summary.read_text() == "earlier step\n\n" + markdown
    assert "<title>erran: model.onnx</title>" in (project.path / "out" / "gallery.html").read_text()

    cases = {case.get("name"): case for case in ElementTree.parse(project.path / "junit.xml").iter("testcase")}
    requirements = {r["id"]: r for r in report["requirements"]}
    buckets = {b["name"]: b for b in report["buckets"]}
    assert set(cases) == set(requirements)
    for name, case in cases.items():
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        requirement, bucket = requirements[name], buckets[requirements[name]["bucket"]]
        assert properties["bucket"] == requirement["bucket"] and properties["metric"] == "recall"
        assert float(properties["value"]) == requirement["value"]
        assert float(properties["threshold"]) == requirement["threshold"]
        assert (int(properties["positives"]), int(properties["hits"])) == (bucket["positives"], bucket["hits"])
        assert (float(properties["ci_low"]), float(properties["ci_high"])) == (bucket["ci_low"], bucket["ci_high"])
        assert "baseline_value" not in properties  # no baseline yet


def test_with_a_baseline_junit_carries_the_paired_comparison(project):
    project.model()
    project.data(rows_with_misses())
    project.config("""
    [[require]]
    bucket = "dent"
    max_drop = 0.02
    """)
    assert project.run("--erran-save-baseline").ret == 0
    project.data(rows_with_misses(missed=(1, 4, 5, 10, 17, 2, 8)))  # two dents newly missed
    result, report = project.report("--junitxml=junit.xml")
    case = next(ElementTree.parse(project.path / "junit.xml").iter("testcase"))
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    dent = next(b for b in report["buckets"] if b["name"] == "dent")
    assert properties["metric"] == "drop"
    assert float(properties["baseline_value"]) == dent["baseline_recall"]
    assert float(properties["delta"]) == dent["delta"]
    assert (int(properties["newly_missed"]), int(properties["newly_caught"])) == (2, 0)
    assert float(properties["regression_p"]) == dent["regression_p"] == 0.25


def test_html_per_bucket_bounds_every_gallery(project):
    project.model()
    project.data(rows_with_misses(n=60, missed=tuple(range(0, 60, 2))))
    project.config("""
    html_per_bucket = 3
    [[require]]
    bucket = "scratch"
    recall = 0.95
    """)
    result = project.run("--erran-html=g.html")
    assert result.ret == 1
    page = (project.path / "g.html").read_text()
    sections = re.findall(r'<section class="gallery.*?</section>', page, re.S)
    assert sections and all(section.count("<figure ") == 3 for section in sections)
    assert "(3 of 10, the rest in the JSON report)" in page


def test_an_unwritable_gallery_is_a_usage_error_after_the_results(project):
    project.model()
    project.data(rows_with_misses())
    project.config("""
    [[require]]
    bucket = "dent"
    recall = 0.5
    """)
    (project.path / "taken").write_text("a file, not a folder")
    result = project.run("--erran-html=taken/g.html")
    assert result.ret == 4
    result.stdout.fnmatch_lines(["erran: cannot write *taken/g.html*"])
