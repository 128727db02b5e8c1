"""The pipeline: config -> dataset -> predictions -> hits -> buckets -> metrics -> gate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import baseline as baseline_io
from . import classify
from .buckets import ALL, build_buckets, bucket_names, check_references
from .cache import cache_key, cached_arrays, files_fingerprint
from .config import Settings
from .dataset import Dataset, check_labels, file_sha256, load_classification
from .errors import ErranError
from .gate import Verdict, judge
from .results import BucketResult, bucket_results
from .runner import OnnxModel, default_threads, run_batches


@dataclass
class Evaluation:
    settings: Settings
    classes: tuple[str, ...]
    dataset: Dataset
    model: dict  # path and sha256 of the model (or of the predictions file)
    units: pd.DataFrame  # the dataset's units with `_hit` (and `_pred` for classification)
    buckets: dict[str, BucketResult]
    verdicts: list[Verdict]
    baseline: baseline_io.Baseline | None = None
    drift: dict | None = None  # shared / added / removed positives against the baseline
    timing: dict = field(default_factory=dict)

    def bucket(self, name: str) -> BucketResult:
        if name not in self.buckets:
            raise KeyError(f"no bucket named {name!r}; buckets: {', '.join(self.buckets)}")
        return self.buckets[name]

    @property
    def task(self) -> str:
        return self.settings.task

    @property
    def data(self) -> dict:
        return {"path": str(self.dataset.path), "sha256": self.dataset.sha256, "units": len(self.units)}


def evaluate(settings: Settings, cache_dir: Path | None = None) -> Evaluation:
    started = time.perf_counter()
    model = None
    if settings.predictions is None:
        model = OnnxModel(settings.model)
    dataset = _load_dataset(settings)
    classes = _classes(settings, model, dataset)
    names = bucket_names(classes, settings.negative, settings.buckets)
    check_references(names, classes, settings.negative, settings.buckets,
                     [r.bucket for r in settings.requirements], settings.class_thresholds)
    for requirement in settings.requirements:
        if requirement.metric in ("precision", "fp_per_image") and requirement.bucket not in (ALL, *classes):
            raise ErranError(f"[[require]] {requirement.id}: {requirement.metric} is defined for a "
                             "class's own bucket or 'all' (predictions have a class, not a bucket)")
    check_labels(dataset, classes)
    loaded = time.perf_counter()

    if model is not None:
        units, precision_counts, predicted = _classify_with_model(settings, model, dataset, classes, cache_dir)
        identity = {"path": str(settings.model), "sha256": file_sha256(settings.model)}
    else:
        units, precision_counts, predicted = _classify_from_file(settings, dataset, classes)
        identity = {"path": str(settings.predictions), "sha256": file_sha256(settings.predictions)}
    finished = time.perf_counter()

    buckets = build_buckets(units, classes, settings.negative, settings.buckets)
    baseline = baseline_io.load(settings.baseline_path, settings.task)
    results = bucket_results(units, buckets, settings.negative, settings.confidence, precision_counts,
                             len(dataset.images), baseline)
    for requirement in settings.requirements:
        result = results[requirement.bucket]
        if requirement.metric in ("recall", "drop") and result.positives == 0:
            raise ErranError(
                f"[[require]] bucket = '{requirement.bucket}': the bucket has no positives in "
                f"{dataset.path}, so its recall means nothing; fix the bucket or the data"
            )
    verdicts = [judge(r, results[r.bucket], settings.alpha, settings.confidence)
                for r in settings.requirements]
    return Evaluation(
        settings=settings, classes=classes, dataset=dataset, model=identity, units=units,
        buckets=results, verdicts=verdicts, baseline=baseline,
        drift=_drift(units, settings.negative, baseline) if baseline else None,
        timing={"load_s": loaded - started, "predict_s": finished - loaded, "predicted": predicted,
                "images": len(dataset.images)},
    )


def _load_dataset(settings: Settings) -> Dataset:
    if settings.data is None:
        raise ErranError("no dev set: set `data` in the config or pass --erran-data PATH")
    if settings.task != "classification":
        raise ErranError(f"task = '{settings.task}' is not supported yet")
    return load_classification(settings.data, settings.split)


def _classes(settings: Settings, model: OnnxModel | None, dataset: Dataset) -> tuple[str, ...]:
    if settings.classes:
        return settings.classes
    if model is not None:
        from_model = model.metadata_classes()
        if from_model:
            return from_model
        raise ErranError(f"{settings.model}: no `classes` in the config and none in the model's "
                         "metadata; list them in the config: classes = [\"ok\", \"scratch\", ...]")
    return tuple(sorted(dataset.labels))


def _classify_with_model(settings, model, dataset, classes, cache_dir):
    prep = model.preprocess(settings.preprocess)
    output = model.output_index(settings.output)
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()

    def compute() -> dict[str, np.ndarray]:
        where = f"{settings.model}: output '{model.output_names[output]}'"
        threads = settings.threads or default_threads()
        parts = [classify.interpret_output(batch.outputs[output], classes, where)
                 for batch in run_batches(model, paths, sources, prep, settings.batch_size, threads)]
        joined = classify.concat(parts)
        arrays = {"index": joined.index}
        if joined.scores is not None:
            arrays["scores"] = joined.scores
        return arrays

    key = cache_key(model=file_sha256(settings.model), data=dataset.sha256, ids=images["id"].tolist(),
                    files=files_fingerprint(paths), prep=prep.key(), output=output, classes=classes)
    arrays, from_cache = cached_arrays(cache_dir, key, compute)
    prediction = classify.ClassPredictions(arrays["index"], arrays.get("scores"))
    names, scores = classify.predicted_labels(prediction, classes, settings.class_thresholds, settings.negative)
    units, counts = _with_hits(dataset, names, scores, classes, settings.negative)
    return units, counts, 0 if from_cache else len(paths)


def _classify_from_file(settings, dataset, classes):
    from .predictions_file import read_classification

    images = dataset.images
    labels, scores = read_classification(settings.predictions, images, dataset.all_ids, dataset.all_images)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ErranError(f"{settings.predictions}: predicted label '{unknown[0]}' is not one of the "
                         f"classes {list(classes)}")
    if settings.class_thresholds:
        if scores is None:
            raise ErranError(f"{settings.predictions}: class_thresholds need a `score` column")
        limits = np.array([settings.class_thresholds.get(str(l), -np.inf) for l in labels])
        labels = np.where(scores < limits, settings.negative, labels)
    units, counts = _with_hits(dataset, labels, scores, classes, settings.negative)
    return units, counts, 0


def _with_hits(dataset, names, scores, classes, negative):
    units = dataset.units.copy()
    units["_pred"] = names
    units["_score"] = scores if scores is not None else np.nan
    truth = units["label"].to_numpy()
    units["_hit"] = truth == names
    counts = {}
    for cls in classes:
        if cls != negative:
            predicted = names == cls
            counts[cls] = (int((predicted & (truth == cls)).sum()), int((predicted & (truth != cls)).sum()))
    if counts:
        counts["all"] = tuple(map(sum, zip(*counts.values())))
    return units, counts


def _drift(units: pd.DataFrame, negative: str | None, baseline) -> dict:
    positive = units[units["label"] != negative] if negative is not None else units
    now = dict(zip(positive["id"], positive["label"]))
    shared = sum(1 for unit, label in now.items() if baseline.units.get(unit) == label)
    return {"shared": shared, "added": len(now) - shared, "removed": len(baseline.units) - shared}
