"""The terminal summary as (text, markup) lines: failing buckets first, then what to do next."""

from __future__ import annotations

import os
from collections import Counter

from ..analysis.gate import FAILED, INCONCLUSIVE, NOT_RUN, PASSED, REGRESSED, SKIPPED, TOO_SMALL
from ..vocabulary import ALL, METRICS, GateMode, Metric, TaskName, format_threshold
from .analysis_lines import analysis_lines

SHOWN_MISSES = 5
STATUS_TEXT = {FAILED: "FAILED", REGRESSED: "REGRESSED", TOO_SMALL: "too small",
               INCONCLUSIVE: "inconclusive", PASSED: "passed", SKIPPED: "not compared", NOT_RUN: "not run"}
MARKUP = {FAILED: {"red": True, "bold": True}, REGRESSED: {"red": True, "bold": True},
          TOO_SMALL: {"yellow": True}, INCONCLUSIVE: {"yellow": True}, PASSED: {"green": True},
          SKIPPED: {"yellow": True}}


def summary_lines(evaluation, saved_baseline=None, report_path=None) -> list[tuple[str, dict]]:
    lines = [(_header(evaluation), {})]
    if evaluation.model.get("export"):
        lines.append((f"recognised {evaluation.model['export']}", {}))
    if evaluation.baseline is not None:
        drift = evaluation.drift
        lines.append((f"baseline {shown_path(evaluation.baseline.path)} (model {_short(evaluation.baseline.document)}"
                      f", {evaluation.baseline.document['created']}): {drift['shared']} shared, "
                      f"{drift['added']} added, {drift['removed']} removed positives", {}))
    rows = ranked_rows(evaluation)
    lines.append(("", {}))
    lines.extend(_table(rows, evaluation))
    lines.extend(_misses(rows))
    lines.extend(analysis_lines(evaluation))
    lines.extend(confusion_lines(evaluation))
    lines.append(("", {}))
    lines.append(_next_step(evaluation, rows, saved_baseline, report_path))
    return lines


def _header(evaluation) -> str:
    timing = evaluation.timing
    text = (f"{evaluated(evaluation.settings)}  data {shown_path(evaluation.dataset.path)}  "
            f"{len(evaluation.units)} units in {timing['images']} images")
    if timing.get("predicted"):
        rate = timing["predicted"] / max(timing["predict_s"], 1e-9)
        text += f", predicted in {timing['predict_s']:.1f} s ({rate:.0f} img/s)"
    elif evaluation.settings.predictions is None:
        text += ", predictions from cache"
    return text


def evaluated(settings) -> str:
    """What is evaluated: 'model models/v2.onnx' or 'predictions preds.csv'."""
    if settings.predictions:
        return f"predictions {shown_path(settings.predictions)}"
    return f"model {shown_path(settings.model)}"


