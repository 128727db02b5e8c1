"""The HTML gallery of misses: one self-contained file (thumbnails as data URIs, CSS and script
inline, a Content-Security-Policy that forbids fetching anything), so it opens from a CI
artifact or an email.

It holds the header and the ranked bucket table (the terminal's cells), the confusion matrix
(classification) or precision/recall curves with AP (detection), recall by decile of each image
property, the analysis when one ran, and the galleries (gallery.py). Filtering works without
JavaScript (every gallery is an anchor; a targeted gallery hides the others, by CSS) and better
with it (a bucket menu and a "new since baseline" switch). The same evaluation gives the same
bytes: no clock is read, everything is in a fixed order.
"""

from __future__ import annotations

import html
import math

import numpy as np

from ..analysis.bins import recall_by_bins
from ..analysis.buckets import positive_mask
from ..vocabulary import TaskName
from .analysis_lines import SHOWN_BUCKETS, analysis_lines, ranked_cells, ranked_entries
from .gallery import PROPERTIES, Gallery, galleries
from .terminal import ranked_rows, table_cells
from .thumbnails import GROUND_TRUTH, PREDICTION, thumbnail

PROPERTY_BINS = 10
ANALYSIS_ROWS = 50  # rows of one analysis table; the JSON report has them all
ANALYSIS_DEPTH = 3
CONFUSION_MAX_CLASSES = 40


def render_html(evaluation, *, per_section: int = 48, created: str | None = None) -> str:
    """The page. `created` (a time, already formatted) is shown in the header when given: the
    page reads no clock, so that the same evaluation gives a byte-identical file."""
    rows = ranked_rows(evaluation)
    analysis = getattr(evaluation, "analysis", None)
    sections = galleries(evaluation, rows, per_section, analysis)
    anchors = {g.bucket: g.id for g in sections if g.kind == "missed"}
    thumbnails = _Thumbnails(evaluation.settings.exif)
    thumbnails.prepare([item for g in sections for item in g.items])
    body = [
        _header(evaluation, created),
        _navigation(sections, analysis is not None),
        '<main id="top">',
        _bucket_table(evaluation, rows, anchors),
        _confusion(evaluation) if evaluation.task == TaskName.CLASSIFICATION else _curves(evaluation),
        _property_strips(evaluation),
        _analysis(evaluation, analysis, {g.bucket: g.id for g in sections if g.kind == "analysis"})
        if analysis is not None else "",
        *(_gallery(g, thumbnails) for g in sections),
        "</main>",
    ]
    title = f"erran: {evaluation.model['path']}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # nothing leaves the file: images are data URIs, style and script are inline
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        *[part for part in body if part],
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
        "",
    ])


class _Thumbnails:
    """Each image encoded once, however many sections show it; decoded and encoded in threads
    (Pillow lets go of the GIL), each kept under its item's key, so the order is still fixed."""

    def __init__(self, exif: str):
        self.exif = exif  # images are drawn upright as the model saw them, boxes included
        self.done: dict[str, object] = {}

    def prepare(self, items) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from ..inference.batches import default_threads

        unique = list({item.key: item for item in items}.values())
        with ThreadPoolExecutor(max_workers=default_threads(), thread_name_prefix="erran-thumbnails") as pool:
            futures = [(item.key, pool.submit(thumbnail, item.path, item.source, item.marks, self.exif)) for item in unique]
            for key, future in futures:  # the first failing item, in page order, is the error
                self.done[key] = future.result()

    def get(self, item):
        if item.key not in self.done:
            self.done[item.key] = thumbnail(item.path, item.source, item.marks, self.exif)
        return self.done[item.key]


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _verdict(evaluation) -> tuple[str, str]:
    verdicts = evaluation.verdicts
    failed = sum(not v.passed for v in verdicts)
    if failed:
        return "failed", f"FAILED: {failed} of {len(verdicts)} requirements"
    return "passed", f"passed: all {len(verdicts)} requirements held"


