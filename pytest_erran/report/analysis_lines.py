"""The terminal summary's error-analysis lines, from `Evaluation.analysis` (the JSON section):
coverage warnings and failed data checks on every run; with `analyze` the ranked buckets of
misses and what to try, false positives, error types, label errors, drift, leakage, compare."""

from __future__ import annotations

from ..analysis import coverage as coverage_text
from ..analysis import drift as drift_text
from ..analysis import false_positives as fp_text
from ..analysis import leakage as leakage_text
from ..analysis.ranking import merged_title
from ..analysis.tide import FALSE_POSITIVE_TYPES, MISSED_TYPES
from ..vocabulary import EVERY

SHOWN_BUCKETS = 10
SHOWN = 3
WARN = {"yellow": True}
BAD = {"red": True, "bold": True}


def analysis_lines(evaluation) -> list[tuple[str, dict]]:
    document = evaluation.analysis or {}
    lines = []
    for verdict in evaluation.verdicts:  # data checks have no bucket row to show them on
        if verdict.requirement.bucket == EVERY and not verdict.passed:
            lines += [("", {}), (verdict.headline, BAD)]
    cover = document.get("coverage")
    if cover is not None:
        lines += _coverage(cover)
    duplicates = document.get("duplicates")
    if duplicates and "buckets" not in document:
        lines += _leakage(duplicates)
    if "buckets" in document:
        lines += _full(document)
    return lines


def _coverage(cover: dict) -> list[tuple[str, dict]]:
    if not cover["train_found"]:
        return [("", {}), (f"coverage: no '{cover['train_split']}' rows in the data (splits: "
                           f"{', '.join(cover['splits'])}); set `train_split` to count positives in training", WARN)]
    lines = []
    for name in cover["uncovered"]:
        lines.append((f"coverage: {coverage_text.describe(cover, name)} (min_train {cover['min_train']}): no model "
                      f"learns what it never saw; {_coverage_fix(cover, name)}", WARN))
    return ([("", {})] + lines) if lines else []


def _coverage_fix(cover: dict, name: str) -> str:
    """Move images from the split that holds the most of them other than the gated one (moving
    the gated split's own images would change what the gate measures), else collect more."""
    train, gated = cover["train_split"], cover["evaluated_split"]
    found = next(b["positives"] for b in cover["buckets"] if b["name"] == name)
    donors = sorted(((n, s) for s, n in found.items() if n and s not in (train, gated)), reverse=True)
    if donors:
        return f"move some of its {donors[0][1]} images into {train}, or collect more"
    return f"collect more for {train}, or move some of its {gated} images there"


def _leakage(duplicates: list[dict]) -> list[tuple[str, dict]]:
    shown = "; ".join(leakage_text.describe(e) for e in duplicates[:SHOWN])
    more = f" ... ({len(duplicates)} pairs in all)" if len(duplicates) > SHOWN else ""
    return [(f"leakage: {shown}{more}", WARN)]


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return f"{value:.2g}"