def shown_path(path) -> str:
    """Relative to the working directory when inside it: shorter, and what the user typed."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _short(document: dict) -> str:
    return document["model"]["sha256"][:8]


class Row:
    def __init__(self, result, verdicts):
        self.result = result
        self.verdicts = verdicts
        order = [FAILED, REGRESSED, TOO_SMALL, INCONCLUSIVE, SKIPPED, PASSED, NOT_RUN]
        self.status = min((v.outcome for v in verdicts), key=order.index) if verdicts else None

    @property
    def failing(self) -> bool:
        return any(not v.passed for v in self.verdicts)

    @property
    def newly_missed(self) -> int:
        return len(self.result.comparison.newly_missed) if self.result.comparison else 0

    @property
    def shortfall(self) -> float:
        """How far below its floor (in the metric's units): a regression has no shortfall."""
        gaps = [v.requirement.threshold - v.value for v in self.verdicts
                if v.outcome in (FAILED, TOO_SMALL) and not v.passed and v.value is not None
                and v.requirement.spec.sign == ">="]
        return max(gaps, default=0.0)

    @property
    def status_text(self) -> str:
        text = STATUS_TEXT.get(self.status, "")
        return text.upper() if self.failing else text  # a failing too_small is a failure

    @property
    def markup(self) -> dict:
        return MARKUP[FAILED] if self.failing else MARKUP.get(self.status, {})

    def rank(self) -> tuple:
        if self.failing:
            return (0, -self.newly_missed, -self.shortfall)
        if self.status in (INCONCLUSIVE, TOO_SMALL, SKIPPED):
            return (1, -self.newly_missed, 0.0)
        return (2 if self.status not in (None, NOT_RUN) else 3, 0, 0.0)


def ranked_rows(evaluation) -> list[Row]:
    """One row per bucket, failing first (the order of every report's table)."""
    by_bucket: dict[str, list] = {}
    for verdict in evaluation.verdicts:
        by_bucket.setdefault(verdict.requirement.bucket, []).append(verdict)
    rows = [Row(result, by_bucket.get(name, [])) for name, result in evaluation.buckets.items()]
    return sorted(rows, key=Row.rank)  # stable: ties keep the bucket order


def _required(verdicts) -> str:
    """'>=0.90 drop<=0.02', 'prec>=0.80', 'fp/img<=0.10'; '(lb)' marks a lower-bound gate."""
    parts = []
    for v in verdicts:
        r = v.requirement
        if r.metric != Metric.DROP:
            lower_bound = " (lb)" if r.metric == Metric.RECALL and r.gate == GateMode.LOWER_BOUND else ""
            limit = f"{r.threshold:.0f}" if r.spec.counts else format_threshold(r.threshold)
            parts.append(f"{r.spec.label}{r.spec.sign}{limit}{lower_bound}")
        if r.max_drop is not None:
            drop = METRICS[Metric.DROP]
            parts.append(f"{drop.label}{drop.sign}{format_threshold(r.max_drop)}")
        if r.min_train is not None and r.metric != Metric.COVERAGE:
            parts.append(f"train>={r.min_train}")
    return " ".join(parts) or "-"


def _number(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_cells(rows: list[Row], evaluation) -> tuple[list[str], list[tuple[list[str], "Row"]]]:
    """The bucket table as text cells, the same in every report: (head, [(cells, row)])."""
    compare = evaluation.baseline is not None
    precision = any(r.result.true_positives is not None for r in rows) and evaluation.task == TaskName.DETECTION
    head = ["bucket", "positives", "recall", f"{evaluation.settings.confidence:.0%} interval"]
    if compare:
        head += ["baseline", "delta", "-missed/+caught", "p"]
    if precision:
        head += ["precision", "fp/image"]
    head += ["required", "status"]
    body = []
    for row in rows:
        r = row.result
        cells = [r.name, str(r.positives), _number(r.recall),
                 f"{r.ci_low:.3f}-{r.ci_high:.3f}" if r.positives else "-"]
        if compare:
            c = r.comparison
            cells += [_number(c.baseline_recall), _signed(c.delta),
                      f"-{len(c.newly_missed)}/+{len(c.newly_caught)}", f"{c.regression_p:.3g}"]
        if precision:
            cells += [_number(r.precision), _number(r.fp_per_image)]
        cells += [_required(row.verdicts), row.status_text]
        body.append((cells, row))
    return head, body


def _table(rows: list[Row], evaluation) -> list[tuple[str, dict]]:
    head, cells_of = table_cells(rows, evaluation)
    body = [(cells, row.markup) for cells, row in cells_of]
    widths = [max(len(head[i]), *(len(cells[i]) for cells, _ in body)) for i in range(len(head))]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) if i < len(cells) - 2 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [(fmt(head), {"bold": True})] + [(fmt(cells), markup) for cells, markup in body]


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _misses(rows: list[Row]) -> list[tuple[str, dict]]:
    lines = []
    for row in rows:
        if not row.failing and row.status not in (INCONCLUSIVE, SKIPPED):
            continue
        r = row.result
        lines.append(("", {}))
        for verdict in row.verdicts:
            if not verdict.passed or verdict.warning:
                lines.append((verdict.headline, MARKUP.get(verdict.outcome, {})))
        if any(v.requirement.metric in (Metric.PRECISION, Metric.FP_PER_IMAGE) and v.outcome != PASSED
               for v in row.verdicts) and r.false_positive_images:
            lines.append((_listing(f"false positives of {r.name}", _counted(r.false_positive_images)), {}))
        comparison = r.comparison
        if comparison is not None and comparison.newly_missed:
            lines.append((_listing(f"newly missed in {r.name}", _paths_of(r, comparison.newly_missed)), {}))
        if r.missed:
            lines.append((_listing(f"missed in {r.name}", r.missed_paths), {}))
    return lines


def _paths_of(result, ids: list[str]) -> list[str]:
    path_of = dict(zip(result.missed, result.missed_paths))
    return [path_of.get(unit, unit) for unit in ids]


def _counted(paths: list[str]) -> list[str]:
    """Each image once, most false positives first: "a.png (x3)"."""
    counts = Counter(paths)
    return [f"{path} (x{n})" if n > 1 else path for path, n in counts.most_common()]


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_MISSES])
    more = f" ... ({len(items)} in all)" if len(items) > SHOWN_MISSES else ""
    return f"  {title}: {shown}{more}"