def _header(evaluation, created: str | None) -> str:
    css, verdict = _verdict(evaluation)
    settings = evaluation.settings
    what = "predictions" if settings.predictions else "model"
    facts = [(what, f"{evaluation.model['path']} (sha256 {evaluation.model['sha256'][:12]})"),
             ("data", f"{evaluation.data['path']} (sha256 {evaluation.data['sha256'][:12]})"),
             ("units", f"{len(evaluation.units)} units in {len(evaluation.dataset.images)} images, task "
                       f"{evaluation.task}")]
    baseline = evaluation.baseline
    if baseline is not None:
        document, drift = baseline.document, evaluation.drift
        facts.append(("baseline", f"{_portable(evaluation, baseline.path)}: model {document['model']['sha256'][:12]}, "
                                  f"{document['created']}; {drift['shared']} shared, {drift['added']} added, "
                                  f"{drift['removed']} removed positives"))
    else:
        facts.append(("baseline", "none"))
    if created:
        facts.append(("time", created))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (f'<header><h1>erran <span class="verdict {css}">{_e(verdict)}</span></h1>'
            f'<dl class="facts">{items}</dl></header>')


def _portable(evaluation, path) -> str:
    from ..files import portable_path

    return portable_path(path, evaluation.settings.rootdir)


def _navigation(sections: list[Gallery], analysed: bool) -> str:
    links = ['<a href="#buckets">buckets</a>', '<a href="#peers">metrics</a>', '<a href="#properties">properties</a>']
    if analysed:
        links.append('<a href="#analysis">analysis</a>')
    links += [f'<a href="#{g.id}" class="{g.kind}">{_e(g.title)} ({g.total})</a>' for g in sections]
    options = "".join(f'<option value="{g.id}">{_e(g.title)} ({g.total})</option>' for g in sections)
    has_new = any(item.new for g in sections for item in g.items)
    switch = ('<label><input type="checkbox" id="only-new"> only new since baseline</label>' if has_new else "")
    # hidden until the script runs: without JavaScript the links above are the filter
    form = (f'<form id="filter" hidden><label>show <select id="only-gallery"><option value="">every '
            f'gallery</option>{options}</select></label> {switch}</form>') if sections else ""
    return f'<nav>{" · ".join(links)}{form}</nav>'


