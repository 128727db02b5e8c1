"""Classification: one unit per image; a hit is predicted class == true class."""

from __future__ import annotations

from functools import partial

import numpy as np

from ...errors import ErranError
from ...inference.batches import default_threads, run_batches
from ...units import ClassScores, PrecisionCounts, TaskResult
from ...vocabulary import ALL, TaskName
from .. import AdapterOptions, Context, adapter_identity
from ..dataset import Dataset
from . import outputs
from .data import load_classification
from .predictions_file import read_classification


class ClassificationTask:
    name = TaskName.CLASSIFICATION

    def load(self, settings) -> Dataset:
        return load_classification(settings.data, settings.split)

    def check(self, settings, dataset: Dataset, classes: tuple[str, ...]) -> None:
        pass  # labels, buckets and thresholds are checked by the pipeline for every task

    def predict(self, context: Context) -> TaskResult:
        if context.model is None:
            return _from_file(context)
        return _with_model(context)


def _with_model(context: Context) -> TaskResult:
    settings, model, dataset, classes = context.settings, context.model, context.dataset, context.classes
    prep = model.preprocess(settings.preprocess)
    adapter = context.adapters.get(settings.output)  # a project's own, registered by a hook
    if adapter is not None:
        where = f"{settings.model}: output adapter '{settings.output}'"
        options = AdapterOptions(classes, (prep.width, prep.height), 0.0, settings.nms_iou)
        read, output = partial(_adapted, adapter, model.output_names, options, where), \
            adapter_identity(settings.output, adapter)
    else:
        index = model.output_index(settings.output)
        where = f"{settings.model}: output '{model.output_names[index]}'"
        outputs.check_output_shape(model.session.get_outputs()[index].shape, classes, where)
        read, output = (lambda batch: batch.outputs[index]), index
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()

    def compute() -> dict[str, np.ndarray]:
        threads = settings.threads or default_threads()
        parts = [outputs.interpret_output(read(batch), classes, where)
                 for batch in run_batches(model, paths, sources, prep, settings.batch_size, threads,
                                          context.observe)]
        joined = outputs.concat(parts)
        arrays = {"index": joined.index}
        if joined.scores is not None:
            arrays["scores"] = joined.scores
        return arrays

    arrays, from_cache = context.cache.arrays(compute, prep=prep.key(), output=output, classes=classes)
    scores = arrays.get("scores")
    prediction = ClassScores(arrays["index"], None if scores is None else outputs.as_probabilities(scores))
    names, top = outputs.predicted_labels(prediction, classes, settings.class_thresholds, settings.negative)
    units, counts = _with_hits(dataset, names, top, classes, settings.negative)
    return TaskResult(units, counts, 0 if from_cache else len(paths), prediction)


def _adapted(adapter, names: list[str], options: AdapterOptions, where: str, batch):
    """A project adapter's [N, C] scores or [N] indices for one batch."""
    try:
        return adapter(dict(zip(names, batch.outputs)), options)
    except Exception as e:  # noqa: BLE001 - the project's code: say where, in one line
        raise ErranError(f"{where} failed: {type(e).__name__}: {e}") from None


def _from_file(context: Context) -> TaskResult:
    settings, dataset, classes = context.settings, context.dataset, context.classes
    labels, scores = read_classification(settings.predictions, dataset.images, dataset.all_ids,
                                         dataset.all_images, classes)
    index = {c: i for i, c in enumerate(classes)}
    prediction = ClassScores(np.fromiter((index[label] for label in labels), np.int64, len(labels)), None)
    labels = outputs.apply_thresholds(labels, scores, settings.class_thresholds, settings.negative,
                                      f"{settings.predictions} (no `score` column)")
    units, counts = _with_hits(dataset, labels, scores, classes, settings.negative)
    return TaskResult(units, counts, 0, prediction)


def _with_hits(dataset: Dataset, names, scores, classes, negative):
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
