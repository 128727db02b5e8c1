"""What the HTML gallery shows: per failing bucket (and per top analysis bucket) its missed units,
the units newly missed since the baseline, and per class its false positives, each with what to
draw on its thumbnail and what to write beneath it. Plain data; html.py renders it.

Everything is in a fixed order (buckets as ranked, units newly missed first then in dataset
order, false positives by score), so the same evaluation always gives the same gallery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..analysis.overlap import ByImage, nearest
from ..units import BOX, DISPLAY, IMAGE_INDEX, PATH, SCORE, SOURCE, Detections, Match
from ..vocabulary import ALL, Metric, TaskName
from .thumbnails import GROUND_TRUTH, PREDICTION, Mark

PROPERTIES = ("brightness", "contrast", "blur", "edge_distance", "area_fraction")
# unit columns that are the unit itself, not a property of it worth a caption line
NOT_SHOWN = {"id", "image_id", "label", "tags", "image", "width", "height", "split", *BOX, *PROPERTIES}
MAX_METADATA = 8  # caption lines of the dataset's own columns
ANALYSIS_GALLERIES = 5  # top analysis buckets that get a gallery


@dataclass
class Item:
    """One thumbnail: the image to draw, the boxes on it, and its caption."""

    key: str  # unique in the gallery: the unit id, or "prediction <n>"
    path: str  # on disk
    source: str  # for error messages
    shown_path: str  # as reports show it
    marks: tuple[Mark, ...]
    caption: list[str]  # the lines beneath it
    details: list[tuple[str, str]]  # properties and metadata, beneath and on hover
    buckets: list[str] = field(default_factory=list)  # the buckets it is missed in
    new: bool = False  # newly missed since the baseline


@dataclass
class Gallery:
    id: str  # the HTML anchor
    kind: str  # "missed", "new", "analysis" or "false_positives"
    title: str
    bucket: str | None
    total: int  # units (or predictions) in the section, shown or not
    items: list[Item]
    note: str = ""


def galleries(evaluation, rows, per_section: int, analysis=None) -> list[Gallery]:
    """The sections, in the order the page shows them; `rows` are the ranked table rows."""
    context = _Context(evaluation)
    out = []
    anchor = {name: f"bucket-{i}" for i, name in enumerate(evaluation.buckets)}
    for row in rows:
        result = row.result
        # misses explain a failed recall or drop; a failed precision has its false positives below
        if result.missed and any(not v.passed and v.requirement.metric in (Metric.RECALL, Metric.DROP)
                                 for v in row.verdicts):
            out.append(_missed_gallery(context, f"missed-{anchor[result.name]}", "missed",
                                       f"Missed in {result.name}", result.name, result.missed, per_section))
    everything = evaluation.buckets.get(ALL)
    if everything is not None and everything.comparison is not None and everything.comparison.newly_missed:
        out.append(_missed_gallery(context, "new", "new", "Newly missed since the baseline", None,
                                   everything.comparison.newly_missed, per_section))
    for i, (name, missed) in enumerate(analysis_buckets(analysis, evaluation)[:ANALYSIS_GALLERIES]):
        if missed:
            out.append(_missed_gallery(context, f"analysis-{i}", "analysis", f"Missed in {name} (analysis)",
                                       name, missed, per_section))
    for k, cls in enumerate(evaluation.classes):
        if cls == evaluation.settings.negative:
            continue
        gallery = _false_positive_gallery(context, k, cls, f"false-positives-{k}", per_section)
        if gallery.total:
            out.append(gallery)
    return out


def analysis_buckets(analysis, evaluation) -> list[tuple[str, list[str]]]:
    """The analysis' ranked buckets as (name, missed unit ids): a record's own `missed` (or
    `units`) list when it has one, else the missed units of the evaluation's bucket of that name.
    Records of any other shape are skipped."""
    if not isinstance(analysis, dict):
        return []
    records = analysis.get("buckets", analysis.get("causes"))
    if isinstance(records, dict):
        records = [{"name": name, **value} for name, value in records.items() if isinstance(value, dict)]
    if not isinstance(records, list):
        return []
    out = []
    for record in records:
        if not isinstance(record, dict):
            continue
        name = record.get("name", record.get("bucket"))
        if not isinstance(name, str):
            continue
        listed = record.get("missed", record.get("units"))
        if isinstance(listed, list) and all(isinstance(u, str) for u in listed):
            missed = listed
        elif name in evaluation.buckets:
            missed = evaluation.buckets[name].missed
        else:
            continue
        out.append((name, list(missed)))
    return out


class _Context:
    """Lookups shared by every section."""

    def __init__(self, evaluation):
        self.evaluation = evaluation
        self.units = evaluation.units
        self.images = evaluation.dataset.images
        self.row_of = {unit: i for i, unit in enumerate(self.units["id"].tolist())}
        self.detection = evaluation.task == TaskName.DETECTION
        everything = evaluation.buckets.get(ALL)
        comparison = everything.comparison if everything is not None else None
        self.new = set(comparison.newly_missed) if comparison is not None else set()
        self.missed_in: dict[str, list[str]] = {}
        for name, result in evaluation.buckets.items():
            if name != ALL:
                for unit in result.missed:
                    self.missed_in.setdefault(unit, []).append(name)
        ids = self.units["id"].to_numpy()
        for name, mask in sorted(getattr(evaluation, "auto_masks", {}).items()):
            for unit in ids[mask]:  # the automatic buckets a unit is in, beneath its thumbnail
                if name not in self.missed_in.get(unit, []):
                    self.missed_in.setdefault(unit, []).append(name)
        settings = evaluation.settings
        self.thresholds = {c: float(settings.class_thresholds.get(c, settings.score_threshold))
                           for c in evaluation.classes}
        if self.detection:
            self.found: Detections = evaluation.predictions
            self.predictions_of = ByImage(self.found.image)
            self.units_of = ByImage(self.units[IMAGE_INDEX].to_numpy())
            self.boxes = self.units[BOX].to_numpy(np.float64)
        self.shown_columns = [c for c in self.units.columns if not str(c).startswith("_") and c not in NOT_SHOWN]
        self.arrays: dict[tuple[str, str], np.ndarray] = {}

    def at(self, column: str, row: int, table: str = "units"):
        """One cell, through a numpy copy of its column made once (pandas' per-cell access
        costs more than the rest of the gallery)."""
        key = (table, column)
        if key not in self.arrays:
            self.arrays[key] = (self.units if table == "units" else self.images)[column].to_numpy()
        return self.arrays[key][row]

    def image(self, index: int) -> tuple[str, str, str]:
        return self.at(PATH, index, "images"), self.at(SOURCE, index, "images"), str(self.at("image", index, "images"))

    def details(self, row: int | None, image: int) -> list[tuple[str, str]]:
        """Properties (of the unit, else of its image), then the dataset's own columns."""
        out = []
        table, at, name_of = (self.units, row, "units") if row is not None else (self.images, image, "images")
        for name in PROPERTIES:
            if name in table.columns:
                out.append((name, _number(self.at(name, at, name_of))))
        if row is not None:
            tags = self.at("tags", row)
            if tags:
                out.append(("tags", ", ".join(sorted(tags))))
            for column in self.shown_columns[:MAX_METADATA]:
                out.append((str(column), _number(self.at(column, row))))
        return out


