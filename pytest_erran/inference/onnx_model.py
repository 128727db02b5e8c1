"""An ONNX model: its onnxruntime session, identity (sha256), classes metadata and input geometry."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ErranError
from .images import CENTER_CROP, LETTERBOX, NATIVE, STRETCH, Preprocess
from .providers import checked_providers

ONNX_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}
RUN_MESSAGE_CHARS = 400  # onnxruntime's messages can run to several lines of node dumps


class ModelRunFailed(Exception):
    """onnxruntime raised while running the model: the message, on one line."""


class OnnxModel:
    def __init__(self, path: Path, intra_op_threads: int = 1, providers: Sequence[str] | None = None):
        if not path.is_file():
            what = "is a directory, not an .onnx file" if path.is_dir() else "does not exist"
            raise ErranError(f"{path}: the model file {what}; check --erran-model or `model`")
        import onnxruntime as ort

        self.providers = checked_providers(providers, ort.get_available_providers())

        options = ort.SessionOptions()
        # Decoding needs the cores more than a small model does; spinning threads would steal them.
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own pybind types for bad files
            reason = str(e).split(" failed:", 1)[-1].strip()  # drop "Load model from <path>"
            raise ErranError(f"{path}: not a loadable ONNX model ({reason}); point `model` at an "
                             ".onnx file exported from the model") from None
        self.path = path
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(f"'{i.name}' {list(i.shape)}" for i in inputs)
            raise ErranError(f"{path}: the model takes {len(inputs)} inputs ({names}); pytest-erran "
                             "feeds it one batch of images: export it with the image as its only "
                             "input (fold the others into the graph as constants)")
        self.input = inputs[0]
        self.output_names = [o.name for o in self.session.get_outputs()]
        meta = self.session.get_modelmeta()
        self.metadata = dict(meta.custom_metadata_map)
        self.producer = meta.producer_name or ""  # "pytorch", "skl2onnx", ...: who wrote the graph
        # [C, H, W]: one image per run with no batch axis (torchvision detectors take a list of
        # such images); the batch axis run_batches adds is dropped in run().
        self.unbatched = len(self.input.shape) == 3

    def sha256(self) -> str:
        """The model's identity: its file and every external-data file it names (weights kept
        beside the graph, as large exports do), so new weights are never a cache hit."""
        return model_sha256(self.path)

    def metadata_classes(self) -> tuple[str, ...] | None:
        raw = self.metadata.get("classes")
        if raw is None:
            return None
        try:
            classes = json.loads(raw)
        except json.JSONDecodeError:
            classes = None
        if not isinstance(classes, list) or not all(isinstance(c, (str, int)) for c in classes):
            raise ErranError(f"{self.path}: metadata `classes` must be a JSON list of names, got {raw!r}")
        return tuple(str(c) for c in classes)

    def output_index(self, name: str | None) -> int:
        if name is None:
            return 0
        if name not in self.output_names:
            raise ErranError(f"output = '{name}': the model has no such output; its outputs are "
                             f"{self.output_names}")
        return self.output_names.index(name)

    def preprocess(self, config: dict, exif: str = "apply") -> Preprocess:
        """Read layout, size and dtype from the model's input; mean/std/size from the config;
        `exif` (the config's key of that name) says whether images are turned upright first."""
        shape = list(self.input.shape)
        where = f"{self.path}: input '{self.input.name}' {shape}"
        dtype = ONNX_TYPES.get(self.input.type)
        if dtype is None:
            raise ErranError(f"{where}: input type {self.input.type} is not supported "
                             "(float32, float16 or uint8)")
        resize = config.get("resize", STRETCH)
        if len(shape) == 2:
            layout, channels, height, width = self._flat_input(shape, config, where)
        elif config.get("flatten"):
            raise ErranError(f"{where}: [preprocess] flatten = true is for a flat input [N, features]; "
                             "this one takes images: remove `flatten`")
        elif len(shape) in (3, 4):
            layout, channels, height, width = self._image_input(shape, where)
            if resize == NATIVE:
                height, width = self._native(shape, config, where)
            elif "size" in config:
                if any(isinstance(d, int) and d != s for d, s in zip((height, width), config["size"])):
                    raise ErranError(f"{where}: [preprocess] size = {list(config['size'])}, but the model's "
                                     f"input is fixed at {height} x {width}; remove `size`")
                height, width = config["size"]
            elif not (isinstance(height, int) and isinstance(width, int)):
                raise ErranError(f"{where}: the input size is dynamic; set [preprocess] size = [H, W], "
                                 "or resize = \"native\" to feed each image at its own size")
        else:
            raise ErranError(f"{where}: expected an image input [N, C, H, W], [N, H, W, C] or "
                             "[C, H, W], or a flat one [N, features]")
        mean = tuple(config.get("mean", (0.0,)))
        std = tuple(config.get("std", (1.0,)))
        for key, values in (("mean", mean), ("std", std)):
            if len(values) not in (1, channels):
                raise ErranError(f"[preprocess] {key} has {len(values)} values; the model takes "
                                 f"{channels} channel(s)")
        return Preprocess(width=width, height=height, channels=channels, layout=layout, dtype=dtype,
                          resize=resize, scale=config.get("scale", 1 / 255), mean=mean, std=std,
                          unbatched=self.unbatched, decode=config.get("decode", "exact"), exif=exif)

    @staticmethod
    def _image_input(shape: list, where: str) -> tuple[str, int, object, object]:
        """(layout, channels, height, width) of [N, C, H, W], [N, H, W, C] or unbatched [C, H, W]."""
        dims = shape[1:] if len(shape) == 4 else shape
        nhwc = dims[2] in (1, 3) and dims[0] not in (1, 3)
        channels, height, width = (dims[2], dims[0], dims[1]) if nhwc else (dims[0], dims[1], dims[2])
        if channels not in (1, 3):
            raise ErranError(f"{where}: cannot tell the channel axis; the model must take 1 or 3 channels")
        return ("NHWC" if nhwc else "NCHW"), channels, height, width

    def _native(self, shape: list, config: dict, where: str) -> tuple[int, int]:
        """resize = "native": each image at its own size, one per run, so the input's height
        and width must be dynamic and its batch (if any) 1 or dynamic."""
        if "size" in config:
            raise ErranError(f"{where}: resize = \"native\" feeds each image at its own size; "
                             "remove [preprocess] size, or choose another resize")
        _, _, height, width = self._image_input(shape, where)
        if isinstance(height, int) or isinstance(width, int):
            raise ErranError(f"{where}: resize = \"native\" needs a dynamic height and width, but "
                             "the model's input size is fixed; use stretch, letterbox or center_crop")
        if len(shape) == 4 and isinstance(shape[0], int) and shape[0] > 1:
            raise ErranError(f"{where}: resize = \"native\" runs one image at a time, but the "
                             f"model's batch is fixed at {shape[0]}")
        return 0, 0

    @staticmethod
    def _flat_input(shape: list, config: dict, where: str) -> tuple[str, int, int, int]:
        """[N, features]: the image resized to `size`, its pixels flattened row-major."""
        features = shape[1]
        if not config.get("flatten") or "size" not in config:
            hint = (f" (H x W = {features} for grayscale, 3 x H x W for RGB)" if isinstance(features, int) else "")
            raise ErranError(f"{where}: a flat input, one row of features per image; if they are an "
                             f"image's pixels, set [preprocess] size = [H, W] and flatten = true{hint}")
        height, width = config["size"]
        if config.get("resize", STRETCH) not in (STRETCH, LETTERBOX, CENTER_CROP):
            raise ErranError(f"{where}: a flat input has one size; resize = \"native\" cannot feed it")
        if features == height * width:
            channels = 1
        elif features == 3 * height * width:
            channels = 3
        else:
            raise ErranError(f"{where}: [preprocess] size = [{height}, {width}] gives {height * width} "
                             f"grayscale or {3 * height * width} RGB values per image, but the model "
                             f"takes {features}; set the size the features were made at")
        return "flat", channels, height, width

    def fixed_batch(self) -> int | None:
        if self.unbatched:  # no batch axis: the first dimension is the channels
            return None
        batch = self.input.shape[0]
        return batch if isinstance(batch, int) and batch > 0 else None

    def run(self, x: np.ndarray) -> list:
        """The session's outputs for one batch; run_batches never passes more than a fixed
        batch size, and a short last batch is padded to it."""
        fixed = self.fixed_batch()
        if fixed is None or fixed == len(x):
            # an unbatched model gets its one image [C, H, W] (run_batches sends one at a time)
            return self._run(x[0] if self.unbatched else x)
        pad = np.zeros((fixed - len(x),) + x.shape[1:], x.dtype)
        outputs = self._run(np.concatenate([x, pad]))
        return [o[:len(x)] for o in outputs]

    def _run(self, x: np.ndarray) -> list:
        try:
            return self.session.run(None, {self.input.name: x})
        except Exception as e:  # noqa: BLE001 - onnxruntime's pybind errors share no base but Exception
            text = " ".join(str(e).split())
            if len(text) > RUN_MESSAGE_CHARS:
                text = text[:RUN_MESSAGE_CHARS] + " ..."
            raise ModelRunFailed(text) from None


def model_sha256(path: Path) -> str:
    graph = path.read_bytes()
    digest = hashlib.sha256(graph)
    for name in sorted(external_data_files(graph)):
        weights = path.parent / name
        if weights.is_file():  # a missing one makes onnxruntime fail to load the model anyway
            digest.update(name.encode() + b"\0" + hashlib.sha256(weights.read_bytes()).digest())
    return digest.hexdigest()


# In the ONNX protobuf an external tensor names its file in an entry {key: "location", value}:
# bytes 0x0a 0x08 "location" 0x12 <varint length> <file name>.
_LOCATION = re.compile(rb"\x0a\x08location\x12")


def external_data_files(model: bytes) -> set[str]:
    names = set()
    for match in _LOCATION.finditer(model):
        position, length, shift = match.end(), 0, 0
        while position < len(model):  # protobuf varint
            byte = model[position]
            length |= (byte & 0x7F) << shift
            position += 1
            shift += 7
            if not byte & 0x80:
                break
        names.add(model[position:position + length].decode("utf-8", "replace"))
    return names