def _bucket_table(evaluation, rows, anchors: dict) -> str:
    head, body = table_cells(rows, evaluation)
    out = ['<section id="buckets"><h2>Buckets</h2><table class="buckets"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for cells, row in body:
        css = "failing" if row.failing else (str(row.status) if row.status else "unrequired")
        name = cells[0]
        link = anchors.get(name)
        first = f'<a href="#{link}">{_e(name)}</a>' if link else _e(name)
        tds = [f'<td class="name">{first}</td>'] + [f"<td>{_e(c)}</td>" for c in cells[1:]]
        out.append(f'<tr class="{css}" data-bucket="{_e(name)}">{"".join(tds)}</tr>')
    out.append("</tbody></table>")
    problems = [v for v in evaluation.verdicts if not v.passed or v.warning]
    if problems:
        out.append('<ul class="verdicts">' + "".join(
            f'<li class="{"failing" if not v.passed else "warning"}">{_e(v.headline)}</li>' for v in problems) + "</ul>")
    out.append("</section>")
    return "".join(out)


def summary_fragment(evaluation, gallery_link: str | None) -> str:
    """The verdict and the bucket table as an HTML fragment for another report (pytest-html's
    summary), with a link to the gallery when one was written."""
    css, verdict = _verdict(evaluation)
    rows = ranked_rows(evaluation)
    link = f' <a href="{_e(gallery_link)}">gallery of misses</a>' if gallery_link else ""
    colour = "#c9302c" if css == "failed" else "#2e7d32"
    table = _bucket_table(evaluation, rows, {})
    return (f'<div class="erran"><h2>erran: <span style="color:{colour}">{_e(verdict)}</span>{link}</h2>'
            f"{table}</div>")


def _confusion(evaluation) -> str:
    from ..analysis.confusion import confusion_matrix

    classes = evaluation.classes
    if len(classes) > CONFUSION_MAX_CLASSES:
        return (f'<section id="peers"><h2>Confusion matrix</h2><p>{len(classes)} classes: see '
                "confusion_matrix in the JSON report.</p></section>")
    counts = confusion_matrix(evaluation.units["label"].to_numpy(), evaluation.units["_pred"].to_numpy(), classes)
    out = ['<section id="peers"><h2>Confusion matrix</h2><p class="hint">rows: true class, columns: '
           'predicted class (after class thresholds); shaded by the share of the row</p>'
           '<table class="confusion"><thead><tr><th>true \\ predicted</th>']
    out += [f"<th>{_e(c)}</th>" for c in classes]
    out.append("</tr></thead><tbody>")
    for i, cls in enumerate(classes):
        total = max(int(counts[i].sum()), 1)
        cells = []
        for j, value in enumerate(counts[i]):
            share = value / total
            hue = 120 if i == j else 0
            style = f' style="background:hsla({hue},70%,45%,{share:.2f})"' if value else ""
            cells.append(f'<td class="{"diagonal" if i == j else "off"}"{style}>{int(value)}</td>')
        out.append(f"<tr><th>{_e(cls)}</th>{''.join(cells)}</tr>")
    out.append("</tbody></table></section>")
    return "".join(out)


def _curves(evaluation) -> str:
    from ..analysis.curves import evaluation_curves, mean_ap

    curves = evaluation_curves(evaluation)
    iou = evaluation.settings.iou_threshold
    mean = mean_ap(curves)
    out = [f'<section id="peers"><h2>Precision and recall by score threshold</h2><p class="hint">'
           f'per class, every threshold the predictions offer; the dot is the configured operating point. '
           f'AP at IoU {iou:g} (COCOeval\'s): mean {_fixed(mean)}</p><div class="curves">']
    for cls, curve in curves.items():
        out.append(_curve_svg(cls, curve, iou))
    out.append("</div></section>")
    return "".join(out)


def _curve_svg(cls: str, curve, iou: float) -> str:
    width, height, left, bottom, top, right = 240, 190, 34, 26, 22, 8
    w, h = width - left - right, height - top - bottom

    def x(r):
        return left + r * w

    def y(p):
        return top + (1 - p) * h

    _, recall, precision = curve.plotted()
    points = " ".join(f"{x(r):.1f},{y(p):.1f}" for r, p in zip(recall, precision))
    parts = [f'<figure class="curve"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="precision-recall curve of {_e(cls)}">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" class="plot"/>']
    for t in (0, 0.5, 1):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 12}" class="tick" text-anchor="middle">{t:g}</text>')
        parts.append(f'<text x="{left - 4}" y="{y(t) + 4:.1f}" class="tick" text-anchor="end">{t:g}</text>')
    parts.append(f'<text x="{left + w / 2:.1f}" y="{height - 1}" class="axis" text-anchor="middle">recall</text>')
    parts.append(f'<text x="10" y="{top + h / 2:.1f}" class="axis" text-anchor="middle" '
                 f'transform="rotate(-90 10 {top + h / 2:.1f})">precision</text>')
    if points:
        parts.append(f'<polyline points="{points}" class="pr"/>')
    if curve.operating_precision is not None and curve.operating_recall is not None:
        parts.append(f'<circle cx="{x(curve.operating_recall):.1f}" cy="{y(curve.operating_precision):.1f}" r="4" '
                     f'class="operating"><title>score &gt;= {curve.threshold:g}: precision '
                     f'{curve.operating_precision:.3f}, recall {curve.operating_recall:.3f}</title></circle>')
    parts.append(f'<text x="{left}" y="14" class="title">{_e(cls)}: AP@{iou:g} {_fixed(curve.ap)}</text></svg>')
    operating = (f"at score ≥ {curve.threshold:g}: precision {_fixed(curve.operating_precision)}, recall "
                 f"{_fixed(curve.operating_recall)}")
    parts.append(f"<figcaption>{_e(operating)}; {curve.positives} objects</figcaption></figure>")
    return "".join(parts)


def _property_strips(evaluation) -> str:
    units = evaluation.units
    positive = positive_mask(units, evaluation.settings.negative)
    hit = units["_hit"].to_numpy(bool)[positive]
    strips = []
    for name in PROPERTIES:
        if name not in units.columns:
            continue
        values = units[name].to_numpy(np.float64)[positive]
        bins = recall_by_bins(values, hit, PROPERTY_BINS)
        if not bins:
            continue
        cells = []
        for b in bins:
            recall = b.recall
            colour = _recall_colour(recall)
            span = f"{name} {_short(b.low)}..{_short(b.high)}"
            cells.append(f'<div class="bin" style="background:{colour}" title="{_e(span)}: recall '
                         f'{_fixed(recall)} ({b.hits}/{b.positives})"><b>{_fixed(recall, 2)}</b>'
                         f'<small>{b.hits}/{b.positives}</small><small>≤{_short(b.high)}</small></div>')
        strips.append(f'<div class="strip"><h3>{_e(name)} <small>low → high, '
                      f'{len(bins)} bins of the positives</small></h3><div class="bins">{"".join(cells)}</div></div>')
    if not strips:
        return ""
    return ('<section id="properties"><h2>Recall by image property</h2><p class="hint">each cell: recall of the '
            'positives in one decile of the property (hits/positives, upper edge beneath); red at 0.5 '
            'or below, yellow at 0.75, green at 1</p>'
            + "".join(strips) + "</section>")


