"""pytest-html (a test-only dependency here): its report gains the erran table and a link to the
gallery; without the plugin nothing changes and nothing fails."""

import re

import pytest

from conftest import rows_with_misses

pytest.importorskip("pytest_html")

CONFIG = """
[[require]]
bucket = "dent"
recall = 0.95
"""


def test_the_pytest_html_report_holds_the_table_and_links_the_gallery(project):
    project.model()
    project.data(rows_with_misses())
    project.config(CONFIG)
    result, report = project.report("--html=out/tests.html", "--self-contained-html", "--erran-html=erran.html")
    assert result.ret == 1
    page = (project.path / "out" / "tests.html").read_text()
    fragment = re.search(r'<div class="erran">.*?</section></div>', page, re.S)
    assert fragment, page[:2000]
    fragment = fragment.group(0)
    assert '<a href="../erran.html">gallery of misses</a>' in fragment
    assert "FAILED: 1 of 1 requirements" in fragment
    for bucket in report["buckets"]:
        row = re.search(rf'<tr [^>]*data-bucket="{bucket["name"]}">(.*?)</tr>', fragment).group(1)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[1:3] == [str(bucket["positives"]), f"{bucket['recall']:.3f}"]


def test_without_the_plugin_or_the_gallery_nothing_breaks(project):
    project.model()
    project.data(rows_with_misses())
    project.config(CONFIG)
    result = project.run("-p", "no:html", "--erran-html=erran.html")
    assert result.ret == 1 and "INTERNALERROR" not in result.stdout.str()
    result = project.run("--html=tests.html")  # no gallery: the table without a link
    page = (project.path / "tests.html").read_text()
    assert result.ret == 1 and "gallery of misses" not in page
