"""Detection dev sets and "lookup" ONNX detectors built in the tests: nothing is downloaded.

Every image is painted one uniform gray level g (115..255, unique per image). A lookup model
finds g again (max over the input, so letterbox padding of 114 never wins), and returns row g of
constant tables: a test decides every detection of every image, box for box.

Boxes here are x1, y1, x2, y2. `to_input` maps image pixels to model-input pixels the way the
plugin's preprocessing does; tests pick sizes with power-of-two ratios so that the round trip
(image -> input -> image) is exact in float32.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

FIRST_LEVEL = 115  # one above the letterbox fill (114)
LEVELS = 256


@dataclass
class Obj:
    """A ground-truth object of a scene."""

    id: int
    image: int  # index of the image in the scene
    label: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    crowd: bool = False
    attributes: dict = field(default_factory=dict)


@dataclass
class Det:
    """A prediction of a scene."""

    image: int
    label: str
    box: tuple[float, float, float, float]
    score: float


@dataclass
class Scene:
    """Images (file name and (width, height)), classes with their COCO category ids, objects
    and predictions. Image i is painted gray level FIRST_LEVEL + i."""

    sizes: list[tuple[int, int]]
    categories: dict[str, int]  # class name -> COCO category id
    objects: list[Obj]
    detections: list[Det]
    image_attributes: list[dict] = field(default_factory=list)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names as the plugin orders a COCO dev set's: by category id."""
        return tuple(sorted(self.categories, key=self.categories.get))

    def file_name(self, i: int) -> str:
        return f"images/{i:03d}.png"

    def image_id(self, i: int) -> int:
        return 100 + i

    def level(self, i: int) -> int:
        return FIRST_LEVEL + i


# --- images and dev sets ----------------------------------------------------------------------

def gray_image(path: Path, level: int, size: tuple[int, int]) -> None:
    """An RGB PNG of (width, height) painted uniformly with `level`."""
    if not FIRST_LEVEL <= level < LEVELS:
        raise ValueError(f"gray level {level} must lie in {FIRST_LEVEL}..{LEVELS - 1}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), level, np.uint8)).save(path)


def paint_images(root: Path, scene: Scene) -> None:
    for i, size in enumerate(scene.sizes):
        gray_image(root / scene.file_name(i), scene.level(i), size)


def xywh(box) -> list[float]:
    x1, y1, x2, y2 = map(float, box)
    return [x1, y1, x2 - x1, y2 - y1]


def write_coco(root: Path, scene: Scene, name: str = "dev.json") -> Path:
    """The scene's images and a COCO instances JSON (categories listed in reverse id order, so
    the plugin has to sort them). Objects carry `area` and their `attributes`."""
    paint_images(root, scene)
    images = []
    for i, (w, h) in enumerate(scene.sizes):
        extra = scene.image_attributes[i] if i < len(scene.image_attributes) else {}
        images.append({"id": scene.image_id(i), "file_name": scene.file_name(i), "width": w,
                       "height": h, **extra})
    annotations = []
    for o in scene.objects:
        bbox = xywh(o.box)
        entry = {"id": o.id, "image_id": scene.image_id(o.image),
                 "category_id": scene.categories[o.label], "bbox": bbox,
                 "area": bbox[2] * bbox[3], "iscrowd": int(o.crowd)}
        if o.attributes:
            entry["attributes"] = dict(o.attributes)
        annotations.append(entry)
    categories = [{"id": cid, "name": name_, "supercategory": "defect"}
                  for name_, cid in sorted(scene.categories.items(), key=lambda kv: -kv[1])]
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}, indent=1))
    return path


def write_coco_results(root: Path, scene: Scene, detections: list[Det] | None = None,
                       name: str = "preds.json") -> Path:
    """A COCO results list: image_id, category_id, bbox [x, y, w, h], score."""
    detections = scene.detections if detections is None else detections
    results = [{"image_id": scene.image_id(d.image), "category_id": scene.categories[d.label],
                "bbox": xywh(d.box), "score": float(d.score)} for d in detections]
    path = root / name
    path.write_text(json.dumps(results))
    return path


