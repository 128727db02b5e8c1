"""The error analysis of one evaluation, as the JSON-able `Evaluation.analysis` document.

Always (when it applies): `thresholds` of the automatic buckets and where they came from,
`coverage` of every class and bucket per split, `duplicates` across splits (when measured).
With `analyze` (or a review sheet asked for): the ranked buckets of misses with their
experiments, false positives per class, detection error types, possible label errors, drift
between splits, and against a baseline the compare step. docs/analysis.md describes each key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import Settings
from ..errors import ErranError
from ..units import ClassScores, Detections, Match
from ..vocabulary import ALL, EVERY, Metric
from . import auto, compare, coverage, drift, false_positives, label_errors, leakage, ranking, review, tide
from .baseline import Baseline
from .buckets import Bucket, bucket_mask, positive_mask
from .suggestions import Suggestions, auto_cause

SHOWN_LABEL_ERRORS = 50


@dataclass
class Splits:
    """The other splits' rows (units, images) and, when measured, their fingerprints."""

    units: pd.DataFrame
    images: pd.DataFrame
    dhash: np.ndarray | None = None
    pixels: np.ndarray | None = None


@dataclass
class Inputs:
    settings: Settings
    classes: tuple[str, ...]
    units: pd.DataFrame  # the evaluated units with `_hit` and the measured columns
    images: pd.DataFrame
    predictions: ClassScores | Detections
    buckets: dict[str, Bucket]  # the evaluation's buckets (all, classes, configured, required auto)
    thresholds: dict[str, auto.Threshold]
    auto_masks: dict[str, np.ndarray]  # every automatic bucket available, over `units`
    baseline: Baseline | None = None
    others: Splits | None = None
    dhash: np.ndarray | None = None  # of the evaluated images, when measured
    pixels: np.ndarray | None = None
    class_thresholds: dict[str, float] = field(default_factory=dict)  # the score each class needs


@dataclass
class Analysis:
    document: dict
    coverage: dict | None = None
    duplicates: list | None = None
    review: pd.DataFrame | None = None


def analyse(inputs: Inputs) -> Analysis:
    settings = inputs.settings
    document: dict = {}
    if inputs.thresholds:
        document["thresholds"] = [t.document() for t in inputs.thresholds.values()]
    cover = _coverage(inputs)
    if cover is not None:
        document["coverage"] = cover
    duplicates = _duplicates(inputs)
    if duplicates is not None:
        document["duplicates"] = duplicates
    result = Analysis(document, cover, duplicates)
    if settings.analyzing:
        _full(inputs, document, cover, result)
    return result


# --- coverage and leakage: every run -------------------------------------------------------------

def thresholds_for(settings: Settings, units: pd.DataFrame, others: Splits | None) -> dict[str, auto.Threshold]:
    """Every automatic bucket the units have the property of, its threshold calibrated on the
    train split when there is one (image properties on its images, the others on its objects)."""
    specs = auto.available(units.columns)
    train = None
    if others is not None:
        images = others.images[others.images["split"].astype(str) == settings.train_split]
        objects = others.units[others.units["split"].astype(str) == settings.train_split]
        if len(images):
            train = {}
            for spec in specs:
                table = images if spec.column in auto.IMAGE_COLUMNS else objects
                if spec.column in table.columns:
                    train[spec.column] = table[spec.column].to_numpy(float)
    return auto.thresholds(settings.auto, specs, train)


def _other_masks(inputs: Inputs) -> dict[str, np.ndarray | None]:
    """Each bucket over the other splits' units (None where it cannot be told there)."""
    settings, units = inputs.settings, inputs.others.units
    labels = units["label"].to_numpy()
    masks: dict[str, np.ndarray | None] = {ALL: np.ones(len(units), bool)}
    for cls in inputs.classes:
        masks[cls] = labels == cls
    for spec in settings.buckets:
        try:
            masks[spec.name] = bucket_mask(units, spec) if len(units) else np.zeros(0, bool)
        except ErranError:  # a `where` on values those rows lack (a hook's column, a property)
            masks[spec.name] = None
    for name, threshold in inputs.thresholds.items():
        column = threshold.spec.column
        masks[name] = threshold.mask(units[column].to_numpy(float)) if column in units.columns else None
    for name, mask in ranking.tag_masks(units).items():
        masks[name] = mask
    return masks