def _missed_gallery(context: _Context, anchor: str, kind: str, title: str, bucket: str | None,
                    missed: list[str], per_section: int) -> Gallery:
    known = [u for u in missed if u in context.row_of]
    # newly missed first, each group in dataset order
    ordered = sorted(known, key=lambda u: (u not in context.new, context.row_of[u]))
    items = [_missed_item(context, context.row_of[u]) for u in ordered[:per_section]]
    new = sum(u in context.new for u in known)
    notes = [] if context.detection else ["true class → predicted class (score)"]
    if new and kind != "new":
        notes.append(f"{new} newly missed since the baseline, marked and shown first")
    note = "; ".join(notes)
    return Gallery(anchor, kind, title, bucket, len(known), items, note)


def _missed_item(context: _Context, row: int) -> Item:
    at = context.at
    unit = str(at("id", row))
    image = int(at(IMAGE_INDEX, row))
    path, source, _ = context.image(image)
    label = str(at("label", row))
    if context.detection:
        marks, caption = _nearest_prediction(context, row, image, label)
    else:
        marks = ()
        caption = [f"{label} → {at('_pred', row)}{_score(at(SCORE, row))}"]
    return Item(key=unit, path=path, source=source, shown_path=str(at(DISPLAY, row)), marks=marks,
                caption=caption, details=context.details(row, image), buckets=context.missed_in.get(unit, []),
                new=unit in context.new)


