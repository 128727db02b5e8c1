"""Small ONNX models and dev sets built in the tests: nothing is downloaded.

The classifier's score for class k is the mean of colour channel k, so an image painted in
channel k's colour is predicted as class k: a test decides each hit or miss by how it paints
the image, and counts the expected recall by hand from the same table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["ok", "scratch", "dent"]


def channel_mean_model(path: Path, *, size=(8, 8), layout="NCHW", output="scores", batch="N",
                       classes_metadata=None, logits=False, extra_classes=0, bias=None) -> Path:
    """Scores = per-channel mean of the input ([N, 3] for 3 channels), plus `bias` per class:
    a bias on "ok" makes a worse model that misses the faintly painted defects."""
    import onnx
    from onnx import TensorProto, helper

    h, w = size
    shape = [batch, 3, h, w] if layout == "NCHW" else [batch, h, w, 3]
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0)]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [2], axes)]
    last = "mean"
    if bias is not None:
        inits.append(helper.make_tensor("bias", TensorProto.FLOAT, [3], list(bias)))
        nodes.append(helper.make_node("Add", [last, "bias"], ["biased"]))
        last = "biased"
    if logits:  # scale and shift so the scores leave [0, 1]: the plugin must softmax them
        inits += [helper.make_tensor("gain", TensorProto.FLOAT, [], [10.0]),
                  helper.make_tensor("shift", TensorProto.FLOAT, [], [-3.0])]
        nodes += [helper.make_node("Mul", [last, "gain"], ["scaled"]),
                  helper.make_node("Add", ["scaled", "shift"], ["logit"])]
        last = "logit"
    if extra_classes:
        inits.append(helper.make_tensor("pad", TensorProto.INT64, [4], [0, 0, 0, extra_classes]))
        nodes.append(helper.make_node("Pad", [last, "pad"], ["padded"]))
        last = "padded"
    nodes.append(helper.make_node("Identity", [last], [output]))
    graph = helper.make_graph(
        nodes, "channel_mean",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, 3 + extra_classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if classes_metadata is not None:
        helper.set_model_props(model, {"classes": json.dumps(classes_metadata)})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def paint(path: Path, looks_like: str, strength: int = 200, size=(8, 8)) -> None:
    """An image whose dominant channel is `looks_like`'s; `strength` sets that class's score."""
    pixels = np.full((size[1], size[0], 3), 20, np.uint8)
    pixels[..., CLASSES.index(looks_like)] = strength
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_manifest(root: Path, rows: list[dict], name="dev.csv", image_size=(8, 8)) -> Path:
    """rows: dicts with id/label/looks_like (default: label)/strength and any metadata columns.
    Writes the images under root/images and the manifest without the painting columns."""
    columns = []
    for row in rows:
        for key in row:
            if key not in ("looks_like", "strength") and key not in columns:
                columns.append(key)
    if "image" not in columns:
        columns.insert(0, "image")
    out = []
    for i, row in enumerate(rows):
        image = row.get("image", f"images/{i:04d}.png")
        if "image" not in row or not (root / image).exists():
            paint(root / image, row.get("looks_like", row["label"]), row.get("strength", 200), image_size)
        out.append({**{k: v for k, v in row.items() if k in columns}, "image": image})
    manifest = root / name
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(out)
    return manifest


def noisy_image(path, seed, size=(12, 10)):
    """A unique image (so that its content digest is its own) whose dominant channel is seed % 3."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
    pixels[..., seed % 3] += 150
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_dev_set(root, n=24, name="dev.csv", seeds=None):
    seeds = list(range(n)) if seeds is None else seeds
    with (root / name).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "image", "label"])
        for seed in seeds:
            image = f"images/{seed:03d}.png"
            if not (root / image).exists():
                noisy_image(root / image, seed)
            writer.writerow([f"u{seed:03d}", image, CLASSES[seed % 3]])
    return root / name
