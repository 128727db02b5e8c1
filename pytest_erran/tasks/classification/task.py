"""Classification: one unit per image; a hit is predicted class == true class."""

from __future__ import annotations

import numpy as np

from ...errors import ErranError
from ...inference.exporters import Export
from ...inference.images import NATIVE
from ...inference.cache import arrays_like
from ...units import ClassScores, PrecisionCounts, TaskResult
from ...vocabulary import ALL, TaskName
from .. import AdapterOptions, Context, adapter_identity
from ..broken_outputs import NonFinite, broken_model, check_finite
from ..dataset import Dataset
from . import outputs
from .data import load_classification
from .predictions_file import read_classification


LABEL_TYPES = ("tensor(int64)", "tensor(int32)", "tensor(string)")


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
    prep = model.preprocess((context.export or Export()).preprocess_config(settings.preprocess), settings.exif)
    read, where, output = _output_reader(context, prep)
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()

    def compute() -> dict[str, np.ndarray]:
        parts = []
        for batch in context.batches(model, paths, sources, prep):
            part = read(batch)
            try:
                check_finite(part.scores, "scores")
            except NonFinite as e:
                raise broken_model(where, e, images, batch.start) from None
            parts.append(part)
        joined = outputs.concat(parts)
        arrays = {"index": joined.index}
        if joined.scores is not None:
            arrays["scores"] = joined.scores
        return arrays

    def valid(arrays: dict[str, np.ndarray]) -> bool:
        n, c = len(paths), len(classes)
        return arrays_like(arrays, {"index": ("int64", (n,)), "scores": ("float32", (n, c))},
                           optional=("scores",)) and bool(((arrays["index"] >= 0) & (arrays["index"] < c)).all())

    arrays, from_cache = context.cache.arrays(compute, valid=valid, prep=prep.key(), output=output,
                                              classes=classes)
    scores = arrays.get("scores")
    prediction = ClassScores(arrays["index"], None if scores is None else outputs.as_probabilities(scores))
    names, top = outputs.predicted_labels(prediction, classes, settings.class_thresholds, settings.negative)
    units, counts = _with_hits(dataset, names, top, classes, settings.negative)
    return TaskResult(units, counts, 0 if from_cache else len(paths), prediction)


def _output_reader(context: Context, prep):
    """How a batch's outputs become ClassScores: the project adapter `output` names; else, for
    a model whose labels are class values (skl2onnx), its label and probability outputs; else
    the model output `output` names (the first by default). Returns (read(batch), where, cache key)."""
    settings, model, classes = context.settings, context.model, context.classes
    adapter = context.adapters.get(settings.output)
    if adapter is not None:
        where = f"{settings.model}: output adapter '{settings.output}'"
        input_size = None if prep.resize == NATIVE else (prep.width, prep.height)
        options = AdapterOptions(classes, input_size, 0.0, settings.nms_iou)

        def read(batch):
            try:
                found = adapter(dict(zip(model.output_names, batch.outputs)), options)
            except Exception as e:  # noqa: BLE001 - the project's code: say where, in one line
                raise ErranError(f"{where} failed: {type(e).__name__}: {e}") from None
            return outputs.interpret_output(found, classes, where)

        return read, where, adapter_identity(settings.output, adapter)
    if context.export is not None and context.export.class_values:
        return _class_values_reader(context)
    index = model.output_index(settings.output)
    where = f"{settings.model}: output '{model.output_names[index]}'"
    outputs.check_output_shape(model.session.get_outputs()[index].shape, classes, where)
    if model.unbatched:  # one image per run and no batch axis out either: scores [C]
        return (lambda batch: outputs.interpret_output(np.asarray(batch.outputs[index]).reshape(1, -1),
                                                       classes, where)), where, index
    return (lambda batch: outputs.interpret_output(batch.outputs[index], classes, where)), where, index


def _class_values_reader(context: Context):
    """skl2onnx: the label output holds class values (its predict), the probability output
    (ZipMap maps or [N, C]) their scores; `output` may name either one alone."""
    settings, model, classes = context.settings, context.model, context.classes
    declared = model.session.get_outputs()
    label = next((i for i, o in enumerate(declared) if o.type in LABEL_TYPES and len(o.shape) in (1, 2)), None)
    scores = next((i for i, o in enumerate(declared) if i != label and
                   (o.type.startswith("seq(map(") or o.type == "tensor(float)")), None)
    if settings.output is not None:
        chosen = model.output_index(settings.output)
        label, scores = (chosen, None) if chosen == label else (None, chosen)
    if label is None and scores is None:
        raise ErranError(f"{settings.model}: a skl2onnx model without a label or probability output "
                         f"(outputs {[(o.name, o.type) for o in declared]}); is it a classifier?")
    # string labels sort as strings in the estimator's classes_, integer ones as numbers
    numeric = all(o.type != "tensor(string)" for o in declared)
    names = [model.output_names[i] for i in (label, scores) if i is not None]
    where = f"{settings.model}: output{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)}"

    def read(batch):
        return outputs.from_class_values(None if label is None else batch.outputs[label],
                                         None if scores is None else batch.outputs[scores],
                                         classes, numeric, where)

    return read, where, f"class_values:{label}:{scores}"


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
