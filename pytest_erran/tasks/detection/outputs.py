"""Turn the raw outputs of ONNX detection models into per-image boxes, scores and labels.

Pure numpy. The families covered:
- models that already return final detections (boxes / scores / labels, optionally batched
  with a num_detections count): `boxes_scores_labels`; torchvision's exports, whose labels
  count from 1 (0 is the background): `torchvision`;
- Ultralytics YOLO raw exports ([B, 4 + C, anchors] of cx, cy, w, h and class scores),
  which still need thresholding and NMS: `yolo`;
- Ultralytics end-to-end exports (`nms=True`, or an end-to-end head): [B, N, 6] rows of x1, y1,
  x2, y2, score, class after NMS, zero rows after the last: `yolo_end2end`.
Every adapter checks the outputs against the number of classes. Boxes come out as x1, y1, x2, y2
in the model's input pixels; `to_image_coords` maps them back to the original image, undoing a
stretch resize, a letterbox or a centre crop.

Sizes are (width, height) throughout, unlike Ultralytics' (height, width).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ...errors import ErranError
from ...inference.exporters import TORCHVISION, ULTRALYTICS, Export
from ...inference.images import (
    CENTER_CROP,
    LETTERBOX,
    NATIVE,
    STRETCH,
    center_crop_geometry,
    check_size,
    letterbox_geometry,
)
from ..broken_outputs import NonFinite, check_finite

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes [k, 4], scores [k], labels [k]

# Name fragments that identify an output, checked in this order: "num_boxes" is a count,
# "box_scores" and "class_scores" are scores.
_ROLE_NAMES = (
    ("num", ("num",)),
    ("scores", ("score", "conf")),
    ("boxes", ("box",)),
    ("labels", ("label", "class")),
)


def boxes_scores_labels(
    outputs: Mapping[str, np.ndarray] | Sequence[np.ndarray],
) -> list[Detections]:
    """Per image of the batch: (boxes float32 [k, 4], scores float32 [k], labels int64 [k]).

    `outputs` maps ONNX output names to arrays, or is the list that onnxruntime returns. Outputs
    are recognised by name ("box", "score"/"conf", "label"/"class", "num") when every one of
    them is, otherwise by shape: boxes end in 4, num_detections is an integer vector of the
    batch size, scores are float and labels integer (or, if both are float, the one holding
    only whole numbers). Unbatched [K, 4] / [K] / [K] give a one-image list.
    """
    roles = _identify(outputs)
    boxes, scores, labels = roles["boxes"], roles["scores"], roles["labels"]
    if boxes.ndim not in (2, 3) or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [K, 4] or [B, K, 4] (x1, y1, x2, y2), got {boxes.shape}")
    if boxes.ndim == 2:
        boxes, scores, labels = boxes[None], scores[None], labels[None]
    scores, labels = _squeeze_last(scores, boxes, "scores"), _squeeze_last(labels, boxes, "labels")
    batch, rows = boxes.shape[:2]
    counts = _num_detections(roles.get("num"), batch, rows)
    for i, n in enumerate(counts):  # a NaN label would be cast to a huge negative index
        check_finite(labels[i, :n], "labels", row=i)
    return [
        (
            boxes[i, :n].astype(np.float32),
            scores[i, :n].astype(np.float32),
            labels[i, :n].astype(np.int64),
        )
        for i, n in enumerate(counts)
    ]


def yolo(
    raw: np.ndarray, score_threshold: float, nms_iou: float, max_det: int = 300,
    num_classes: int | None = None,
) -> list[Detections]:
    """Decode an Ultralytics raw export [B, 4 + C, A] (or [B, A, 4 + C]).

    Per anchor the label is the best class and the score its value; anchors below
    `score_threshold` are dropped, the rest go through class-aware NMS at `nms_iou`, keeping
    at most `max_det` boxes, best first. Boxes are x1y1x2y2 in input pixels. With
    `num_classes`, the channel axis is the one of 4 + num_classes (an error if neither is);
    without, the shorter of the two.
    """
    raw = np.asarray(raw)
    if raw.ndim == 2:
        raw = raw[None]
    if raw.ndim != 3:
        raise ValueError(f"YOLO output must be [B, 4 + classes, anchors], got shape {raw.shape}")
    if num_classes is not None:
        channels = 4 + num_classes
        if raw.shape[1] != channels:
            if raw.shape[2] != channels:
                raise ValueError(f"YOLO output {list(raw.shape)} has no axis of 4 + {num_classes} "
                                 f"classes = {channels} channels (cx, cy, w, h, one score per class)")
            raw = raw.transpose(0, 2, 1)
    elif raw.shape[2] < raw.shape[1]:  # [B, A, 4 + C]: more anchors than channels
        raw = raw.transpose(0, 2, 1)
    if raw.shape[1] < 5:
        raise ValueError(
            f"YOLO output {raw.shape} has {raw.shape[1]} channels; expected 4 box rows "
            "(cx, cy, w, h) followed by at least one class score row"
        )
    return [_yolo_image(image, score_threshold, nms_iou, max_det) for image in raw]


def yolo_end2end(raw: np.ndarray, score_threshold: float, num_classes: int) -> list[Detections]:
    """Decode an Ultralytics end-to-end export [B, N, 6] (`nms=True`): per row x1, y1, x2, y2
    (input pixels), score and class index (a float), after NMS; rows past the last detection
    are zeros. Rows scoring below `score_threshold` are dropped."""
    raw = np.asarray(raw)
    if raw.ndim == 2:
        raw = raw[None]
    if raw.ndim != 3 or raw.shape[2] != 6:
        raise ValueError(f"an end-to-end output must be [B, N, 6] rows of x1, y1, x2, y2, score, "
                         f"class, got shape {list(raw.shape)}")
    per_image = []
    for rows in raw:
        rows = rows[np.any(rows != 0, axis=1) & (rows[:, 4] >= score_threshold)]
        classes = rows[:, 5]
        if np.any(classes != np.round(classes)) or np.any((classes < 0) | (classes >= num_classes)):
            bad = classes[(classes != np.round(classes)) | (classes < 0) | (classes >= num_classes)][0]
            raise ValueError(f"its class column holds {float(bad):g}, not a class index 0..{num_classes - 1} "
                             f"of the {num_classes} classes")
        order = np.argsort(-rows[:, 4], kind="stable")
        per_image.append((rows[order, :4].astype(np.float32), rows[order, 4].astype(np.float32),
                          classes[order].astype(np.int64)))
    return per_image


def torchvision_detections(outputs, num_classes: int) -> list[Detections]:
    """A torchvision detector's boxes, labels and scores, labels 1..C made class indices 0..C-1
    (torchvision's label 0 is the background, which a detector never returns)."""
    per_image = boxes_scores_labels(outputs)
    for _, _, labels in per_image:
        outside = labels[(labels < 1) | (labels > num_classes)]
        if len(outside):
            raise ValueError(f"it predicts label {int(outside[0])}; torchvision labels 1..{num_classes} "
                             f"are the {num_classes} classes and 0 the background")
    return [(boxes, scores, labels - 1) for boxes, scores, labels in per_image]


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None,
    iou_threshold: float,
    max_det: int | None = None,
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    A box is suppressed by a better-scoring kept box of the same label whose IoU with it is
    above `iou_threshold` (strictly, as torchvision). labels=None suppresses across classes.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.zeros(len(scores), np.int64) if labels is None else np.asarray(labels).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(
            f"nms: {len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels "
            "differ in number"
        )
    limit = len(scores) if max_det is None else max_det
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    # One pass over all classes: comparing labels is exact, unlike offsetting boxes per class,
    # and lets the loop stop as soon as max_det boxes are kept.
    while len(order) and len(keep) < limit:
        best, rest = order[0], order[1:]
        keep.append(best)
        overlap = _iou_one_to_many(boxes[best], area[best], boxes[rest], area[rest])
        order = rest[(overlap <= iou_threshold) | (labels[rest] != labels[best])]
    return np.array(keep, dtype=np.int64)


def to_image_coords(
    boxes: np.ndarray,
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    mode: str = "stretch",
) -> np.ndarray:
    """Map x1y1x2y2 boxes from model-input pixels to the image's own, clipped to the image.

    mode "stretch": the image was resized to the input size ignoring aspect ratio;
    mode "letterbox": see `letterbox_geometry`, whose pad is subtracted before dividing by scale;
    mode "center_crop": see `center_crop_geometry`, whose crop offset is added back;
    mode "native": the image was the input (`input_size` is not used).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = check_size(image_size, "image_size")
    if mode == NATIVE:
        return np.clip(boxes, 0, np.array([width, height] * 2))
    in_w, in_h = check_size(input_size, "input_size")
    if mode == STRETCH:
        out = boxes * np.array([width / in_w, height / in_h] * 2)
    elif mode == LETTERBOX:
        scale, _, _, left, top = letterbox_geometry((width, height), (in_w, in_h))
        out = (boxes - np.array([left, top] * 2)) / scale
    elif mode == CENTER_CROP:
        scale, _, _, left, top = center_crop_geometry((width, height), (in_w, in_h))
        out = (boxes + np.array([left, top] * 2)) / scale
    else:
        raise ValueError(f"unknown resize mode {mode!r}; use 'stretch', 'letterbox', 'center_crop' "
                         "or 'native'")
    return np.clip(out, 0, np.array([width, height] * 2))


def _identify(outputs) -> dict[str, np.ndarray]:
    """Role name -> array, by output names when they settle it, else by shapes."""
    if isinstance(outputs, Mapping):
        names, arrays = list(outputs), [np.asarray(a) for a in outputs.values()]
    else:
        names, arrays = [None] * len(outputs), [np.asarray(a) for a in outputs]
    by_name = {}
    for name, array in zip(names, arrays):
        role = _role_from_name(name)
        if role is None or role in by_name:
            by_name = None
            break
        by_name[role] = array
    if by_name is not None and {"boxes", "scores", "labels"} <= by_name.keys():
        return by_name
    return _identify_by_shape(arrays)


def _role_from_name(name: str | None) -> str | None:
    if name is None:
        return None
    lowered = name.lower()
    for role, fragments in _ROLE_NAMES:
        if any(fragment in lowered for fragment in fragments):
            return role
    return None


def _identify_by_shape(arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    shapes = [a.shape for a in arrays]
    box_like = [a for a in arrays if a.ndim in (2, 3) and a.shape[-1] == 4]
    if len(box_like) != 1:
        raise ValueError(
            f"cannot tell which output holds the boxes among shapes {shapes}: expected exactly "
            "one [K, 4] or [B, K, 4] array; name the outputs with 'box', 'score', 'label', 'num'"
        )
    boxes = box_like[0]
    per_row = boxes.shape[:-1]
    rest = [a for a in arrays if a is not boxes]
    rows = [a for a in rest if a.shape in (per_row, per_row + (1,))]
    counts = [a for a in rest if not any(a is r for r in rows)]
    if len(rows) != 2:
        raise ValueError(
            f"outputs {shapes}: expected one score and one label array shaped {per_row}, "
            f"like the boxes {boxes.shape} without the last axis"
        )
    scores, labels = _scores_and_labels(*rows, shapes)
    roles = {"boxes": boxes, "scores": scores, "labels": labels}
    if counts:
        batch = boxes.shape[0] if boxes.ndim == 3 else 1
        fits = [
            a for a in counts
            if np.issubdtype(a.dtype, np.integer) and a.size == batch and a.ndim <= 2
        ]  # fmt: skip
        if len(counts) != 1 or len(fits) != 1:
            raise ValueError(
                f"outputs {shapes}: besides boxes, scores and labels expected at most one "
                f"integer num_detections of length {batch}"
            )
        roles["num"] = fits[0]
    return roles


def _scores_and_labels(a: np.ndarray, b: np.ndarray, shapes) -> tuple[np.ndarray, np.ndarray]:
    """Scores are float, labels integer; with two float arrays, labels are the whole-number one."""
    a_int, b_int = (np.issubdtype(x.dtype, np.integer) for x in (a, b))
    if a_int != b_int:
        return (b, a) if a_int else (a, b)
    if not a_int:
        a_whole, b_whole = (bool(np.all(np.mod(x, 1) == 0)) for x in (a, b))
        if a_whole != b_whole:
            return (b, a) if a_whole else (a, b)
    raise ValueError(
        f"outputs {shapes}: cannot tell scores from labels (same kind of values); "
        "name the outputs with 'score' and 'label'"
    )


def _squeeze_last(values: np.ndarray, boxes: np.ndarray, what: str) -> np.ndarray:
    """[B, K] from [B, K] or [B, K, 1], checked against the boxes [B, K, 4]."""
    if values.shape == boxes.shape[:-1] + (1,):
        values = values[..., 0]
    if values.shape != boxes.shape[:-1]:
        raise ValueError(
            f"{what} shape {values.shape} does not fit boxes {boxes.shape}: "
            f"expected {boxes.shape[:-1]}"
        )
    return values


def _num_detections(num: np.ndarray | None, batch: int, rows: int) -> list[int]:
    """Valid rows per image; all rows when the model gives no count."""
    if num is None:
        return [rows] * batch
    counts = np.asarray(num).reshape(-1)
    if counts.size != batch:
        raise ValueError(f"num_detections has {counts.size} values for a batch of {batch} images")
    if np.any(counts != np.round(counts)) or counts.min() < 0 or counts.max() > rows:
        raise ValueError(
            f"num_detections {counts.tolist()} must be whole numbers between 0 and {rows}, "
            "the rows each image has"
        )
    return [int(n) for n in counts]


def _yolo_image(
    raw: np.ndarray, score_threshold: float, nms_iou: float, max_det: int
) -> Detections:
    """One image's [4 + C, A] raw prediction -> detections."""
    class_scores = raw[4:]
    labels = np.argmax(class_scores, axis=0)
    scores = class_scores[labels, np.arange(raw.shape[1])]
    keep = np.flatnonzero(scores >= score_threshold)
    cx, cy, w, h = raw[:4, keep].astype(np.float64)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kept = nms(boxes, scores[keep], labels[keep], nms_iou, max_det)
    return (
        boxes[kept].astype(np.float32),
        scores[keep][kept].astype(np.float32),
        labels[keep][kept].astype(np.int64),
    )


def _iou_one_to_many(
    box: np.ndarray, area: float, boxes: np.ndarray, areas: np.ndarray
) -> np.ndarray:
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _yolo_adapter(outputs: Mapping[str, np.ndarray], options) -> list[Detections]:
    return yolo(next(iter(outputs.values())), options.score_threshold, options.nms_iou,
                num_classes=len(options.classes))


def _yolo_end2end_adapter(outputs: Mapping[str, np.ndarray], options) -> list[Detections]:
    return yolo_end2end(next(iter(outputs.values())), options.score_threshold, len(options.classes))


def _boxes_scores_labels_adapter(outputs: Mapping[str, np.ndarray], options) -> list[Detections]:
    return boxes_scores_labels(outputs)


def _torchvision_adapter(outputs: Mapping[str, np.ndarray], options) -> list[Detections]:
    return torchvision_detections(outputs, len(options.classes))


# Built-in adapters: adapter(outputs by name, AdapterOptions) -> per image (boxes, scores, labels).
ADAPTERS = {"boxes_scores_labels": _boxes_scores_labels_adapter, "torchvision": _torchvision_adapter,
            "yolo": _yolo_adapter, "yolo_end2end": _yolo_end2end_adapter}


EMPTY = {"image": np.zeros(0, np.int64), "label": np.zeros(0, np.int64),
         "box": np.zeros((0, 4), np.float32), "score": np.zeros(0, np.float32)}


def choose_adapter(configured: str | None, model, extra: Mapping[str, Callable],
                   export: Export | None = None, num_classes: int | None = None) -> str:
    """`output` in the config (a built-in adapter or one a project registered), else the one
    the export's metadata names, else the built-in one the declared output shapes allow alone.
    A layout it cannot read with certainty is an error naming the shapes and the choices."""
    taken = sorted(set(extra) & set(ADAPTERS))
    if taken:
        raise ErranError(f"pytest_erran_output_adapters: '{taken[0]}' is a built-in adapter's name; "
                         "register yours under another")
    export = export or Export()
    outputs = [(o.name, list(o.shape)) for o in model.session.get_outputs()]
    if configured is not None:
        if configured not in ADAPTERS and configured not in extra:
            known = ", ".join([*ADAPTERS, *extra])
            raise ErranError(f"output = '{configured}': for detection use one of {known}")
        if configured in ("yolo", "yolo_end2end") and export.exporter == ULTRALYTICS:
            follows = _from_export(export)
            if configured != follows:
                what = ("its output is already after NMS" if export.end2end else
                        "its output is the raw [B, 4 + C, anchors] head")
                raise ErranError(f"output = '{configured}': {model.path.name} is an {export.description} "
                                 f"({what}); remove `output`, or set output = '{follows}'")
        name = configured
    elif export.exporter in (ULTRALYTICS, TORCHVISION):
        name = _from_export(export)
    else:
        name = _from_shapes(outputs, num_classes, model.path)
    if name in ADAPTERS and num_classes is not None:
        _check_declared(name, outputs, num_classes, model.path)
    return name


def _from_export(export: Export) -> str:
    if export.exporter == TORCHVISION:
        return "torchvision"
    return "yolo_end2end" if export.end2end else "yolo"


def _from_shapes(outputs: list, num_classes: int | None, path) -> str:
    if len(outputs) == 1 and len(outputs[0][1]) == 3:
        shape = outputs[0][1]
        fits = []
        if num_classes is None or 4 + num_classes in shape[1:]:
            fits.append("yolo")
        if shape[2] == 6:
            fits.append("yolo_end2end")
        if len(fits) == 1:
            return fits[0]
        why = ("fits both the raw YOLO layout [B, 4 + C, anchors] and end-to-end rows [B, N, 6]"
               if fits else f"fits neither the raw YOLO layout [B, 4 + {num_classes} classes, anchors] "
                            "nor end-to-end rows [B, N, 6]")
        raise ErranError(f"{path}: cannot tell how to read output '{outputs[0][0]}' {shape}: it {why}; "
                         "set output = 'yolo' (raw) or 'yolo_end2end' (after NMS, nms=True) in the "
                         "config, or check `classes`")
    if len(outputs) >= 3:
        return "boxes_scores_labels"
    raise ErranError(f"{path}: cannot tell how to read outputs {[(n, s) for n, s in outputs]}; set "
                     "output = 'yolo', 'yolo_end2end', 'boxes_scores_labels' or 'torchvision' in the "
                     "config")


def _check_declared(name: str, outputs: list, num_classes: int, path) -> None:
    """The declared output shapes fit the adapter and the classes, before any image is decoded."""
    if name not in ("yolo", "yolo_end2end"):
        return
    output, shape = outputs[0]
    dims = shape[1:] if len(shape) == 3 else shape  # without the batch axis
    known = all(isinstance(d, int) for d in dims)  # dynamic axes are checked per batch instead
    if name == "yolo":
        channels = 4 + num_classes
        fits = len(shape) in (2, 3) and (channels in dims or not known)
        wanted = f"[B, 4 + {num_classes} classes = {channels}, anchors]"
    else:
        fits = len(shape) in (2, 3) and (dims[-1] == 6 or not isinstance(dims[-1], int))
        wanted = "[B, N, 6] rows of x1, y1, x2, y2, score, class"
    if not fits:
        other = "yolo_end2end" if name == "yolo" else "yolo"
        raise ErranError(f"{path}: output '{output}' {shape} does not fit the '{name}' adapter, which "
                         f"reads {wanted}; check `classes` ({num_classes}), or set output = '{other}'")


def decode_batch(name: str, adapter: Callable, batch, names: list[str], prep, options,
                 where: str) -> dict[str, np.ndarray]:
    """One batch of model outputs -> flat arrays of detections in each image's own pixels."""
    outputs = dict(zip(names, batch.outputs))
    num_classes = len(options.classes)
    if name == "yolo":  # NaN scores would fall below the score floor unseen
        raw = np.asarray(next(iter(outputs.values())))
        check_finite(raw, f"its raw output {list(raw.shape)}", row=None if raw.ndim == 3 else 0)
    if name in ADAPTERS:
        try:
            per_image = adapter(outputs, options)
        except NonFinite:
            raise
        except ValueError as e:
            raise ErranError(f"{where}: the outputs do not fit the '{name}' adapter: {e}") from None
    else:
        per_image = _project_adapter(name, adapter, outputs, options, where)
    if len(per_image) != batch.stop - batch.start:
        raise ErranError(f"{where}: gave detections for {len(per_image)} images in a batch of "
                         f"{batch.stop - batch.start}")
    parts = {key: [] for key in EMPTY}
    for offset, (boxes, scores, labels) in enumerate(per_image):
        check_finite(boxes, "boxes", row=offset)
        check_finite(scores, "scores", row=offset)
        outside = labels[(labels < 0) | (labels >= num_classes)]
        if len(outside):
            raise ErranError(f"{where}: predicts class index {int(outside[0])}, but there are "
                             f"{num_classes} classes; check `classes`")
        size = tuple(int(v) for v in batch.image_sizes[offset])
        parts["box"].append(to_image_coords(boxes, size, (prep.width, prep.height), prep.resize)
                            .astype(np.float32))
        parts["score"].append(scores.astype(np.float32))
        parts["label"].append(labels.astype(np.int64))
        parts["image"].append(np.full(len(labels), batch.start + offset, np.int64))
    return {key: np.concatenate(values) if values else EMPTY[key] for key, values in parts.items()}


def _project_adapter(name: str, adapter: Callable, outputs, options, where: str) -> list[Detections]:
    """A project's own adapter, its result checked as strictly as a model's outputs."""
    try:
        per_image = list(adapter(outputs, options))
    except Exception as e:  # noqa: BLE001 - the project's code: say where, in one line
        raise ErranError(f"{where}: output adapter '{name}' failed: {type(e).__name__}: {e}") from None
    checked = [_detections(found) for found in per_image]
    if any(found is None for found in checked):
        i = checked.index(None)
        raise ErranError(f"{where}: output adapter '{name}' must return, per image of the batch, "
                         f"(boxes [k, 4], scores [k], integer labels [k]); image {i} got "
                         f"{_shapes(per_image[i])}")
    return checked


def _detections(found) -> Detections | None:
    """(boxes, scores, labels) as arrays when they have the shapes and kinds detections have."""
    try:
        boxes, scores, labels = (np.asarray(part) for part in found)
    except (TypeError, ValueError):
        return None
    k = len(boxes) if boxes.ndim else -1
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.shape != (k, 4) or scores.shape != (k,) or labels.shape != (k,):
        return None
    if not np.issubdtype(labels.dtype, np.integer) or not np.issubdtype(scores.dtype, np.number):
        return None
    return boxes, scores, labels


def _shapes(found) -> str:
    try:
        return ", ".join(f"{np.asarray(part).dtype}{list(np.shape(part))}" for part in found)
    except TypeError:
        return type(found).__name__


def concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not chunks:
        return dict(EMPTY)
    return {key: np.concatenate([c[key] for c in chunks]) for key in EMPTY}