def _coverage(inputs: Inputs) -> dict | None:
    if inputs.others is None:
        return None
    settings, units = inputs.settings, inputs.units
    positive = positive_mask(units, settings.negative)
    evaluated = {name: bucket.mask for name, bucket in inputs.buckets.items()}
    evaluated.update({name: mask for name, mask in inputs.auto_masks.items() if name not in evaluated})
    evaluated.update(ranking.tag_masks(units))
    other = inputs.others.units
    return coverage.split_coverage(
        evaluated, _other_masks(inputs), positive, positive_mask(other, settings.negative),
        other["split"].astype(str).to_numpy(),
        settings.split, settings.train_split, settings.min_train, warned=set(inputs.buckets))


def _duplicates(inputs: Inputs) -> list | None:
    others = inputs.others
    if inputs.dhash is None or others is None or others.dhash is None:
        return None
    return leakage.duplicates(inputs.images["image"].tolist(), inputs.dhash, inputs.pixels, inputs.settings.split,
                              others.images["image"].tolist(), others.images["split"].astype(str).tolist(),
                              others.dhash, others.pixels, inputs.settings.near_duplicate_bits)


def data_check_verdict(requirement, analysis: Analysis, settings: Settings):
    """The verdict of a data check ('coverage>=1', 'leakage<=0') or of 'coverage(bucket)>=N'."""
    if requirement.metric == Metric.LEAKAGE:
        return leakage.verdict(requirement, analysis.duplicates or [], settings.split)
    if requirement.bucket == EVERY:
        return coverage.every_bucket_verdict(requirement, analysis.coverage)
    return coverage.bucket_verdict(requirement, coverage.train_positives(analysis.coverage, requirement.bucket),
                                   settings.train_split)


# --- the full analysis ---------------------------------------------------------------------------

def _full(inputs: Inputs, document: dict, cover: dict | None, result: Analysis) -> None:
    settings, units, classes = inputs.settings, inputs.units, inputs.classes
    suggestions = Suggestions(settings.suggestions)
    positive = positive_mask(units, settings.negative)
    hit = units["_hit"].to_numpy(bool)
    labels = units["label"].to_numpy()
    defect_classes = [c for c in classes if c != settings.negative]
    configured = {spec.name: inputs.buckets[spec.name].mask for spec in settings.buckets}
    found = ranking.candidates(labels, defect_classes, configured, inputs.auto_masks, ranking.tag_masks(units))
    ranked, examined = ranking.rank(found, positive, hit, settings.min_positives)

    detection = isinstance(inputs.predictions, Detections)
    types = _error_types(inputs) if detection else None
    rare = _rare(inputs, cover, defect_classes)
    uncovered = set(cover["uncovered"]) if cover else set()
    for entry in ranked:
        entry.extra["suggestions"], entry.extra["cause"] = _experiments(entry, suggestions, rare, uncovered)
        if types is not None:
            entry.extra["errors"] = types.counts(units_mask=entry.missed)["missed"]
        else:
            entry.extra["predicted_as"] = _predicted_as(units, entry.missed)
    if inputs.baseline is not None:
        document["compare"] = compare.compare_buckets(examined, units["id"].to_numpy(), hit, labels,
                                                      inputs.baseline, settings.alpha)
    misses = int((positive & ~hit).sum())
    document["summary"] = {"positives": int(positive.sum()), "misses": misses, "examined": len(examined),
                           "min_positives": settings.min_positives, "alpha": settings.alpha}
    document["buckets"] = [entry.document() for entry in ranked]
    document["false_positives"] = _false_positives(inputs, suggestions)
    if types is not None:
        document["error_types"] = _error_type_counts(types, inputs)
    document["label_errors"] = _label_errors(inputs)
    if inputs.others is not None:
        document["drift"] = _drift(inputs, suggestions)
    document["next"] = _next_steps(ranked, document, cover, suggestions)
    if settings.misses is not None:
        result.review = _review(inputs, ranked, types)


def _experiments(entry: ranking.Ranked, suggestions: Suggestions, rare: set[str],
                 uncovered: set[str]) -> tuple[list[str], str]:
    """(experiments, the key they come from) for a ranked bucket."""
    if entry.cls in uncovered or any(name in uncovered for name in [entry.name, *entry.merged]):
        return suggestions.experiments("uncovered"), "uncovered"
    part = None if entry.kind == ranking.CLASS else entry.part
    cause = auto_cause(part) or next((auto_cause(n) for n in entry.merged if auto_cause(n)), None)
    if cause is None and entry.kind == ranking.CLASS:
        cause = "rare" if entry.cls in rare else "class"
    key, found = suggestions.for_bucket(entry.name, part, cause)
    return found, key