def write_detection_table(root: Path, scene: Scene, detections: list[Det] | None = None,
                          name: str = "preds.csv") -> Path:
    """A detections table: image, label, score, x1, y1, x2, y2 per predicted box."""
    detections = scene.detections if detections is None else detections
    path = root / name
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "score", "x1", "y1", "x2", "y2"])
        for d in detections:
            writer.writerow([scene.file_name(d.image), d.label, repr(float(d.score)),
                             *(f"{v:g}" for v in d.box)])
    return path


def write_object_table(root: Path, scene: Scene, name: str = "dev.csv") -> Path:
    """An object table (image, label, x1, y1, x2, y2, plus object attributes); an image without
    objects gets one row with an empty label and no box. No crowd boxes in a table."""
    paint_images(root, scene)
    keys = sorted({k for o in scene.objects for k in o.attributes})
    path = root / name
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "x1", "y1", "x2", "y2", *keys])
        for i in range(len(scene.sizes)):
            mine = [o for o in scene.objects if o.image == i]
            if not mine:
                writer.writerow([scene.file_name(i), "", "", "", "", "", *[""] * len(keys)])
            for o in mine:
                assert not o.crowd, "object tables have no crowd boxes"
                writer.writerow([scene.file_name(i), o.label, *(f"{v:g}" for v in o.box),
                                 *[o.attributes.get(k, "") for k in keys]])
    return path


# --- geometry -----------------------------------------------------------------------------------

def to_input(box, image_size: tuple[int, int], input_size: tuple[int, int],
             resize: str = "stretch") -> list[float]:
    """x1y1x2y2 in image pixels -> the model input's pixels, as the plugin's preprocessing maps
    them (the inverse of detection_outputs.to_image_coords)."""
    from pytest_erran.inference.images import letterbox_geometry

    box = np.asarray(box, np.float64)
    (width, height), (in_w, in_h) = image_size, input_size
    if resize == "stretch":
        out = box * np.array([in_w / width, in_h / height] * 2)
    elif resize == "letterbox":
        scale, _, _, left, top = letterbox_geometry((width, height), (in_w, in_h))
        out = box * scale + np.array([left, top] * 2)
    else:
        raise ValueError(resize)
    return out.tolist()


# --- lookup models ------------------------------------------------------------------------------

def _level_graph(input_size: tuple[int, int]):
    """Nodes that turn the input [N, 3, h, w] into the gray level `level` [N] int64."""
    from onnx import TensorProto, helper

    w, h = input_size
    nodes = [
        helper.make_node("ReduceMax", ["image", "axes"], ["peak"], keepdims=0),
        helper.make_node("Mul", ["peak", "full_scale"], ["scaled"]),
        helper.make_node("Round", ["scaled"], ["rounded"]),
        helper.make_node("Cast", ["rounded"], ["level"], to=TensorProto.INT64),
    ]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
             helper.make_tensor("full_scale", TensorProto.FLOAT, [], [255.0])]
    source = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, h, w])
    return nodes, inits, source