def _unchanged(evaluation) -> bool:
    """No positive caught or missed anew, added or removed against the baseline."""
    drift, compared = evaluation.drift, evaluation.buckets[ALL].comparison
    return bool(drift and compared and not drift["added"] and not drift["removed"]
                and not compared.newly_missed and not compared.newly_caught)


def _next_step(evaluation, rows, saved_baseline, report_path) -> tuple[str, dict]:
    failing = [r for r in rows if r.failing]
    if saved_baseline is not None:
        return (f"baseline saved to {shown_path(saved_baseline)}; commit it so the next run compares against it", {})
    if evaluation.baseline is not None:
        if any(r.status == REGRESSED for r in failing):
            return ("look at the newly missed images above; if the change is intended, accept these "
                    "results as the new baseline with --erran-save-baseline", {"bold": True})
        if failing:
            small = " (or too few to tell)" if any(r.status == TOO_SMALL for r in failing) else ""
            return (f"look at the missed images above: they keep buckets under their floors{small}. "
                    "To accept these results as the new baseline anyway, run again with "
                    "--erran-save-baseline", {})
        if _unchanged(evaluation):
            return ("every unit is as in the baseline: nothing new to accept", {})
        return ("to accept these results as the new baseline, run again with --erran-save-baseline", {})
    hint = (f"no baseline at {shown_path(evaluation.settings.baseline_path)}: save this run as one with "
            "--erran-save-baseline, so later runs can catch regressions")
    if failing:
        where = f" (all of them are in {shown_path(report_path)})" if report_path else \
            "; --erran-report PATH writes all of them as JSON"
        hint = f"look at the missed images above{where}. {hint[0].upper()}{hint[1:]}"
    return (hint, {})


CONFUSION_MAX_CLASSES = 12  # wider than a terminal past this; the JSON and HTML reports have it all


def confusion_lines(evaluation) -> list[tuple[str, dict]]:
    """Classification: true class (rows) by predicted class (columns), indented under a title."""
    if evaluation.task != TaskName.CLASSIFICATION or len(evaluation.classes) > CONFUSION_MAX_CLASSES:
        return []
    from ..analysis.confusion import confusion_matrix

    classes = evaluation.classes
    counts = confusion_matrix(evaluation.units["label"].to_numpy(), evaluation.units["_pred"].to_numpy(), classes)
    first = max(len(c) for c in classes)
    width = max(5, *(len(c) for c in classes), *(len(str(v)) for v in counts.flat))
    lines = [("", {}), ("confusion matrix (rows: true class, columns: predicted class)", {}),
             ("  " + " " * first + "  " + "  ".join(c.rjust(width) for c in classes), {"bold": True})]
    for cls, row in zip(classes, counts):
        lines.append((f"  {cls.ljust(first)}  " + "  ".join(str(v).rjust(width) for v in row), {}))
    return lines
