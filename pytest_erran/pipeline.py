"""The pipeline: config -> dataset -> predictions -> hits -> buckets -> metrics -> gate."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import baseline as baseline_io
from .analysis.buckets import ALL, bucket_names, build_buckets, check_references, positive_mask
from .config import Settings
from .analysis.gate import Verdict, judge
from .analysis.results import BucketResult, PrecisionCounts, bucket_results
from .errors import ErranError
from .inference import properties
from .inference.batches import default_threads, run_batches
from .inference.cache import cache_key, cached_arrays, files_fingerprint
from .inference.onnx_model import OnnxModel
from .tasks.classification import outputs as classify
from .tasks.classification.data import load_classification
from .tasks.dataset import Dataset, check_labels, file_sha256


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
        return {"path": portable_path(self.dataset.path, self.settings.rootdir), "sha256": self.dataset.sha256,
                "units": len(self.units)}


def evaluate(settings: Settings, cache_dir: Path | None = None) -> Evaluation:
    started = time.perf_counter()
    model = OnnxModel(settings.model) if settings.predictions is None else None
    dataset, file_classes, crowd = _load_dataset(settings)
    classes = _classes(settings, model, dataset, file_classes)
    # Everything that needs no predictions is checked before the model runs over every image.
    _check_references(settings, dataset, classes, crowd)
    _add_image_properties(settings, dataset, cache_dir)
    buckets = _checked_buckets(settings, dataset, classes)
    baseline = baseline_io.load(settings.baseline_path, settings.task)
    loaded = time.perf_counter()

    source = settings.predictions or settings.model
    identity = {"path": portable_path(source, settings.rootdir),
                "sha256": model.sha256() if model is not None else file_sha256(source)}
    cache = _Cache(cache_dir, identity["sha256"], dataset)
    if settings.task == "detection":
        predict = _detect_with_model if model is not None else _detect_from_file
        units, precision_counts, predicted = predict(settings, model, dataset, classes, crowd, cache)
    elif model is not None:
        units, precision_counts, predicted = _classify_with_model(settings, model, dataset, classes, cache)
    else:
        units, precision_counts, predicted = _classify_from_file(settings, dataset, classes)
    finished = time.perf_counter()

    results = bucket_results(units, buckets, settings.negative, settings.confidence, precision_counts,
                             len(dataset.images), baseline)
    verdicts = [judge(r, results[r.bucket], settings.alpha, settings.confidence)
                for r in settings.requirements]
    return Evaluation(
        settings=settings, classes=classes, dataset=dataset, model=identity, units=units,
        buckets=results, verdicts=verdicts, baseline=baseline,
        drift=_drift(results[ALL], baseline) if baseline else None,
        timing={"load_s": loaded - started, "predict_s": finished - loaded, "predicted": predicted,
                "images": len(dataset.images)},
    )


def portable_path(path: Path, rootdir: Path) -> str:
    """Relative to the rootdir (with /) when inside it: baselines are committed and shared."""
    try:
        return Path(path).resolve().relative_to(rootdir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _add_image_properties(settings: Settings, dataset: Dataset, cache_dir: Path | None) -> None:
    """brightness, contrast and blur columns, measured only when a bucket's `where` uses them.
    They depend on the images alone, so they are cached apart from any model's predictions."""
    wanted = properties.referenced([b.where for b in settings.buckets if b.where], dataset.units.columns)
    if not wanted:
        return
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()

    def make_key() -> str:
        return cache_key(kind="properties", data=dataset.sha256, ids=images["id"].tolist(),
                         files=files_fingerprint(paths))

    def compute() -> dict[str, np.ndarray]:
        return {"values": properties.measure_all(paths, sources, settings.threads or default_threads())}

    values = cached_arrays(cache_dir, make_key, compute)[0]["values"]
    rows = dataset.units["_image_index"].to_numpy()
    for name in wanted:
        column = values[:, properties.NAMES.index(name)]
        images[name] = column
        dataset.units[name] = column[rows]


