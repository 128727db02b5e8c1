"""An ONNX model: its onnxruntime session, identity (sha256), classes metadata and input geometry."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..errors import ErranError
from .images import Preprocess

ONNX_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}
RUN_MESSAGE_CHARS = 400  # onnxruntime's messages can run to several lines of node dumps


class ModelRunFailed(Exception):
    """onnxruntime raised while running the model: the message, on one line."""


class OnnxModel:
    def __init__(self, path: Path, intra_op_threads: int = 1):
        if not path.is_file():
            what = "is a directory, not an .onnx file" if path.is_dir() else "does not exist"
            raise ErranError(f"{path}: the model file {what}; check --erran-model or `model`")
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Decoding needs the cores more than a small model does; spinning threads would steal them.
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
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
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

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
        if len(shape) != 4:
            raise ErranError(f"{where}: expected a 4-D image input [N, C, H, W] or [N, H, W, C]")
        dtype = ONNX_TYPES.get(self.input.type)
        if dtype is None:
            raise ErranError(f"{where}: input type {self.input.type} is not supported "
                             "(float32, float16 or uint8)")
        nhwc = shape[3] in (1, 3) and shape[1] not in (1, 3)
        channels, height, width = (shape[3], shape[1], shape[2]) if nhwc else (shape[1], shape[2], shape[3])
        if channels not in (1, 3):
            raise ErranError(f"{where}: cannot tell the channel axis; the model must take 1 or 3 channels")
        if "size" in config:
            height, width = config["size"]
        elif not (isinstance(height, int) and isinstance(width, int)):
            raise ErranError(f"{where}: the input size is dynamic; set [preprocess] size = [H, W]")
        mean = tuple(config.get("mean", (0.0,)))
        std = tuple(config.get("std", (1.0,)))
        for key, values in (("mean", mean), ("std", std)):
            if len(values) not in (1, channels):
                raise ErranError(f"[preprocess] {key} has {len(values)} values; the model takes "
                                 f"{channels} channel(s)")
        return Preprocess(width=width, height=height, channels=channels,
                          layout="NHWC" if nhwc else "NCHW", dtype=dtype,
                          resize=config.get("resize", "stretch"), scale=config.get("scale", 1 / 255),
                          mean=mean, std=std, exif=exif)

    def fixed_batch(self) -> int | None:
        batch = self.input.shape[0]
        return batch if isinstance(batch, int) and batch > 0 else None

    def run(self, x: np.ndarray) -> list:
        """The session's outputs for one batch; run_batches never passes more than a fixed
        batch size, and a short last batch is padded to it."""
        fixed = self.fixed_batch()
        if fixed is None or fixed == len(x):
            return self._run(x)
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