def _save(graph, path: Path, classes_metadata=None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if classes_metadata is not None:
        helper.set_model_props(model, {"classes": json.dumps(list(classes_metadata))})
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def boxes_scores_labels_model(path: Path, input_size: tuple[int, int],
                              detections: dict[int, list[tuple[list[float], float, int]]],
                              rows: int | None = None, classes_metadata=None) -> Path:
    """A model with outputs boxes [N, K, 4], scores [N, K], labels [N, K], num_detections [N].

    `detections` maps a gray level to its image's (input-pixel box, score, class index) list,
    in output order; rows past num_detections are padding (zeros, score 0)."""
    from onnx import TensorProto, helper

    k = max(rows or 0, max((len(v) for v in detections.values()), default=0), 1)
    boxes = np.zeros((LEVELS, k, 4), np.float32)
    scores = np.zeros((LEVELS, k), np.float32)
    labels = np.zeros((LEVELS, k), np.int64)
    counts = np.zeros(LEVELS, np.int64)
    for level, found in detections.items():
        counts[level] = len(found)
        for j, (box, score, label) in enumerate(found):
            boxes[level, j], scores[level, j], labels[level, j] = box, score, label
    assert np.array_equal(boxes.astype(np.float64), boxes), "boxes must be exact in float32"
    nodes, inits, source = _level_graph(input_size)
    outputs = []
    for name, table, dtype, tail in (("boxes", boxes, TensorProto.FLOAT, [k, 4]),
                                     ("scores", scores, TensorProto.FLOAT, [k]),
                                     ("labels", labels, TensorProto.INT64, [k]),
                                     ("num_detections", counts, TensorProto.INT64, [])):
        inits.append(helper.make_tensor(f"{name}_table", dtype, list(table.shape),
                                        table.reshape(-1).tolist()))
        nodes.append(helper.make_node("Gather", [f"{name}_table", "level"], [name], axis=0))
        outputs.append(helper.make_tensor_value_info(name, dtype, ["N", *tail]))
    graph = helper.make_graph(nodes, "lookup_boxes_scores_labels", [source], outputs,
                              initializer=inits)
    return _save(graph, path, classes_metadata)


def yolo_model(path: Path, input_size: tuple[int, int], num_classes: int,
               detections: dict[int, list[tuple[list[float], float, int]]],
               anchors: int | None = None, classes_metadata=None) -> Path:
    """A raw Ultralytics-style model: one output [N, 4 + C, A] of cx, cy, w, h (input pixels)
    and per-class scores. `detections` as for boxes_scores_labels_model; each becomes an anchor
    whose own class scores `score` (the others 0). Unused anchors score 0."""
    from onnx import TensorProto, helper

    channels = 4 + num_classes
    # More anchors than channels, and never 6: [N, 5, 6] (one class) would be end-to-end rows
    # [N, N_det, 6] just as well, which the plugin refuses to guess between.
    a = max(anchors or 0, max((len(v) for v in detections.values()), default=0), channels + 1, 7)
    table = np.zeros((LEVELS, channels, a), np.float32)
    for level, found in detections.items():
        for j, (box, score, label) in enumerate(found):
            x1, y1, x2, y2 = box
            table[level, :4, j] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
            table[level, 4 + label, j] = score
    nodes, inits, source = _level_graph(input_size)
    inits.append(helper.make_tensor("raw_table", TensorProto.FLOAT, list(table.shape),
                                    table.reshape(-1).tolist()))
    nodes.append(helper.make_node("Gather", ["raw_table", "level"], ["output0"], axis=0))
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", channels, a])
    graph = helper.make_graph(nodes, "lookup_yolo", [source], [output], initializer=inits)
    return _save(graph, path, classes_metadata)


def model_detections(scene: Scene, input_size: tuple[int, int], resize: str = "stretch",
                     detections: list[Det] | None = None, classes=None):
    """The scene's detections as a lookup table for the models above: level -> [(input box,
    score, class index)], in scene order. Class indices follow `classes` (default: the
    scene's classes, as the plugin orders a COCO dev set's)."""
    detections = scene.detections if detections is None else detections
    index = {c: i for i, c in enumerate(scene.classes if classes is None else classes)}
    table: dict[int, list] = {scene.level(i): [] for i in range(len(scene.sizes))}
    for d in detections:
        box = to_input(d.box, scene.sizes[d.image], input_size, resize)
        table[scene.level(d.image)].append((box, d.score, index[d.label]))
    return table


# --- random scenes ------------------------------------------------------------------------------

SEVERITIES = ("minor", "moderate", "severe")


def random_scene(seed: int, *, num_images: int = 7, nms_iou: float | None = None) -> Scene:
    """A scene with awkward matching cases: near-copies of objects (some of the wrong class),
    duplicates, shifted boxes around the IoU threshold, crowd boxes, an image without objects
    and predictions on images without objects.

    Coordinates are whole image pixels; scores are multiples of 1/64, exact in float32. With `nms_iou`, no two same-class predictions of an image overlap
    by more than that, so an NMS at `nms_iou` keeps every one of them.
    """
    rng = np.random.default_rng(seed)
    categories = {"tube": 3, "fin": 1, "crack": 7}
    names = list(categories)
    # landscape and portrait, all powers of two: stretched into 64 x 32 or letterboxed into
    # 64 x 64 (padded above and below, or left and right), every ratio is exact
    shapes = [(128, 64), (256, 128), (64, 128)]
    sizes = [shapes[i % 3] for i in range(num_images)]
    objects: list[Obj] = []
    detections: list[Det] = []
    next_id = 1000 + 100 * seed

    def clip(box, size):
        w, h = size
        x1, y1, x2, y2 = box
        x1, x2 = min(max(x1, 0), w - 1), min(max(x2, 0), w)
        y1, y2 = min(max(y1, 0), h - 1), min(max(y2, 0), h)
        return (float(x1), float(y1), float(max(x2, x1 + 1)), float(max(y2, y1 + 1)))

    def random_box(size):
        w, h = size
        bw, bh = rng.integers(6, w // 3), rng.integers(6, h // 3)
        x, y = rng.integers(0, w - bw + 1), rng.integers(0, h - bh + 1)
        return (float(x), float(y), float(x + bw), float(y + bh))

    def score():
        return float(rng.integers(8, 64)) / 64  # 0.125 .. 0.984

    empty_image = int(rng.integers(0, num_images))
    for i, size in enumerate(sizes):
        if i == empty_image:
            count = 0
        else:
            count = int(rng.integers(1, 6))
        for _ in range(count):
            label = names[int(rng.integers(0, len(names)))]
            crowd = rng.random() < 0.12
            attributes = {} if crowd else {"severity": SEVERITIES[int(rng.integers(0, 3))]}
            objects.append(Obj(next_id, i, label, random_box(size), crowd, attributes))
            next_id += 1
        if count and rng.random() < 0.3:  # a duplicate ground truth
            first = next(o for o in objects if o.image == i)
            objects.append(Obj(next_id, i, first.label, first.box, False, {"severity": "minor"}))
            next_id += 1

    for o in objects:
        for _ in range(int(rng.choice([0, 1, 1, 1, 2, 3]))):
            label = o.label if rng.random() < 0.8 else names[int(rng.integers(0, len(names)))]
            spread = int(rng.choice([1, 2, 6]))  # close copies to far ones, around any IoU
            shift = rng.integers(-spread, spread + 1, 4)
            box = clip(np.array(o.box) + shift, sizes[o.image])
            detections.append(Det(o.image, label, box, score()))
    for i, size in enumerate(sizes):  # stray predictions, also on the image without objects
        for _ in range(int(rng.choice([0, 1, 2]))):
            detections.append(Det(i, names[int(rng.integers(0, 3))], random_box(size), score()))
    order = rng.permutation(len(detections))
    detections = [detections[k] for k in order]
    if nms_iou is not None:
        detections = _separated(detections, nms_iou)
    return Scene(sizes=sizes, categories=categories, objects=objects, detections=detections)


def _separated(detections: list[Det], nms_iou: float) -> list[Det]:
    """Drop each prediction that overlaps an earlier kept one of its image and class by more
    than `nms_iou`: an NMS then removes nothing."""
    from pytest_erran.tasks.detection.matching import iou_matrix

    kept: list[Det] = []
    for d in detections:
        rivals = [k.box for k in kept if k.image == d.image and k.label == d.label]
        if rivals and iou_matrix(np.array([d.box]), np.array(rivals)).max() > nms_iou:
            continue
        kept.append(d)
    return kept
