"""The HTML gallery: self-contained, bounded, deterministic, showing the misses it should; and in
a real browser (headless Chromium): every thumbnail decodes, the table holds the JSON report's
numbers, and both filters (CSS anchors without JavaScript, the menu with it) work."""

import base64
import html
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import chromium
from conftest import rows_with_misses
from detection_builders import random_scene
from evaluations import TWO_MORE_LOW_LIGHT, classification_evaluation, detection_evaluation, regressed_evaluation
from pytest_erran.analysis.ranking import merged_title
from pytest_erran.report.analysis_lines import analysis_lines
from pytest_erran.report import html as html_report
from pytest_erran.report.html import render_html
from pytest_erran.report.json_report import report_document
from pytest_erran.units import Match
from pytest_erran.report.thumbnails import GROUND_TRUTH, MAX_SIDE, PREDICTION, Mark, thumbnail

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
recall = 0.5
max_drop = 0.01
"""
SHOTS = Path(os.environ.get("ERRAN_SCREENSHOTS", "")) if os.environ.get("ERRAN_SCREENSHOTS") else None


def figures(page: str, section: str) -> list[str]:
    """The <figure> elements of one gallery section."""
    found = re.search(rf'<section class="gallery [a-z_]+" id="{section}"[^>]*>(.*?)</section>', page, re.S)
    assert found, section
    return re.findall(r"<figure .*?</figure>", found.group(1), re.S)


def data_uris(page: str) -> list[str]:
    return re.findall(r'<img src="(data:[^"]+)"', page)


def decoded(uri: str) -> Image.Image:
    header, _, payload = uri.partition(",")
    assert header == "data:image/jpeg;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


@pytest.fixture
def regressed(tmp_path, monkeypatch):
    """A classification evaluation against a baseline: two more low-light units missed."""
    monkeypatch.chdir(tmp_path)
    rows = rows_with_misses(missed=TWO_MORE_LOW_LIGHT)
    rows[7]["camera"] = "<script>alert(1)</script>"  # metadata is data: shown, never run
    return regressed_evaluation(tmp_path, GATES, rows, html="gallery.html")


def test_the_gallery_shows_each_failing_buckets_misses_new_ones_first(regressed):
    page = render_html(regressed)
    ids = {name: f"missed-bucket-{i}" for i, name in enumerate(regressed.buckets)}
    # scratch fails its floor, low_light regresses (max_drop): both get a gallery; dent passes
    assert [v.outcome for v in regressed.verdicts] == ["passed", "regressed", "failed"]
    assert f'id="{ids["scratch"]}"' in page and f'id="{ids["low_light"]}"' in page
    assert f'id="{ids["dent"]}"' not in page
    low = regressed.bucket("low_light")
    shown = figures(page, ids["low_light"])
    assert len(shown) == len(low.missed)
    new = low.comparison.newly_missed
    assert len(new) == 2
    # the newly missed come first, marked; the rest follow in dataset order
    paths = dict(zip(regressed.units["id"], regressed.units["_display"]))
    order = new + [u for u in low.missed if u not in new]
    assert [re.search(r"<code>(.*?)</code>", f).group(1) for f in shown] == [paths[u] for u in order]
    assert [('class="unit new"' in f) for f in shown] == [u in new for u in order]
    assert len(figures(page, "new")) == 2  # the section of everything newly missed
    # each caption: true class -> prediction, the buckets it is missed in, its properties
    first = shown[0]
    unit = regressed.units.set_index("id").loc[order[0]]
    assert f"{unit['label']} → {unit['_pred']} (0.90)" in first
    assert "in " + ", ".join(b for b in regressed.buckets if b != "all" and order[0] in regressed.bucket(b).missed) in first
    assert f"<dt>brightness</dt><dd>{unit['brightness']:.3g}</dd>" in first
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_the_gallery_is_self_contained_bounded_and_byte_identical(regressed, tmp_path, monkeypatch):
    calls = []
    real = html_report.thumbnail

    def counting(path, source, marks=(), exif="apply"):
        calls.append(path)
        return real(path, source, marks, exif)

    monkeypatch.setattr(html_report, "thumbnail", counting)
    page = render_html(regressed, per_section=2)
    for section in re.findall(r'<section class="gallery [a-z_]+" id="([^"]+)"', page):
        assert 1 <= len(figures(page, section)) <= 2
    uris = data_uris(page)
    shown = set(re.findall(r"<figcaption><code>(.*?)</code>", page))
    assert len(uris) > len(shown) > 1  # a unit in two galleries ...
    assert len(calls) == len(set(calls)) == len(shown)  # ... is encoded once, and only shown ones are
    assert all(max(decoded(u).size) <= MAX_SIDE for u in uris)
    # nothing to fetch: every image inline, no stylesheet or script from elsewhere
    assert not re.search(r'<(link|iframe|object|embed)\b', page)
    assert re.findall(r'\bsrc="([^"]*)"', page) == uris
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)
    assert "default-src 'none'" in page
    # the same evaluation, and a new evaluation of the same inputs, give the same bytes
    monkeypatch.setattr(html_report, "thumbnail", real)
    assert render_html(regressed, per_section=2) == page
    rows = rows_with_misses(missed=TWO_MORE_LOW_LIGHT)
    rows[7]["camera"] = "<script>alert(1)</script>"
    again = classification_evaluation(tmp_path, rows, GATES, html="gallery.html")
    assert render_html(again, per_section=2) == page


def test_recall_by_property_decile_is_counted_on_the_positives(regressed):
    page = render_html(regressed)
    units = regressed.units[regressed.units["label"] != "ok"]
    values, hits = units["brightness"].to_numpy(), units["_hit"].to_numpy()
    edges = np.unique(np.quantile(values, np.linspace(0, 1, 11), method="lower"))
    strip = re.search(r"<h3>brightness .*?</div></div>", page, re.S).group(0)
    cells = re.findall(r"<small>(\d+)/(\d+)</small>", strip)
    expected = []
    for i in range(len(edges) - 1):
        last = i == len(edges) - 2
        inside = (values >= edges[i]) & ((values <= edges[i + 1]) if last else (values < edges[i + 1]))
        expected.append((str(int(hits[inside].sum())), str(int(inside.sum()))))
    assert cells == expected and sum(int(n) for _, n in cells) == len(units)


def test_detection_thumbnails_draw_the_missed_box_and_the_nearest_prediction(tmp_path):
    scene = random_scene(3, num_images=9)
    evaluation = detection_evaluation(tmp_path, scene, """
        [[require]]
        bucket = "tube"
        recall = 0.95
    """, html="gallery.html")
    page = render_html(evaluation)
    tube = evaluation.bucket("tube")
    shown = figures(page, f"missed-bucket-{list(evaluation.buckets).index('tube')}")
    assert len(shown) == len(tube.missed) > 0
    units = evaluation.units.set_index("id")
    found = evaluation.predictions
    for unit, figure in zip(tube.missed, shown):
        row = units.loc[unit]
        on_image = np.flatnonzero(found.image == row["_image_index"])
        box = row[["x1", "y1", "x2", "y2"]].to_numpy(float)
        ious = [_iou(box, found.box[p]) for p in on_image]
        if not ious or max(ious) == 0:
            assert "no prediction overlaps it" in figure
        else:
            best = on_image[int(np.argmax(ious))]
            cls = evaluation.classes[found.label[best]]
            assert f"nearest: {cls} {found.score[best]:.2f}, IoU {max(ious):.2f}" in figure
    for k, cls in enumerate(evaluation.classes):
        wrong = int(((found.match == Match.FALSE_POSITIVE) & (found.label == k)).sum())
        section = f'id="false-positives-{k}"'
        assert (section in page) == bool(wrong)
    assert "AP@0.5" in page and page.count('class="operating"') >= 1


def test_a_thumbnail_draws_each_mark_in_its_colour(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.full((100, 200, 3), 128, np.uint8)).save(path)
    thumb = thumbnail(str(path), "test", (Mark((20, 20, 80, 60), PREDICTION), Mark((110, 30, 180, 90), GROUND_TRUTH)))
    image = np.asarray(decoded(thumb.uri).convert("RGB"), int)
    assert (thumb.width, thumb.height) == image.shape[1::-1] == (200, 100) and not thumb.zoomed

    def colour(hex_colour):
        return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])

    assert np.abs(image[40, 20] - colour(PREDICTION)).max() < 40  # the left edge of the first box
    assert np.abs(image[60, 180] - colour(GROUND_TRUTH)).max() < 40  # the right edge of the second
    assert np.abs(image[5, 100] - 128).max() < 12  # away from both: the image itself
    big = tmp_path / "big.png"
    Image.fromarray(np.full((1200, 1600, 3), 90, np.uint8)).save(big)
    small = thumbnail(str(big), "test", (Mark((800, 600, 806, 604), GROUND_TRUTH),))
    assert small.zoomed and max(small.width, small.height) <= MAX_SIDE  # a 6 px box gets a crop


def test_an_analysis_is_rendered_from_its_structure(regressed):
    regressed.analysis = {
        "buckets": [{"name": "low_light", "share": 0.5, "lift": 2.25, "q_value": 0.01},
                    {"name": "auto:dark", "missed": [regressed.bucket("scratch").missed[0]], "share": 0.2},
                    {"name": "no such bucket", "share": 0.1}],
        "suggestions": [{"bucket": "low_light", "experiment": "collect <more> low-light dents"}],
        "coverage": {"low_light": {"train": 3, "dev": 10}},
        "leakage": [],
        "drift": {"added": 0, "removed": 1},
    }
    page = render_html(regressed)
    part = re.search(r'<section id="analysis">(.*?)</section>', page, re.S).group(1)
    assert "<th>lift</th>" in part and "<td>2.25</td>" in part and "collect &lt;more&gt; low-light dents" in part
    assert "<h4>train</h4>" not in part and "<th>train</th>" in part  # coverage: keyed, then scalars
    assert len(figures(page, "analysis-0")) == len(regressed.bucket("low_light").missed)
    assert len(figures(page, "analysis-1")) == 1  # its own unit list
    assert 'id="analysis-2"' not in page  # nothing to recompute its units from


def test_the_analysis_reads_first_what_to_try_and_ranks_the_buckets_as_the_terminal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evaluation = regressed_evaluation(tmp_path, GATES, analyze=True)
    page = render_html(evaluation)
    part = re.search(r'<section id="analysis">(.*?)</section>', page, re.S).group(1)
    digest = [html.unescape(li) for li in re.findall(r'<li class="[a-z]*">(.*?)</li>', part)]
    terminal = [text for text, _ in analysis_lines(evaluation)]
    steps = [t for t in terminal if t.startswith("try next:")]
    assert steps and digest[:len(steps)] == steps  # what to try first, word for word
    assert set(digest) <= set(terminal)
    ranked = [b for b in evaluation.analysis["buckets"] if not b["too_small"]][:10]
    rows = re.findall(r'<tr><td class="name">(.*?)</td><td>(\d+)</td><td>(\d+)</td>', part)
    assert [(html.unescape(re.sub(r"<[^>]+>", "", name)), int(m), int(n)) for name, m, n in rows] == \
        [(merged_title(b["name"], b["merged"]), b["misses"], b["positives"]) for b in ranked]
    linked = dict(re.findall(r'<a href="#(analysis-\d+)">(.*?)</a>', part))
    assert linked and all(f'id="{anchor}"' in page for anchor in linked)
    assert part.index("<details>") > part.index('<table class="ranked">')  # the raw tables come last, folded


# --- in a real browser ---------------------------------------------------------------------------

def browser():
    if chromium.find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {chromium.INSTALL}")
        pytest.skip(f"headless Chromium is not installed: {chromium.INSTALL}")
    return chromium.Chromium()


TABLE = """Array.from(document.querySelectorAll('table.buckets tbody tr')).map(
    tr => Array.from(tr.cells).map(td => td.textContent))"""
IMAGES = "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
SHOWN = "Array.from(document.querySelectorAll('section.gallery')).filter(s => s.offsetParent !== null).map(s => s.id)"


def test_in_chromium_thumbnails_decode_and_the_table_holds_the_reports_numbers(regressed, tmp_path):
    page_path = tmp_path / "gallery.html"
    page_path.write_text(render_html(regressed), encoding="utf-8")
    document = report_document(regressed)
    with browser() as chrome:
        page = chrome.open(page_path)
        images = page.evaluate(IMAGES)
        assert images and all(done and width > 0 and height > 0 for done, width, height in images)
        assert len(images) == len(data_uris(page_path.read_text()))
        rows = page.evaluate(TABLE)
        head = page.evaluate("Array.from(document.querySelectorAll('table.buckets th')).map(t => t.textContent)")
        by_name = {b["name"]: b for b in document["buckets"]}
        assert sorted(r[0] for r in rows) == sorted(by_name)
        for cells in rows:
            cell = dict(zip(head, cells))
            bucket = by_name[cells[0]]
            assert int(cell["positives"]) == bucket["positives"]
            assert cell["recall"] == f"{bucket['recall']:.3f}"
            assert cell["95% interval"] == f"{bucket['ci_low']:.3f}-{bucket['ci_high']:.3f}"
            assert cell["baseline"] == f"{bucket['baseline_recall']:.3f}"
            assert cell["-missed/+caught"] == f"-{len(bucket['newly_missed'])}/+{len(bucket['newly_caught'])}"
        galleries = page.evaluate(SHOWN)
        assert len(galleries) >= 3
        # the menu shows one gallery; "only new" hides every unit that is not newly missed
        page.evaluate(f"var m = document.getElementById('only-gallery'); m.value = '{galleries[0]}';"
                      "m.dispatchEvent(new Event('change'))")
        assert page.evaluate(SHOWN) == [galleries[0]]
        page.evaluate("var m = document.getElementById('only-gallery'); m.value = '';"
                      "m.dispatchEvent(new Event('change')); var c = document.getElementById('only-new');"
                      "c.checked = true; c.dispatchEvent(new Event('change'))")
        visible = page.evaluate("Array.from(document.querySelectorAll('figure.unit')).filter("
                                "f => f.offsetParent !== null).map(f => f.classList.contains('new'))")
        assert visible and all(visible)
        if SHOTS:
            page.screenshot(SHOTS / "classification-gallery.png")
        # without JavaScript: no menu, and a gallery's anchor shows that gallery alone
        still = chrome.open(page_path.with_name("gallery.html"), javascript=False)
        assert still.evaluate("document.getElementById('filter').offsetParent === null")
        assert len(still.evaluate(SHOWN)) == len(galleries)
        target = chrome.open(page_path, javascript=False)
        target.call("Page.navigate", {"url": page_path.as_uri() + f"#{galleries[1]}"})
        assert target.evaluate("location.hash") == f"#{galleries[1]}"
        assert target.evaluate(SHOWN) == [galleries[1]]
        shot = target.screenshot(tmp_path / "shot.png", full_page=False)
        assert Image.open(io.BytesIO(shot)).size == (1280, 900)


def _iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_gallerys_properties_are_measured_as_the_model_decodes(project, monkeypatch):
    """With a model, the image properties the gallery bins come from the decode threads (no second
    decode), equal to measuring each image on its own; later runs read them from the cache."""
    import pytest_erran
    from pytest_erran import measuring
    from pytest_erran.inference import measurements, properties

    project.model()
    project.data(rows_with_misses())
    paths = sorted(str(p) for p in (project.path / "images").glob("*.png"))
    expected = measurements.measure_all(paths, paths, measurements.Regions.none(), 1, fingerprints=False).images

    def refuse(*args, **kwargs):
        raise AssertionError("measured in a pass of its own")

    monkeypatch.setattr(measuring, "measure_all", refuse)
    options = {"model": str(project.path / "model.onnx"), "data": str(project.path / "dev.csv"),
               "classes": ["ok", "scratch", "dent"], "negative": "ok", "html": "g.html"}
    evaluation = pytest_erran.evaluate(options, cache_dir=project.path / "cache")
    order = [paths.index(p) for p in evaluation.dataset.images["_path"]]
    for k, name in enumerate(properties.NAMES):
        assert evaluation.units[name].tolist() == expected[order, k].tolist()
    again = pytest_erran.evaluate(options, cache_dir=project.path / "cache")  # predictions cached too
    assert again.timing["predicted"] == 0 and again.units["blur"].tolist() == evaluation.units["blur"].tolist()
