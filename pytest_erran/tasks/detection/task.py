"""Detection: one unit per ground-truth object; a hit is an object matched as COCOeval matches."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import ErranError
from ...inference.batches import default_threads, run_batches
from ...units import BOX, Detections, Match, PrecisionCounts, TaskResult
from ...vocabulary import ALL, TaskName
from .. import AdapterOptions, Context, adapter_identity
from . import outputs
from .data import DetectionDataset, load_detection
from .matching import match_detections, per_class_counts
from .predictions_file import read_detections


class DetectionTask:
    name = TaskName.DETECTION

    def load(self, settings) -> DetectionDataset:
        if settings.negative is not None:
            raise ErranError("`negative` is for classification: in detection every ground-truth "
                             "object is a defect; remove it")
        return load_detection(settings.data, settings.split)

    def check(self, settings, dataset: DetectionDataset, classes: tuple[str, ...]) -> None:
        unknown = sorted(set(dataset.crowd["label"]) - set(classes))
        if unknown:
            raise ErranError(f"{dataset.path}: crowd boxes of class '{unknown[0]}', which is not one "
                             f"of the classes {list(classes)}")

    def predict(self, context: Context) -> TaskResult:
        if context.model is None:
            predictions, predicted = _from_file(context), 0
        else:
            predictions, predicted = _with_model(context)
        return _matched(context, predictions, predicted)


def score_thresholds(settings, classes: tuple[str, ...]) -> np.ndarray:
    """Per class, the score a prediction needs to count: class_thresholds, else score_threshold."""
    return np.array([settings.class_thresholds.get(c, settings.score_threshold) for c in classes])


def _with_model(context: Context) -> tuple[dict[str, np.ndarray], int]:
    settings, model, dataset, classes = context.settings, context.model, context.dataset, context.classes
    prep = model.preprocess(settings.preprocess)
    name = outputs.choose_adapter(settings.output, model, context.adapters)
    adapter = outputs.ADAPTERS[name] if name in outputs.ADAPTERS else context.adapters[name]
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()
    thresholds = score_thresholds(settings, classes)
    floor = float(min(thresholds.min(), settings.score_threshold)) if len(thresholds) else 0.0
    options = AdapterOptions(classes, (prep.width, prep.height), floor, settings.nms_iou)

    def compute() -> dict[str, np.ndarray]:
        threads = settings.threads or default_threads()
        return outputs.concat([
            outputs.decode_batch(name, adapter, batch, model.output_names, prep, options, str(settings.model))
            for batch in run_batches(model, paths, sources, prep, settings.batch_size, threads,
                                     context.observe)])

    identity = name if name in outputs.ADAPTERS else adapter_identity(name, adapter)
    predictions, from_cache = context.cache.arrays(compute, prep=prep.key(), adapter=identity, floor=floor,
                                                   nms_iou=settings.nms_iou, classes=classes)
    return predictions, 0 if from_cache else len(paths)


def _from_file(context: Context) -> dict[str, np.ndarray]:
    dataset, classes = context.dataset, context.classes
    ids = dataset.category_ids
    category_ids = None
    if ids:  # a class without a category gets an unused id: it must not take over another's
        spare = iter(range(max(ids.values()) + 1, max(ids.values()) + 1 + len(classes)))
        category_ids = [ids[c] if c in ids else next(spare) for c in classes]
    return read_detections(context.settings.predictions, dataset.images, classes, dataset.all_ids,
                           dataset.all_images, category_ids)


def _matched(context: Context, predictions: dict[str, np.ndarray], predicted: int) -> TaskResult:
    """`_hit` per ground-truth object; per class and 'all' the true and false positives and the
    image of each false positive; every prediction with what it matched."""
    dataset, classes = context.dataset, context.classes
    units, crowd = dataset.units, dataset.crowd
    index = {c: i for i, c in enumerate(classes)}
    columns = ["_image_index", "label", *BOX]
    gt = pd.concat([units[columns], crowd[columns]], ignore_index=True)
    result = match_detections(
        gt["_image_index"].to_numpy(np.int64), gt["label"].map(index).to_numpy(np.int64),
        gt[BOX].to_numpy(np.float64),
        np.arange(len(gt)) >= len(units),
        predictions["image"], predictions["label"], predictions["box"], predictions["score"],
        # in the scores' own precision: a float32 score of 0.7 meets score_threshold = 0.7
        np.asarray(score_thresholds(context.settings, classes), predictions["score"].dtype),
        context.settings.iou_threshold,
    )
    units = units.assign(_hit=result.gt_hit[: len(units)])
    tp, fp = per_class_counts(predictions["label"], result.pred_outcome, len(classes))
    wrong = result.pred_outcome == Match.FALSE_POSITIVE
    names = dataset.images["image"].to_numpy(object)
    counts = {c: PrecisionCounts(int(tp[i]), int(fp[i]),
                                 names[np.sort(predictions["image"][wrong & (predictions["label"] == i)])].tolist())
              for i, c in enumerate(classes)}
    counts[ALL] = PrecisionCounts(int(tp.sum()), int(fp.sum()), names[np.sort(predictions["image"][wrong])].tolist())
    matched = Detections(image=predictions["image"], label=predictions["label"], score=predictions["score"],
                         box=predictions["box"], match=result.pred_outcome, unit=result.pred_gt,
                         iou=result.pred_iou)
    return TaskResult(units, counts, predicted, matched)