def _check_references(settings: Settings, dataset: Dataset, classes: tuple[str, ...],
                      crowd: pd.DataFrame | None) -> None:
    """Labels, buckets, thresholds and requirements against the classes: cheap, so first."""
    check_labels(dataset, classes)
    if crowd is not None and len(crowd):
        unknown = sorted(set(crowd["label"]) - set(classes))
        if unknown:
            raise ErranError(f"{dataset.path}: crowd boxes of class '{unknown[0]}', which is not one "
                             f"of the classes {list(classes)}")
    with _naming(settings):
        names = bucket_names(classes, settings.negative, settings.buckets)
        check_references(names, classes, settings.negative, settings.buckets,
                         [r.bucket for r in settings.requirements], settings.class_thresholds)
        for requirement in settings.requirements:
            if requirement.metric in ("precision", "fp_per_image") and requirement.bucket not in (ALL, *classes):
                raise ErranError(f"[[require]] {requirement.id}: {requirement.metric} is defined for a "
                                 "class's own bucket or 'all' (predictions have a class, not a bucket)")


def _checked_buckets(settings: Settings, dataset: Dataset, classes: tuple[str, ...]) -> dict:
    """The buckets, each required one checked to hold positives (else its recall means nothing)."""
    with _naming(settings):
        buckets = build_buckets(dataset.units, classes, settings.negative, settings.buckets)
        positive = positive_mask(dataset.units, settings.negative)
        for requirement in settings.requirements:
            if requirement.metric in ("recall", "drop") and not (buckets[requirement.bucket].mask & positive).any():
                raise ErranError(f"[[require]] bucket = '{requirement.bucket}': the bucket has no "
                                 f"positives in {dataset.path}, so its recall means nothing; fix the "
                                 "bucket or the data")
    return buckets


@contextmanager
def _naming(settings: Settings):
    """Errors about the config's own entries start with the config file."""
    try:
        yield
    except ErranError as e:
        raise ErranError(f"{settings.source}: {e}") from None


def _load_dataset(settings: Settings) -> tuple[Dataset, tuple[str, ...] | None, pd.DataFrame | None]:
    """The dataset, the class names the file itself defines (detection), and crowd boxes."""
    if settings.data is None:
        where = (f"in {settings.config_path}" if settings.config_path else
                 f"in a config (no erran.toml or [tool.erran] in the rootdir {settings.rootdir})")
        raise ErranError(f"no dev set: set `data` {where} or pass --erran-data PATH")
    if settings.task == "detection":
        from .tasks.detection.data import load_detection

        if settings.negative is not None:
            raise ErranError("`negative` is for classification: in detection every ground-truth "
                             "object is a defect; remove it")
        return load_detection(settings.data, settings.split)
    return load_classification(settings.data, settings.split), None, None


def _classes(settings: Settings, model: OnnxModel | None, dataset: Dataset,
             file_classes: tuple[str, ...] | None) -> tuple[str, ...]:
    """Model output index -> class name: the config, else the model's metadata, else (detection)
    the dev set's categories in id order, else (a predictions file) the labels seen."""
    from_model = model.metadata_classes() if model is not None else None
    if settings.classes:
        if from_model and from_model != settings.classes:  # an order mix-up would map every score wrong
            raise ErranError(f"{settings.source}: classes = {list(settings.classes)} but the model's "
                             f"metadata says {list(from_model)} (output order); make them agree, or "
                             "remove `classes` from the config")
        return settings.classes
    if from_model:
        return from_model
    if file_classes:
        return file_classes
    if model is not None:
        raise ErranError(f"{settings.model}: no `classes` in the config and none in the model's "
                         "metadata; list them in the config: classes = [\"ok\", \"scratch\", ...]")
    return tuple(sorted(dataset.labels))


@dataclass
class _Cache:
    """The prediction cache for this model and dev set; keys add the preprocessing and output."""

    directory: Path | None
    model_sha256: str
    dataset: Dataset

    def arrays(self, compute, **parts) -> tuple[dict[str, np.ndarray], bool]:
        images = self.dataset.images

        def make_key() -> str:
            return cache_key(model=self.model_sha256, data=self.dataset.sha256, ids=images["id"].tolist(),
                             files=files_fingerprint(images["_path"]), **parts)

        return cached_arrays(self.directory, make_key, compute)