def _rare(inputs: Inputs, cover: dict | None, defect_classes: list[str]) -> set[str]:
    """Classes under `[auto] rare` (default 5%) of the positives: of train when counted, else
    of the evaluated split."""
    share = inputs.settings.auto.get("rare", auto.RARE_DEFAULT)
    if cover is not None and cover["train_found"]:
        counts = {e["name"]: e["positives"].get(cover["train_split"]) or 0 for e in cover["buckets"]
                  if e["name"] in defect_classes}
    else:
        labels = inputs.units["label"]
        counts = {c: int((labels == c).sum()) for c in defect_classes}
    return auto.rare_classes(counts, share)


def _predicted_as(units: pd.DataFrame, missed: np.ndarray) -> dict[str, int]:
    if "_pred" not in units.columns:
        return {}
    values, counts = np.unique(units["_pred"].to_numpy(object)[missed].astype(str), return_counts=True)
    return {str(v): int(n) for v, n in sorted(zip(values, counts), key=lambda vc: (-vc[1], vc[0]))}


def _error_types(inputs: Inputs) -> tide.ErrorTypes:
    image, label, box = tide.units_arrays(inputs.units, inputs.classes)
    return tide.error_types(inputs.predictions, image, label, box, inputs.units["_hit"].to_numpy(bool),
                            inputs.settings.iou_threshold)


def _error_type_counts(types: tide.ErrorTypes, inputs: Inputs) -> dict:
    predictions, labels = inputs.predictions, inputs.units["label"].to_numpy()
    counted = np.ones(len(predictions), bool)
    out = {**types.counts(units_mask=~inputs.units["_hit"].to_numpy(bool), predictions_mask=counted),
           "classes": {}}
    for i, cls in enumerate(inputs.classes):
        out["classes"][cls] = types.counts(units_mask=(labels == cls) & ~inputs.units["_hit"].to_numpy(bool),
                                           predictions_mask=predictions.label == i)
    return out


def _targets(settings: Settings) -> dict[str, tuple[float, str]]:
    """class (or 'all') -> (target precision, where it comes from)."""
    found = {}
    for requirement in settings.requirements:
        if requirement.metric == Metric.PRECISION:
            found[requirement.bucket] = (requirement.threshold, f"requirement {requirement.id}")
    return found


def _false_positives(inputs: Inputs, suggestions: Suggestions) -> list[dict]:
    settings, units, predictions, classes = inputs.settings, inputs.units, inputs.predictions, inputs.classes
    if isinstance(predictions, Detections):
        counted = (predictions.match == Match.TRUE_POSITIVE) | (predictions.match == Match.FALSE_POSITIVE)
        positives = {c: int((units["label"] == c).sum()) for c in classes}
        sweeps = false_positives.detection_sweeps(classes, predictions.label, predictions.score, predictions.match,
                                                  counted, predictions.match == Match.TRUE_POSITIVE, positives,
                                                  inputs.class_thresholds)
    else:
        score = units["_score"].to_numpy(float)
        if settings.negative is None:  # a low score cannot become "no defect"
            score = np.full(len(units), np.nan)
        sweeps = false_positives.classification_sweeps(classes, settings.negative, units["_pred"].to_numpy(object),
                                                       score, units["label"].to_numpy(object),
                                                       inputs.class_thresholds)
    targets = _targets(settings)
    out = []
    for sweep in sweeps:
        if sweep.correct.all():
            continue
        if settings.target_precision is not None:
            target, source = settings.target_precision, "target_precision"
        else:
            target, source = targets.get(sweep.cls, targets.get(ALL, (0.9, "default")))
        entry = false_positives.analyse(sweep, target, source, f"class_thresholds.{sweep.cls}")
        if settings.negative is None and not isinstance(predictions, Detections):
            entry["note"] = "a threshold needs `negative`, the class a low score becomes"
        entry["suggestions"] = [text.replace("{class}", entry["class"])
                                for text in suggestions.experiments("false_positives")]
        out.append(entry)
    return sorted(out, key=lambda e: (-e["false_positives"], e["class"]))


def _label_errors(inputs: Inputs) -> list[dict]:
    units, predictions, classes = inputs.units, inputs.predictions, inputs.classes
    index = {c: i for i, c in enumerate(classes)}
    label = units["label"].map(index).to_numpy(np.int64)
    if isinstance(predictions, Detections):
        counted = (predictions.match == Match.TRUE_POSITIVE) | (predictions.match == Match.FALSE_POSITIVE)
        image, _, box = tide.units_arrays(units, classes)
        top, score = label_errors.detection_top(predictions.image[counted], predictions.label[counted],
                                                predictions.score[counted].astype(np.float64),
                                                predictions.box[counted], image, box,
                                                inputs.settings.iou_threshold)
    else:
        top = predictions.index
        if predictions.scores is not None:
            score = predictions.scores[np.arange(len(top)), top].astype(np.float64)
        else:
            score = units["_score"].to_numpy(float)
    found, means = label_errors.candidates(label, top, score, len(classes))
    return [{"id": str(units["id"].iloc[i]), "image": str(units["_display"].iloc[i]), "label": classes[label[i]],
             "predicted": classes[top[i]], "score": float(score[i]), "class_mean": float(means[top[i]])}
            for i in found[:SHOWN_LABEL_ERRORS]]


