"""Which exporter wrote a model, read from its metadata, producer and input/output layout.

Teams export from Ultralytics, torchvision, scikit-learn (skl2onnx) or torch. Each leaves facts
in the file — Ultralytics its class `names`, task and input size; torchvision an unbatched input
that the graph resizes itself and labels where 0 is the background; skl2onnx labels that are
class *values* — and each was trained with one preprocessing. An `Export` holds those facts: the
tasks take their defaults from it, and a config value that contradicts one is an error, never
a silent change of what the model sees.

Nothing here is evaluated: Ultralytics writes its metadata as Python literals, read with
ast.literal_eval, which builds literals only.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import ErranError
from ..vocabulary import TaskName
from .images import CENTER_CROP, LETTERBOX, NATIVE

if TYPE_CHECKING:
    from .onnx_model import OnnxModel

ULTRALYTICS, TORCHVISION, SKL2ONNX, TORCH = "ultralytics", "torchvision", "skl2onnx", "torch"
ULTRALYTICS_TASKS = {"detect": TaskName.DETECTION, "classify": TaskName.CLASSIFICATION}
SCALE = 1 / 255
IDENTITY = {"mean": (0.0,), "std": (1.0,), "scale": SCALE}  # x / 255, nothing else


@dataclass(frozen=True)
class Export:
    """What the model file says about itself; `exporter` None for a model of unknown origin."""

    exporter: str | None = None
    description: str | None = None  # for the report header: "Ultralytics YOLOv8 detect export, ..."
    task: TaskName | None = None  # the task the metadata names
    classes: tuple[str, ...] | None = None  # class names in output order, from the metadata
    classes_source: str | None = None  # "`names`"
    end2end: bool = False  # Ultralytics nms=True / end-to-end head: [B, N, 6] final detections
    label_offset: int = 0  # torchvision: labels 1..C, 0 being the background
    class_values: bool = False  # skl2onnx: labels and ZipMap keys are class values, not indices
    defaults: Mapping[str, object] = field(default_factory=dict)  # [preprocess] defaults
    fixed: Mapping[str, tuple[object, str]] = field(default_factory=dict)  # key -> (value, why)
    stride: int | None = None  # a dynamic Ultralytics export takes sizes in multiples of it

    def preprocess_config(self, config: Mapping) -> dict:
        """The [preprocess] table with the model's defaults filled in; a value the model
        contradicts is an error naming the key, the model and why."""
        for key, (value, why) in self.fixed.items():
            if key in config and not _same(config[key], value):
                raise ErranError(f"[preprocess] {key} = {_toml(config[key])}: {why}; remove "
                                 f"`{key}` from the config")
        if self.stride and "size" in config and any(side % self.stride for side in config["size"]):
            raise ErranError(f"[preprocess] size = {_toml(list(config['size']))}: the model's stride is "
                             f"{self.stride} (its metadata), so both sides must be multiples of it")
        return {**self.defaults, **config}


def recognise(model: "OnnxModel") -> Export:
    """The export `model` is, from its metadata first, then its producer and layout."""
    metadata = model.metadata
    own_classes = model.metadata_classes()
    if _is_ultralytics(metadata):
        export = _ultralytics(model)
    elif model.producer == "skl2onnx":
        export = _sklearn(model)
    elif model.producer.startswith("pytorch") and _torchvision_layout(model):
        export = _torchvision(model)
    elif model.producer.startswith("pytorch"):
        export = Export(TORCH, f"torch export, input {_shape(model.input.shape)}")
    else:
        export = Export()
    if own_classes is not None:
        if export.classes is not None and export.classes != own_classes:
            raise ErranError(f"{model.path}: metadata `classes` {list(own_classes)} and "
                             f"{export.classes_source} {list(export.classes)} disagree; fix the metadata")
        export = replace(export, classes=own_classes, classes_source="`classes`")
    return export


# --- Ultralytics -------------------------------------------------------------------------------

def _is_ultralytics(metadata: Mapping[str, str]) -> bool:
    return "names" in metadata and "task" in metadata and (
        "stride" in metadata or metadata.get("author", "").startswith("Ultralytics"))


def _ultralytics(model: "OnnxModel") -> Export:
    metadata, path = model.metadata, model.path
    kind = metadata["task"]
    if kind not in ULTRALYTICS_TASKS:
        raise ErranError(f"{path}: an Ultralytics '{kind}' export; pytest-erran reads Ultralytics "
                         "detect and classify exports (task 'detect' or 'classify' in the metadata)")
    names = ultralytics_names(metadata["names"], path)
    family = re.search(r"YOLO(?:v\d+|\d+)", metadata.get("description", ""))
    what = f"Ultralytics {family.group(0) if family else 'YOLO'} {kind} export"
    shape = list(model.input.shape)
    height, width = (shape[2], shape[3]) if len(shape) == 4 else (None, None)
    defaults: dict = {}
    if not (isinstance(height, int) and isinstance(width, int)):  # a dynamic export
        imgsz = _imgsz(metadata.get("imgsz"), path)
        if imgsz is None:
            raise ErranError(f"{path}: {what} with a dynamic input and no `imgsz` in its "
                             "metadata; set [preprocess] size = [H, W]")
        (height, width) = imgsz
        defaults["size"] = [height, width]
    size = f"{width}" if width == height else f"{width}x{height}"
    if kind == "detect":
        resize, end2end = LETTERBOX, _end2end(metadata)
        how = "end-to-end NMS" if end2end else "raw output, NMS in erran"
        description = f"{what}, {how}, letterbox {size}, classes from its `names`"
        trained = "trained and predicted on letterboxed inputs (gray 114 padding)"
    else:
        resize, end2end = CENTER_CROP, False
        description = f"{what}, shorter side resized and centre crop {size}, classes from its `names`"
        trained = "predicted on the shorter side resized and a centre crop"
    fixed = {"resize": (resize, f"{path.name} is an {what}, {trained}: resize = \"{resize}\", "
                                f"the default for it")}
    fixed.update(_identity(f"{path.name} is an {what}, which takes RGB / 255 without normalisation"))
    stride = _stride(metadata.get("stride")) if "size" in defaults else None
    return Export(ULTRALYTICS, description, ULTRALYTICS_TASKS[kind], names, "`names`", end2end,
                  defaults={"resize": resize, **defaults}, fixed=fixed, stride=stride)


def ultralytics_names(raw: str, path) -> tuple[str, ...]:
    """`names` as Ultralytics writes it, "{0: 'circle', 1: 'square'}", in index order."""
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        names = None
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not (isinstance(names, dict) and names
            and all(isinstance(k, int) and not isinstance(k, bool) for k in names)
            and sorted(names) == list(range(len(names)))
            and all(isinstance(v, (str, int)) for v in names.values())):
        raise ErranError(f"{path}: metadata `names` must map class indices 0..C-1 to names, as "
                         f"Ultralytics writes it (\"{{0: 'name', ...}}\"), got {raw[:120]!r}")
    return tuple(str(names[i]) for i in range(len(names)))


def _imgsz(raw: str | None, path) -> tuple[int, int] | None:
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, int):
        value = [value, value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and v > 0 for v in value)):
        raise ErranError(f"{path}: metadata `imgsz` must be [height, width], got {raw[:60]!r}")
    return value[0], value[1]


def _stride(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.strip().isdigit() and int(raw) > 0 else None


def _end2end(metadata: Mapping[str, str]) -> bool:
    """Exported with nms=True, or an end-to-end head: the output is final detections."""
    if metadata.get("end2end", "").strip() == "True":
        return True
    return re.search(r"['\"]nms['\"]\s*:\s*True\b", metadata.get("args", "")) is not None


# --- torchvision and torch ---------------------------------------------------------------------

def _torchvision_layout(model: "OnnxModel") -> bool:
    """A torchvision detector's export: one unbatched image [C, H, W] of any size in; boxes
    [K, 4], integer labels [K] and float scores [K] out."""
    shape = list(model.input.shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or isinstance(shape[1], int) or isinstance(shape[2], int):
        return False
    outputs = model.session.get_outputs()
    if len(outputs) != 3:
        return False
    kinds = sorted((len(o.shape), o.type, o.shape[-1] if len(o.shape) == 2 else None) for o in outputs)
    return kinds == [(1, "tensor(float)", None), (1, "tensor(int64)", None), (2, "tensor(float)", 4)]


def _torchvision(model: "OnnxModel") -> Export:
    name = model.path.name
    fixed = {"resize": (NATIVE, f"{name} is a torchvision detection export, which resizes each image "
                                "inside the graph: each is fed at its own size (resize = \"native\")"),
             "size": (None, f"{name} is a torchvision detection export, which takes each image at its "
                            "own size and resizes it inside the graph")}
    fixed.update(_identity(f"{name} is a torchvision detection export, which takes RGB in [0, 1] "
                           "and normalises inside the graph"))
    return Export(TORCHVISION, "torchvision detection export, unbatched input: each image at its own "
                               "size (resized in the graph), labels 1..C (0 = background)",
                  TaskName.DETECTION, label_offset=1, defaults={"resize": NATIVE}, fixed=fixed)


# --- skl2onnx ----------------------------------------------------------------------------------

def _sklearn(model: "OnnxModel") -> Export:
    outputs = model.session.get_outputs()
    zipmap = any(o.type.startswith("seq(map(") for o in outputs)
    probabilities = "ZipMap probabilities" if zipmap else "probabilities [N, C]"
    return Export(SKL2ONNX, f"skl2onnx classifier, input {_shape(model.input.shape)}, labels are "
                            f"class values, {probabilities}",
                  TaskName.CLASSIFICATION, class_values=True)


# --- shared ------------------------------------------------------------------------------------

def _identity(why: str) -> dict:
    return {key: (value, why) for key, value in IDENTITY.items()}


def _same(given, wanted) -> bool:
    if wanted is None:
        return False  # the key must not be given at all
    if isinstance(wanted, tuple):  # mean / std: one value per channel or one for all
        return all(abs(float(v) - wanted[0]) < 1e-12 for v in given)
    if isinstance(wanted, float):
        return abs(float(given) - wanted) < 1e-9
    return list(given) == list(wanted) if isinstance(wanted, list) else given == wanted


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def _toml(value) -> str:
    return json.dumps(value) if isinstance(value, (str, bool, list)) else repr(value)
