"""Models and files that break in the ways real ones do, built in the tests (nothing is
downloaded): NaN outputs, a second input, runtime failures inside onnxruntime, EXIF-rotated
images, read-only folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def onnx_model(path: Path, nodes, inputs, outputs, initializers=(), metadata=None) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def image_input(name="image", size=(8, 8)):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 3, size[0], size[1]])


def scores_output(name="scores", batch="N"):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, 3])


def axes(name="axes", values=(2, 3)):
    from onnx import TensorProto, helper

    return helper.make_tensor(name, TensorProto.INT64, [len(values)], list(values))


def log_of_channel_means(path: Path) -> Path:
    """scores = log(channel means): -inf for an image with a channel that is all zero."""
    from onnx import helper

    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
             helper.make_node("Log", ["mean"], ["scores"])]
    return onnx_model(path, nodes, [image_input()], [scores_output()], [axes()])


def two_inputs(path: Path) -> Path:
    """Channel means plus a second required input `bias` [N, 3]."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
             helper.make_node("Add", ["mean", "bias"], ["scores"])]
    bias = helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["N", 3])
    return onnx_model(path, nodes, [image_input(), bias], [scores_output()], [axes()])


def lookup_by_brightness(path: Path, rows: int) -> Path:
    """Gathers its scores from a table of `rows` rows at the image's brightest level (0-255):
    onnxruntime fails at run time, on that image only, when the level is `rows` or more."""
    from onnx import TensorProto, helper

    table = np.tile(np.array([0.1, 0.8, 0.1], np.float32), (rows, 1))  # always "scratch"
    nodes = [helper.make_node("ReduceMax", ["image", "all_axes"], ["peak"], keepdims=0),
             helper.make_node("Mul", ["peak", "full_scale"], ["scaled"]),
             helper.make_node("Round", ["scaled"], ["rounded"]),
             helper.make_node("Cast", ["rounded"], ["level"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "level"], ["scores"], axis=0)]
    inits = [axes("all_axes", (1, 2, 3)), helper.make_tensor("full_scale", TensorProto.FLOAT, [], [255.0]),
             helper.make_tensor("table", TensorProto.FLOAT, [rows, 3], table.reshape(-1).tolist())]
    return onnx_model(path, nodes, [image_input()], [scores_output()], inits)


def batch_of_one_only(path: Path) -> Path:
    """Channel means through a Reshape to [1, 3, 64]: it runs on one image, and fails inside
    onnxruntime on a batch of several (a model exported with a batch size baked in)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Reshape", ["image", "shape"], ["flat"]),
             helper.make_node("ReduceMean", ["flat", "last"], ["scores"], keepdims=0)]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [3], [1, 3, 64]), axes("last", (2,))]
    return onnx_model(path, nodes, [image_input()], [scores_output()], inits)


def top_half_means(path: Path) -> Path:
    """scores = channel means of the top half of the image: which way up the image is decides."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Slice", ["image", "starts", "ends", "slice_axes"], ["top"]),
             helper.make_node("ReduceMean", ["top", "axes"], ["scores"], keepdims=0)]
    inits = [helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
             helper.make_tensor("ends", TensorProto.INT64, [1], [4]),
             helper.make_tensor("slice_axes", TensorProto.INT64, [1], [2]), axes()]
    return onnx_model(path, nodes, [image_input()], [scores_output()], inits)


def constant_scores(path: Path, scores) -> Path:
    """The same float32 scores for every image: a threshold can be met exactly."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
             helper.make_node("Add", ["nothing", "constant"], ["scores"])]
    inits = [axes(), helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("constant", TensorProto.FLOAT, [3], [float(s) for s in scores])]
    return onnx_model(path, nodes, [image_input()], [scores_output()], inits)


def halves(path: Path, top: int, bottom: int, orientation: int = 1, size=(8, 8)) -> None:
    """An image whose top half is painted in channel `top` and bottom half in `bottom` (as
    stored), with an EXIF orientation tag (3: shown turned by 180 degrees)."""
    w, h = size
    pixels = np.full((h, w, 3), 20, np.uint8)
    pixels[: h // 2, :, top] = 220
    pixels[h // 2:, :, bottom] = 220
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, exif=exif)


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` made unwritable for this process, then restored: by its mode for a normal
    user, by the immutable attribute for root (whom modes do not stop). Skips if neither can."""
    folder.mkdir(parents=True, exist_ok=True)
    mode = folder.stat().st_mode
    immutable = False
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)],
                                                   capture_output=True).returncode == 0:
        immutable = True
    try:
        probe = folder / ".probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip(f"cannot make {folder} read-only here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(mode)