# the lines of the terminal's analysis worth reading first, and their order
DIGEST = ("try next:", "compare:", "coverage:", "leakage:", "possible label errors", "drift from",
          "false positives:", "error types:", "error analysis:", "thresholds:", "too small to tell")


def _analysis(evaluation, analysis, anchors: dict) -> str:
    """What to try and what changed first (the terminal's own lines), then the ranked buckets of
    misses as a table linked to their galleries, then every table of the analysis, folded."""
    return ('<section id="analysis"><h2>Error analysis</h2>' + _digest(evaluation) + _ranked(analysis, anchors)
            + '<details><summary>every table of the analysis (the JSON report\'s "analysis")</summary>'
            + _value(analysis, 0) + "</details></section>")


def _digest(evaluation) -> str:
    """Only for the document the analysis writes (a hook or a test may set another)."""
    cover = evaluation.analysis.get("coverage")
    if ranked_entries(evaluation.analysis) is None and not (isinstance(cover, dict) and "train_found" in cover):
        return ""
    lines = [text for text, _ in analysis_lines(evaluation) if text.startswith(DIGEST)]
    lines.sort(key=lambda text: next(i for i, p in enumerate(DIGEST) if text.startswith(p)))
    if not lines:
        return ""
    strong = ("try next:", "compare:", "coverage:")
    return '<ul class="digest">' + "".join(
        f'<li class="{"strong" if text.startswith(strong) else ""}">{_e(text)}</li>' for text in lines) + "</ul>"