def _detect_with_model(settings, model, dataset, classes, crowd, cache):
    from .tasks.detection import matching, outputs as detect

    prep = model.preprocess(settings.preprocess)
    adapter = detect.choose_adapter(settings.output, model)
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()
    thresholds = _score_thresholds(settings, classes)
    floor = float(min(thresholds.min(), settings.score_threshold)) if len(thresholds) else 0.0

    def compute() -> dict[str, np.ndarray]:
        threads = settings.threads or default_threads()
        return detect.concat([
            detect.decode_batch(adapter, batch, model.output_names, prep, floor, settings.nms_iou,
                                len(classes), str(settings.model))
            for batch in run_batches(model, paths, sources, prep, settings.batch_size, threads)])

    predictions, from_cache = cache.arrays(compute, prep=prep.key(), adapter=adapter, floor=floor,
                                           nms_iou=settings.nms_iou, classes=classes)
    units, counts = matching.match_units(dataset.units, crowd, predictions, classes, thresholds,
                                       settings.iou_threshold, dataset.images["image"].tolist())
    return units, counts, 0 if from_cache else len(paths)


def _detect_from_file(settings, model, dataset, classes, crowd, cache):
    from .tasks.detection import matching
    from .tasks.detection.predictions_file import read_detections

    ids = dataset.category_ids
    category_ids = None
    if ids:  # a class without a category gets an unused id: it must not take over another's
        spare = iter(range(max(ids.values()) + 1, max(ids.values()) + 1 + len(classes)))
        category_ids = [ids[c] if c in ids else next(spare) for c in classes]
    predictions = read_detections(settings.predictions, dataset.images, classes, dataset.all_ids,
                                  dataset.all_images, category_ids)
    units, counts = matching.match_units(dataset.units, crowd, predictions, classes,
                                       _score_thresholds(settings, classes), settings.iou_threshold,
                                       dataset.images["image"].tolist())
    return units, counts, 0


def _score_thresholds(settings: Settings, classes: tuple[str, ...]) -> np.ndarray:
    return np.array([settings.class_thresholds.get(c, settings.score_threshold) for c in classes])


def _classify_with_model(settings, model, dataset, classes, cache):
    prep = model.preprocess(settings.preprocess)
    output = model.output_index(settings.output)
    where = f"{settings.model}: output '{model.output_names[output]}'"
    classify.check_output_shape(model.session.get_outputs()[output].shape, classes, where)
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()

    def compute() -> dict[str, np.ndarray]:
        threads = settings.threads or default_threads()
        parts = [classify.interpret_output(batch.outputs[output], classes, where)
                 for batch in run_batches(model, paths, sources, prep, settings.batch_size, threads)]
        joined = classify.concat(parts)
        arrays = {"index": joined.index}
        if joined.scores is not None:
            arrays["scores"] = joined.scores
        return arrays

    arrays, from_cache = cache.arrays(compute, prep=prep.key(), output=output, classes=classes)
    prediction = classify.ClassPredictions(arrays["index"], arrays.get("scores"))
    names, scores = classify.predicted_labels(prediction, classes, settings.class_thresholds, settings.negative)
    units, counts = _with_hits(dataset, names, scores, classes, settings.negative)
    return units, counts, 0 if from_cache else len(paths)


def _classify_from_file(settings, dataset, classes):
    from .tasks.classification.predictions_file import read_classification

    images = dataset.images
    labels, scores = read_classification(settings.predictions, images, dataset.all_ids,
                                         dataset.all_images, classes)
    labels = classify.apply_thresholds(labels, scores, settings.class_thresholds, settings.negative,
                                       f"{settings.predictions} (no `score` column)")
    units, counts = _with_hits(dataset, labels, scores, classes, settings.negative)
    return units, counts, 0


def _with_hits(dataset, names, scores, classes, negative):
    """Hit per image, and per defect class (and all) the right and wrong predictions of it."""
    units = dataset.units.copy()
    units["_pred"] = names
    units["_score"] = scores if scores is not None else np.nan
    truth = units["label"].to_numpy()
    units["_hit"] = truth == names
    shown = units["_display"].to_numpy()
    counts = {}
    for cls in classes:
        if cls != negative:
            predicted = names == cls
            wrong = predicted & (truth != cls)
            counts[cls] = PrecisionCounts(int((predicted & (truth == cls)).sum()), int(wrong.sum()),
                                          shown[wrong].tolist())
    if counts:
        wrong = (names != negative) & (truth != names)
        counts[ALL] = PrecisionCounts(sum(c.true_positives for c in counts.values()), int(wrong.sum()),
                                      shown[wrong].tolist())
    return units, counts


def _drift(everything: BucketResult, baseline: baseline_io.Baseline) -> dict:
    """The dev set against the baseline's: the 'all' bucket's comparison counts every positive."""
    shared = everything.comparison.shared
    return {"shared": shared, "added": everything.comparison.added, "removed": len(baseline.units) - shared}