def _drift(inputs: Inputs, suggestions: Suggestions) -> list[dict]:
    settings, others = inputs.settings, inputs.others
    train_images = others.images[others.images["split"].astype(str) == settings.train_split]
    train_units = others.units[others.units["split"].astype(str) == settings.train_split] \
        if "split" in others.units else others.units.iloc[:0]
    evaluated, train = {}, {}
    for name in auto.IMAGE_COLUMNS:
        if name in inputs.images.columns and name in train_images.columns:
            evaluated[name], train[name] = inputs.images[name].to_numpy(float), train_images[name].to_numpy(float)
    for name in ("object_brightness", "object_contrast", "area_fraction"):
        if name in inputs.units.columns and name in train_units.columns:
            evaluated[name], train[name] = inputs.units[name].to_numpy(float), train_units[name].to_numpy(float)
    return drift.split_drift(evaluated, train, settings.alpha, settings.drift_statistic, suggestions,
                             settings.train_split)


def _next_steps(ranked: list[ranking.Ranked], document: dict, cover: dict | None,
                suggestions: Suggestions) -> list[str]:
    """What to try first: the one or two biggest buckets that hold more misses than chance."""
    steps = []
    if cover and cover["uncovered"]:
        steps.append(f"first fix the split: {coverage.describe(cover, cover['uncovered'][0])}; "
                     + suggestions.experiments("uncovered")[0])
    alpha = document["summary"]["alpha"]
    big = [e for e in ranked if not e.too_small and e.q < alpha and (e.lift is None or e.lift > 1)]
    # a cause with a concrete experiment before a class or tag that only says "look at them"
    big.sort(key=lambda e: e.extra["cause"] in ("review", "class"))
    for entry in big[:2]:
        tried = entry.extra["suggestions"][0] if entry.extra["suggestions"] else "look at its misses"
        steps.append(f"{entry.title} holds {entry.misses} of the {document['summary']['misses']} misses "
                     f"(miss rate {entry.miss_rate:.2f}, lift {_lift(entry.lift)}): {tried}")
    if not big and ranked:
        steps.append(f"no bucket holds significantly more misses than the rest (every q >= {alpha:g}): give the misses "
                     "causes on the review sheet (--erran-misses PATH), then `causes = \"PATH\"`")
    flagged = [d for d in document.get("drift", []) if d["flagged"]]
    for entry in flagged[:1]:
        if entry["suggestions"]:
            steps.append(f"{entry['property']} drifted from train ({drift.describe(entry)}): {entry['suggestions'][0]}")
    return steps


def _lift(value: float | None) -> str:
    return "inf" if value is None else f"{value:.1f}"


def _review(inputs: Inputs, ranked: list[ranking.Ranked], types: tide.ErrorTypes | None) -> pd.DataFrame:
    units, settings = inputs.units, inputs.settings
    positive = positive_mask(units, settings.negative)
    missed = positive & ~units["_hit"].to_numpy(bool)
    chosen = review.choose(ranked, missed, units["id"].to_numpy(), settings.review)
    predictions = inputs.predictions
    if isinstance(predictions, Detections):
        image, label, box = tide.units_arrays(units, inputs.classes)
        # per object, the prediction (of any score) overlapping it most, as the reviewer's hint
        best, iou, _ = tide.best_overlaps(image, label, box, predictions.image, predictions.label,
                                          predictions.box.astype(np.float64))
        best[iou < tide.BACKGROUND_IOU] = -1
        names = np.asarray(inputs.classes, dtype=object)
        prediction = np.where(best >= 0, names[predictions.label[np.clip(best, 0, None)]], "")
        score = np.where(best >= 0, predictions.score[np.clip(best, 0, None)].astype(float), np.nan)
    else:
        prediction, score = units["_pred"].to_numpy(object), units["_score"].to_numpy(float)
    return review.sheet(units, inputs.images, chosen, prediction, score,
                        None if types is None else types.units, inputs.auto_masks)