def _ranked(analysis, anchors: dict) -> str:
    """The ranked buckets of misses, the terminal's cells, each name linked to its gallery."""
    ranked = ranked_entries(analysis)
    if not ranked:
        return ""
    head, rows = ranked_cells(ranked[:SHOWN_BUCKETS], "compare" in analysis)
    out = ['<table class="ranked"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for b, (title, *numbers, tried) in zip(ranked, rows):
        name = _e(title)
        if b["name"] in anchors:
            name = f'<a href="#{anchors[b["name"]]}">{name}</a>'
        out.append(f'<tr><td class="name">{name}</td>' + "".join(f"<td>{c}</td>" for c in numbers)
                   + f'<td class="try">{_e(tried)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _value(value, depth: int) -> str:
    """Any JSON-able value: a list of records as a table, a dict as keyed sections (records and
    scalars as a two-column table), anything else as text."""
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if _scalar(v)}
        nested = {k: v for k, v in value.items() if not _scalar(v)}
        out = []
        if scalars:
            out.append('<table class="analysis"><tbody>' + "".join(
                f"<tr><th>{_e(k)}</th><td>{_e(_text(v))}</td></tr>" for k, v in scalars.items()) + "</tbody></table>")
        for key, inner in nested.items():
            level = min(3 + depth, 6)
            body = _value(inner, depth + 1) if depth < ANALYSIS_DEPTH else f"<p>{_e(_text(inner))}</p>"
            out.append(f'<div class="analysis-part"><h{level}>{_e(key)}</h{level}>{body}</div>')
        return "".join(out)
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return _records(value)
        if all(_scalar(v) for v in value):
            shown = ", ".join(_text(v) for v in value[:ANALYSIS_ROWS])
            more = f" ... and {len(value) - ANALYSIS_ROWS} more" if len(value) > ANALYSIS_ROWS else ""
            return f"<p>{_e(shown + more)}</p>"
        return "".join(_value(v, depth + 1) for v in value[:ANALYSIS_ROWS])
    return f"<p>{_e(_text(value))}</p>"


def _records(records: list[dict]) -> str:
    columns: dict[str, None] = {}
    for record in records:
        for key in record:
            columns.setdefault(str(key), None)
    out = ['<table class="analysis"><thead><tr>' + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr></thead><tbody>"]
    for record in records[:ANALYSIS_ROWS]:
        out.append("<tr>" + "".join(f"<td>{_e(_text(record.get(c)))}</td>" for c in columns) + "</tr>")
    if len(records) > ANALYSIS_ROWS:
        out.append(f'<tr><td colspan="{len(columns)}">... and {len(records) - ANALYSIS_ROWS} more</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_text(v) for v in value[:20])
        return shown + (f" ... and {len(value) - 20} more" if len(value) > 20 else "")
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in list(value.items())[:20])
    return str(value)


def _gallery(gallery: Gallery, thumbnails: _Thumbnails) -> str:
    shown = len(gallery.items)
    count = f"{gallery.total}" if shown == gallery.total else f"{shown} of {gallery.total}, the rest in the JSON report"
    legend = ""
    if any(item.marks for item in gallery.items):
        legend = (f' <span class="legend"><i style="border-color:{GROUND_TRUTH}"></i>ground truth '
                  f'<i style="border-color:{PREDICTION}"></i>prediction</span>')
    note = f'<p class="hint">{_e(gallery.note)}</p>' if gallery.note else ""
    bucket = f' data-bucket="{_e(gallery.bucket)}"' if gallery.bucket is not None else ""
    out = [f'<section class="gallery {gallery.kind}" id="{gallery.id}"{bucket}><h2>{_e(gallery.title)} '
           f'<small>({_e(count)})</small>{legend}</h2>{note}<p class="back"><a href="#top">show everything</a></p>'
           '<div class="grid">']
    for item in gallery.items:
        thumb = thumbnails.get(item)
        css = "unit new" if item.new else "unit"
        lines = "".join(f"<span>{_e(line)}</span>" for line in item.caption)
        details = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in item.details)
        buckets = f'<span class="buckets">in {_e(", ".join(item.buckets))}</span>' if item.buckets else ""
        badge = '<b class="badge">new</b>' if item.new else ""
        zoom = '<b class="badge zoom">zoomed</b>' if thumb.zoomed else ""
        hover = "; ".join([item.shown_path, *item.caption, *(f"{k} {v}" for k, v in item.details),
                           *([f"in {', '.join(item.buckets)}"] if item.buckets else [])])
        out.append(f'<figure class="{css}" title="{_e(hover)}">{badge}{zoom}<img src="{thumb.uri}" '
                   f'width="{thumb.width}" height="{thumb.height}" alt="{_e(item.shown_path)}">'
                   f'<figcaption><code>{_e(item.shown_path)}</code>{lines}{buckets}'
                   f'<dl>{details}</dl></figcaption></figure>')
    out.append("</div></section>")
    return "".join(out)


def _recall_colour(recall: float | None) -> str:
    """Red at 0.5 or below, yellow at 0.75, green at 1: the range where gates live."""
    if recall is None:
        return "#888"
    hue = 120 * min(max((recall - 0.5) / 0.5, 0.0), 1.0)
    return f"hsl({hue:.0f},65%,40%)"


def _fixed(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _short(value: float) -> str:
    return f"{value:.3g}"


STYLE = """
:root{--fg:#1d1d1f;--muted:#6e6e73;--line:#d2d2d7;--bg:#fff;--panel:#f5f5f7;--bad:#c9302c;--good:#2e7d32;--warn:#b26a00}
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{padding:16px 24px 8px;border-bottom:1px solid var(--line)}h1{margin:0 0 8px;font-size:22px}
.verdict{font-size:15px;padding:2px 10px;border-radius:12px;color:#fff;vertical-align:middle}
.verdict.failed{background:var(--bad)}.verdict.passed{background:var(--good)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}.facts dt{color:var(--muted)}.facts dd{margin:0}
nav{position:sticky;top:0;z-index:2;background:var(--panel);padding:8px 24px;border-bottom:1px solid var(--line)}
nav a{color:#0a58ca;text-decoration:none}nav a.false_positives{color:#6f42c1}nav form{margin-top:6px}
main{padding:0 24px 40px}h2{font-size:18px;margin:24px 0 8px}h2 small{font-weight:normal;color:var(--muted)}
.hint{color:var(--muted);margin:0 0 8px}table{border-collapse:collapse}th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{background:var(--panel)}td.name,th:first-child{text-align:left}
table.buckets td:nth-last-child(-n+2),table.buckets th:nth-last-child(-n+2){text-align:left}
tr.failing td{color:var(--bad);font-weight:600}tr.passed td:last-child{color:var(--good)}
tr.inconclusive td:last-child,tr.too_small td:last-child,tr.skipped td:last-child{color:var(--warn)}
ul.verdicts{padding-left:18px}li.failing{color:var(--bad)}li.warning{color:var(--warn)}
table.confusion td{min-width:48px;text-align:center}
.curves{display:flex;flex-wrap:wrap;gap:12px}.curve{margin:0}.curve figcaption{font-size:12px;color:var(--muted);max-width:240px}
svg .plot{fill:#fafafa;stroke:var(--line)}svg .pr{fill:none;stroke:#0a84ff;stroke-width:2}svg .operating{fill:#ff3b30;stroke:#fff;stroke-width:1.5}
svg text{font:11px system-ui,sans-serif;fill:var(--muted)}svg .title{fill:var(--fg);font-weight:600}
.strip{margin:6px 0 10px}.strip h3{font-size:14px;margin:0 0 4px}.strip h3 small{font-weight:normal;color:var(--muted)}
.bins{display:flex;gap:2px;max-width:900px}.bin{flex:1;color:#fff;text-align:center;padding:3px 0;border-radius:3px;font-size:12px}
.bin b,.bin small{display:block}.bin small{opacity:.9;font-size:10px}
table.analysis{margin:4px 0 12px}table.analysis td,table.analysis th{text-align:left;white-space:normal}
ul.digest{padding-left:18px;max-width:1100px}ul.digest li{margin:2px 0}ul.digest li.strong{font-weight:600}
table.ranked{margin:8px 0 12px}table.ranked td.name{white-space:normal;max-width:340px}table.ranked td.try,table.ranked th:last-child{text-align:left;white-space:normal;min-width:200px}
details{margin:8px 0}details summary{cursor:pointer;color:var(--muted)}
.gallery{border-top:1px solid var(--line)}.back{margin:0 0 6px;font-size:12px}
.legend{font-size:12px;font-weight:normal;color:var(--muted);margin-left:12px}.legend i{display:inline-block;width:12px;height:10px;border:2px solid;margin:0 4px 0 10px;vertical-align:middle}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(216px,1fr));gap:12px}
figure.unit{position:relative;margin:0;padding:6px;border:1px solid var(--line);border-radius:6px;background:var(--bg)}
figure.unit.new{border:2px solid var(--bad)}
figure.unit img{display:block;width:100%;height:auto;max-height:256px;object-fit:contain;background:#222;image-rendering:pixelated}
figcaption{font-size:12px;margin-top:4px;overflow-wrap:anywhere}figcaption span{display:block}figcaption code{font-size:11px;color:var(--muted)}
figcaption .buckets{color:#6f42c1}figcaption dl{display:grid;grid-template-columns:max-content 1fr;gap:0 6px;margin:4px 0 0;color:var(--muted);font-size:11px}
figcaption dd{margin:0}
.badge{position:absolute;top:8px;left:8px;background:var(--bad);color:#fff;font-size:11px;padding:0 6px;border-radius:8px}
.badge.zoom{left:auto;right:8px;background:#555}
html:not(.scripted) main:has(.gallery:target) .gallery:not(:target){display:none}
@media (prefers-color-scheme:dark){:root{--fg:#f5f5f7;--muted:#a1a1a6;--line:#3a3a3c;--bg:#1c1c1e;--panel:#2c2c2e}nav a{color:#6ea8fe}svg .plot{fill:#2c2c2e}}
"""

SCRIPT = """
(function () {
  var form = document.getElementById("filter");
  if (!form) { return; }
  document.documentElement.classList.add("scripted");  // the script filters, not :target
  form.hidden = false;
  var menu = document.getElementById("only-gallery");
  var onlyNew = document.getElementById("only-new");
  function apply() {
    var wanted = menu.value, fresh = onlyNew !== null && onlyNew.checked;
    document.querySelectorAll("section.gallery").forEach(function (section) {
      var visible = 0;
      section.querySelectorAll("figure.unit").forEach(function (figure) {
        var show = !fresh || figure.classList.contains("new");
        figure.hidden = !show;
        if (show) { visible += 1; }
      });
      section.hidden = (wanted !== "" && section.id !== wanted) || visible === 0;
    });
  }
  menu.addEventListener("change", apply);
  if (onlyNew !== null) { onlyNew.addEventListener("change", apply); }
  var start = location.hash.slice(1);
  if (start && menu.querySelector('option[value="' + start + '"]')) { menu.value = start; }
  apply();
})();
"""