def _nearest_prediction(context: _Context, row: int, image: int, label: str):
    box = tuple(float(v) for v in context.boxes[row])
    found = context.found
    candidates = context.predictions_of.rows(image)
    best, iou = nearest(box, found.box[candidates], found.score[candidates])
    marks = [Mark(box, GROUND_TRUTH, label)]
    caption = [f"missed {label}"]
    if best < 0:
        caption.append("no prediction overlaps it")
    else:
        p = int(candidates[best])
        cls = context.evaluation.classes[int(found.label[p])]
        score = float(found.score[p])
        marks.append(Mark(tuple(float(v) for v in found.box[p]), PREDICTION, f"{cls} {score:.2f}", below=True))
        below = " (below its threshold)" if score < context.thresholds[cls] else ""
        caption.append(f"nearest: {cls} {score:.2f}, IoU {iou:.2f}{below}")
    return tuple(reversed(marks)), caption  # the ground truth drawn last, on top


def _false_positive_gallery(context: _Context, k: int, cls: str, anchor: str, per_section: int) -> Gallery:
    title = f"False positives of {cls}"
    if context.detection:
        found = context.found
        wrong = np.flatnonzero((found.match == Match.FALSE_POSITIVE) & (found.label == k))
        ordered = wrong[np.argsort(-found.score[wrong].astype(np.float64), kind="stable")]
        items = [_false_detection(context, int(p), cls) for p in ordered[:per_section]]
        return Gallery(anchor, "false_positives", title, cls, len(wrong), items, "most confident first")
    units = context.units
    predicted = units["_pred"].to_numpy(object)
    labels = units["label"].to_numpy(object)
    wrong = np.flatnonzero((predicted == cls) & (labels != cls))
    scores = units[SCORE].to_numpy(np.float64)[wrong]
    ordered = wrong[np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")]
    items = []
    at = context.at
    for row in ordered[:per_section]:
        image = int(at(IMAGE_INDEX, row))
        path, source, _ = context.image(image)
        items.append(Item(key=str(at("id", row)), path=path, source=source,
                          shown_path=str(at(DISPLAY, row)), marks=(),
                          caption=[f"{labels[row]} → {cls}{_score(at(SCORE, row))}"],
                          details=context.details(int(row), image)))
    return Gallery(anchor, "false_positives", title, cls, len(wrong), items,
                   "true class → predicted class (score), most confident first")


def _false_detection(context: _Context, p: int, cls: str) -> Item:
    found = context.found
    image = int(found.image[p])
    path, source, shown = context.image(image)
    box = tuple(float(v) for v in found.box[p])
    score = float(found.score[p])
    marks = [Mark(box, PREDICTION, f"{cls} {score:.2f}", below=True)]
    caption = [f"false positive {cls} {score:.2f}"]
    rows = context.units_of.rows(image)
    best, iou = nearest(box, context.boxes[rows])
    if best < 0:
        caption.append("no object overlaps it")
    else:
        row = int(rows[best])
        label = str(context.at("label", row))
        marks.insert(0, Mark(tuple(float(v) for v in context.boxes[row]), GROUND_TRUTH, label))
        caption.append(f"nearest object: {label}, IoU {iou:.2f}")
    return Item(key=f"prediction {p}", path=path, source=source, shown_path=shown, marks=tuple(marks),
                caption=caption, details=context.details(None, image))


def _score(value) -> str:
    value = float(value)
    return "" if np.isnan(value) else f" ({value:.2f})"


def _number(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "-" if np.isnan(value) else f"{float(value):.3g}"
    return str(value)