def _full(document: dict) -> list[tuple[str, dict]]:
    summary = document["summary"]
    lines = [("", {}), (f"error analysis: {summary['misses']} misses among {summary['positives']} positives; "
                        f"{summary['examined']} buckets examined (q: Benjamini-Hochberg over all of them)",
                        {"bold": True})]
    thresholds = document.get("thresholds")
    if thresholds:
        described = []
        for t in thresholds:
            origin = (f"train p{t['percentile']:g} of {t['train_values']}" if t["source"] == "train"
                      else "[auto]" if t["source"] == "config" else "default")
            described.append(f"{t['bucket']} = {t['property']} {t['operator']} {t['value']:.4g} ({origin})")
        lines.append(("thresholds: " + ", ".join(described), {}))
    ranked = ranked_entries(document)
    small = [b for b in document["buckets"] if b["too_small"]]
    compare = "compare" in document
    if ranked:
        lines += _table(ranked[:SHOWN_BUCKETS], compare)
        if len(ranked) > SHOWN_BUCKETS:
            more = len(ranked) - SHOWN_BUCKETS
            lines.append((f"  ... {more} more bucket{'s' if more > 1 else ''} of misses in the JSON report "
                          "(--erran-report PATH)", {}))
    else:
        lines.append(("no bucket of misses is big enough to rank", {}))
    if small:
        listed = ", ".join(f"{b['name']} ({b['misses']}/{b['positives']} missed)" for b in small[:6])
        more = f" ... ({len(small)} in all)" if len(small) > 6 else ""
        lines.append((f"too small to tell (< {summary['min_positives']} positives): {listed}{more}", {}))
    for entry in document.get("false_positives", [])[:SHOWN]:
        lines.append((f"false positives: {fp_text.describe(entry)}", {}))
    types = document.get("error_types")
    if types:
        missed, wrong = types["missed"], types["false_positives"]
        lines.append((f"error types: missed objects {sum(missed.values())} ("
                      + ", ".join(f"{t} {missed[t]}" for t in MISSED_TYPES) + f"); false positives "
                      f"{sum(wrong.values())} (" + ", ".join(f"{t} {wrong[t]}" for t in FALSE_POSITIVE_TYPES) + ")", {}))
    errors = document.get("label_errors", [])
    if errors:
        listed = "; ".join(f"{e['image']} labelled {e['label']}, the model says {e['predicted']} at {e['score']:.2f} "
                           f"(its mean when right {e['class_mean']:.2f})" for e in errors[:SHOWN])
        more = f" ... ({len(errors)} in all)" if len(errors) > SHOWN else ""
        lines.append((f"possible label errors (check them; they still count as misses): {listed}{more}", WARN))
    for entry in document.get("drift", []):
        if entry["flagged"]:
            tried = f": {entry['suggestions'][0]}" if entry["suggestions"] else ""
            lines.append((f"drift from {entry['train_split']}: {drift_text.describe(entry)}{tried}", WARN))
    if document.get("duplicates"):
        lines += _leakage(document["duplicates"])
    lines += [(line, {"bold": True}) for line in steps(document)]
    return lines


def ranked_entries(document: dict) -> list[dict] | None:
    """The buckets of misses big enough to rank, in rank order; None for a document the analysis
    did not write (a hook's, a test's), which the reports render from its structure instead."""
    buckets = document.get("buckets")
    if not isinstance(document.get("summary"), dict) or not isinstance(buckets, list) \
            or not all(isinstance(b, dict) for b in buckets):
        return None
    return [b for b in buckets if not b["too_small"]]


def ranked_cells(entries: list[dict], compare: bool) -> tuple[list[str], list[list[str]]]:
    """(head, one row of cells per entry): the ranked table as text, for every report."""
    head = ["bucket", "misses", "positives", "miss rate", "share", "lift", "p", "q"]
    if compare:
        head += ["+caught/-missed"]
    head += ["try"]
    rows = []
    for b in entries:
        cells = [merged_title(b["name"], b["merged"]), str(b["misses"]), str(b["positives"]),
                 _number(b["miss_rate"]), f"{b['share']:.2f}", "inf" if b["lift"] is None else f"{b['lift']:.1f}",
                 _p(b["p"]), _p(b["q"])]
        if compare:
            cells.append(f"+{b.get('newly_caught', 0)}/-{b.get('newly_missed', 0)}")
        cells.append(b["suggestions"][0] if b["suggestions"] else "-")
        rows.append(cells)
    return head, rows


def steps(document: dict) -> list[str]:
    """The compare step's lines, then what to try next."""
    return [f"compare: {line}" for line in document.get("compare", [])] + \
        [f"try next: {step}" for step in document.get("next", [])]


def _table(entries: list[dict], compare: bool) -> list[tuple[str, dict]]:
    head, rows = ranked_cells(entries, compare)
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i in (0, len(cells) - 1) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [(fmt(head), {"bold": True})] + [(fmt(r), {}) for r in rows]
