"""The layouts real exports have, stage by stage: reading Ultralytics metadata, choosing a
detection adapter from declared shapes (or refusing to guess), the end-to-end and torchvision
adapters, class values, flat and unbatched inputs, the centre crop. The real exports themselves
run in test_exports.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import pytest_erran
from builders import paint
from pytest_erran.errors import ErranError
from pytest_erran.inference.exporters import Export, ultralytics_names
from pytest_erran.inference.images import Preprocess, center_crop_geometry, decode_into, decode_native
from pytest_erran.inference.onnx_model import OnnxModel
from pytest_erran.tasks.classification.outputs import class_values, from_class_values, interpret_output, value_columns
from pytest_erran.tasks.detection.outputs import (
    choose_adapter,
    to_image_coords,
    torchvision_detections,
    yolo,
    yolo_end2end,
)

CLASSES = ("ok", "scratch", "dent")


def constant_model(path, outputs: dict[str, list], input_shape=(1, 3, 8, 8)):
    """A model whose outputs are zero tensors of the given shapes: only the declared layout matters."""
    import onnx
    from onnx import TensorProto, helper

    nodes, inits, infos = [], [], []
    for name, shape in outputs.items():
        inits.append(helper.make_tensor(f"{name}_value", TensorProto.FLOAT, shape, [0.0] * int(np.prod(shape))))
        nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info(
        "image", TensorProto.FLOAT, list(input_shape))], infos, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return OnnxModel(path)


# --- choosing a detection adapter -----------------------------------------------------------------

@pytest.mark.parametrize("outputs, classes, adapter", [
    ({"output0": [1, 7, 525]}, 3, "yolo"),
    ({"output0": [1, 525, 7]}, 3, "yolo"),
    ({"output0": [1, 300, 6]}, 3, "yolo_end2end"),  # 6 != 4 + 3: cannot be the raw layout
    ({"boxes": [1, 5, 4], "scores": [1, 5], "labels": [1, 5]}, 2, "boxes_scores_labels"),
])
def test_the_declared_shapes_choose_the_adapter_when_only_one_fits(tmp_path, outputs, classes, adapter):
    assert choose_adapter(None, constant_model(tmp_path / "m.onnx", outputs), {}, Export(), classes) == adapter


@pytest.mark.parametrize("outputs, classes, message", [
    ({"output0": [1, 300, 6]}, 2, "cannot tell how to read output 'output0' [1, 300, 6]: it fits both the "
                                  "raw YOLO layout [B, 4 + C, anchors] and end-to-end rows [B, N, 6]; set "
                                  "output = 'yolo' (raw) or 'yolo_end2end' (after NMS, nms=True)"),
    ({"output0": [1, 7, 525]}, 2, "it fits neither the raw YOLO layout [B, 4 + 2 classes, anchors] nor "
                                  "end-to-end rows [B, N, 6]; set output = 'yolo' (raw) or 'yolo_end2end'"),
    ({"a": [1, 5], "b": [1, 5]}, 2, "cannot tell how to read outputs [('a', [1, 5]), ('b', [1, 5])]; set "
                                    "output = 'yolo', 'yolo_end2end', 'boxes_scores_labels' or 'torchvision'"),
], ids=["ambiguous", "neither", "two-outputs"])
def test_a_layout_that_is_not_certain_is_an_error_naming_shapes_and_settings(tmp_path, outputs, classes, message):
    with pytest.raises(ErranError) as error:
        choose_adapter(None, constant_model(tmp_path / "m.onnx", outputs), {}, Export(), classes)
    assert message in str(error.value)


def test_a_chosen_adapter_is_checked_against_the_classes_before_any_image(tmp_path):
    model = constant_model(tmp_path / "m.onnx", {"output0": [1, 300, 6]})
    assert choose_adapter("yolo", model, {}, Export(), 2) == "yolo"  # 6 = 4 + 2: it may be
    with pytest.raises(ErranError, match=r"\[1, 300, 6\] does not fit the 'yolo' adapter, which reads "
                                         r"\[B, 4 \+ 3 classes = 7, anchors\]"):
        choose_adapter("yolo", model, {}, Export(), 3)
    raw = constant_model(tmp_path / "raw.onnx", {"output0": [1, 7, 525]})
    with pytest.raises(ErranError, match=r"\[1, 7, 525\] does not fit the 'yolo_end2end' adapter"):
        choose_adapter("yolo_end2end", raw, {}, Export(), 3)


def test_the_export_decides_over_the_shapes(tmp_path):
    model = constant_model(tmp_path / "m.onnx", {"output0": [1, 300, 6]})
    end2end = Export("ultralytics", "Ultralytics YOLOv8 detect export, end-to-end NMS", end2end=True)
    assert choose_adapter(None, model, {}, end2end, 2) == "yolo_end2end"  # not ambiguous any more
    assert choose_adapter("mine", model, {"mine": lambda o, opt: []}, end2end, 2) == "mine"


# --- decoding ------------------------------------------------------------------------------------

def test_yolo_channels_must_be_4_plus_the_classes():
    raw = np.zeros((1, 7, 10), np.float32)
    raw[0, :, 0] = [50, 50, 20, 10, 0.1, 0.9, 0.2]  # box [40, 45, 60, 55], class 1
    for layout in (raw, raw.transpose(0, 2, 1)):
        boxes, scores, labels = yolo(layout, 0.5, 0.7, num_classes=3)[0]
        np.testing.assert_allclose(boxes, [[40, 45, 60, 55]])
        assert labels.tolist() == [1] and scores.tolist() == pytest.approx([0.9])
    with pytest.raises(ValueError, match=r"no axis of 4 \+ 2 classes = 6 channels"):
        yolo(raw, 0.5, 0.7, num_classes=2)


def test_end_to_end_rows_drop_padding_and_low_scores():
    rows = np.zeros((2, 5, 6), np.float32)
    rows[0, 0] = [1, 2, 11, 12, 0.4, 2]
    rows[0, 1] = [5, 5, 9, 9, 0.9, 0]
    rows[0, 2] = [0, 0, 4, 4, 0.2, 1]  # below the threshold
    got = yolo_end2end(rows, 0.3, 3)
    boxes, scores, labels = got[0]
    np.testing.assert_allclose(boxes, [[5, 5, 9, 9], [1, 2, 11, 12]])
    assert scores.tolist() == pytest.approx([0.9, 0.4]) and labels.tolist() == [0, 2]
    assert [len(s) for _, s, _ in yolo_end2end(rows, 0.0, 3)] == [3, 0]  # zero rows never count
    rows[1, 0] = [1, 1, 2, 2, 0.5, 1.5]
    with pytest.raises(ValueError, match="class column holds 1.5, not a class index 0..2"):
        yolo_end2end(rows, 0.3, 3)
    with pytest.raises(ValueError, match=r"must be \[B, N, 6\]"):
        yolo_end2end(np.zeros((1, 7, 5)), 0.3, 3)


def test_torchvision_labels_count_from_one():
    outputs = {"boxes": np.array([[0, 0, 4, 4], [1, 1, 5, 5]], np.float32),
               "labels": np.array([3, 1], np.int64), "scores": np.array([0.9, 0.8], np.float32)}
    (_, scores, labels), = torchvision_detections(outputs, 3)
    assert labels.tolist() == [2, 0] and scores.tolist() == pytest.approx([0.9, 0.8])
    for bad in (0, 4):
        outputs["labels"] = np.array([bad, 1], np.int64)
        with pytest.raises(ValueError, match=f"predicts label {bad}; torchvision labels 1..3 are the 3 "
                                             "classes and 0 the background"):
            torchvision_detections(outputs, 3)


# --- metadata ------------------------------------------------------------------------------------

def test_ultralytics_names_are_read_as_literals_never_evaluated():
    assert ultralytics_names("{0: 'circle', 1: 'square', 2: 'triangle'}", "m") == ("circle", "square", "triangle")
    assert ultralytics_names("{1: 'b', 0: 'a'}", "m") == ("a", "b")  # index order, not text order
    assert ultralytics_names("['a', 'b']", "m") == ("a", "b")
    for raw in ("{0: 'a', 2: 'c'}", "__import__('os').getcwd()", "{0: 'a'", "{}", "{True: 'a'}"):
        with pytest.raises(ErranError, match="metadata `names` must map class indices 0..C-1 to names"):
            ultralytics_names(raw, "m")


def test_fixed_preprocessing_is_a_default_and_a_contradiction_an_error():
    export = Export("ultralytics", defaults={"resize": "letterbox"},
                    fixed={"resize": ("letterbox", "trained so"), "scale": (1 / 255, "x / 255"),
                           "mean": ((0.0,), "no mean"), "size": (None, "own size")})
    assert export.preprocess_config({}) == {"resize": "letterbox"}
    assert export.preprocess_config({"resize": "letterbox", "scale": 1 / 255, "mean": [0, 0, 0]})["scale"] == 1 / 255
    for config, message in (({"resize": "stretch"}, '[preprocess] resize = "stretch": trained so; remove'),
                            ({"scale": 1.0}, "[preprocess] scale = 1.0: x / 255"),
                            ({"mean": [0.5]}, "[preprocess] mean = [0.5]: no mean"),
                            ({"size": [4, 4]}, "[preprocess] size = [4, 4]: own size")):
        with pytest.raises(ErranError, match=message.replace("[", r"\[").replace("]", r"\]")):
            export.preprocess_config(config)


# --- class values (skl2onnx) ---------------------------------------------------------------------

def test_class_values_map_by_name_else_as_indices_for_named_classes():
    assert class_values(np.array([7, 1, 3]), ("1", "3", "7"), "m").tolist() == [2, 0, 1]
    assert class_values(np.array([7, 1, 3]), ("7", "1", "3"), "m").tolist() == [0, 1, 2]
    assert class_values(np.array([[2], [0]]), CLASSES, "m").tolist() == [2, 0]  # values 0..C-1
    assert class_values(np.array(["dent", "ok"], object), CLASSES, "m").tolist() == [2, 0]
    with pytest.raises(ErranError, match=r"m: predicts class value '9', which is not one of the classes "
                                         r"\['1', '3', '7'\]; list the model's class values"):
        class_values(np.array([1, 9]), ("1", "3", "7"), "m")
    with pytest.raises(ErranError, match="predicts class value '0'"):  # numbers as classes: no index fallback
        class_values(np.array([0]), ("1", "3", "7"), "m")


def test_probability_columns_follow_the_sorted_class_values():
    assert value_columns(("7", "1", "3"), True).tolist() == [1, 2, 0]  # columns 1, 3, 7
    assert value_columns(("10", "9"), True).tolist() == [1, 0]  # numerically: 9 before 10
    assert value_columns(("b", "a"), False).tolist() == [1, 0]  # string labels sort as strings
    assert value_columns(CLASSES, True).tolist() == [0, 1, 2]  # values 0..C-1 of named classes
    probabilities = np.array([[0.1, 0.2, 0.7]], np.float32)  # for 1, 3, 7
    got = from_class_values(np.array([7]), probabilities, ("7", "1", "3"), True, "m")
    assert got.index.tolist() == [0] and got.scores.tolist() == [pytest.approx([0.7, 0.1, 0.2])]
    with pytest.raises(ErranError, match=r"expected probabilities \[N, 3\]"):
        from_class_values(None, np.zeros((1, 2), np.float32), ("7", "1", "3"), True, "m")


def test_zipmap_keys_are_class_labels():
    by_value = interpret_output([{1: 0.2, 3: 0.5, 7: 0.3}], ("7", "3", "1"), "m")
    assert by_value.index.tolist() == [1] and by_value.scores.tolist() == [pytest.approx([0.3, 0.5, 0.2])]
    with pytest.raises(ErranError, match=r"keys \['1', '3', '7'\], which are neither the classes "
                                         r"\['ok', 'scratch', 'dent'\] nor their indices 0..2"):
        interpret_output([{1: 0.2, 3: 0.5, 7: 0.3}], CLASSES, "m")


# --- inputs --------------------------------------------------------------------------------------

def test_flat_input_is_row_major_over_rows_columns_channels():
    pixels = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)  # [N, H, W, C]
    flat = Preprocess(3, 2, 3, "flat", "float32", scale=1.0).to_input(pixels)
    np.testing.assert_array_equal(flat, pixels.reshape(2, -1).astype(np.float32))
    gray = Preprocess(3, 2, 1, "flat", "float32").to_input(pixels[..., :1])
    np.testing.assert_allclose(gray[1], pixels[1, :, :, 0].reshape(-1) / 255)


def test_center_crop_geometry_is_resize_shorter_side_then_crop():
    assert center_crop_geometry((96, 96), (64, 64)) == (64 / 96, 64, 64, 0, 0)
    # torchvision Resize(64): long side int(64 * 100 / 50) = 128; CenterCrop: round((128 - 64) / 2)
    assert center_crop_geometry((100, 50), (64, 64)) == (1.28, 128, 64, 32, 0)
    assert center_crop_geometry((50, 101), (64, 64)) == (1.28, 64, 129, 0, 32)  # round(32.5) = 32


def test_center_crop_keeps_the_middle_and_boxes_map_back(tmp_path):
    columns = np.tile(np.arange(96, dtype=np.uint8), (64, 1))  # 96 x 64, pixel value = its column
    Image.fromarray(np.stack([columns] * 3, axis=2)).save(tmp_path / "wide.png")
    prep = Preprocess(64, 64, 3, "NCHW", "float32", resize="center_crop")
    out = np.empty((64, 64, 3), np.uint8)
    assert decode_into(str(tmp_path / "wide.png"), out, prep, "dev.csv line 2") == (96, 64)
    np.testing.assert_array_equal(out[..., 0], columns[:, 16:80])  # no resize: only the crop
    np.testing.assert_allclose(to_image_coords([[0, 0, 10, 10]], (96, 64), (64, 64), "center_crop"),
                               [[16, 0, 26, 10]])


def test_native_decode_keeps_the_size_and_shows_the_image_first(tmp_path):
    paint(tmp_path / "a.png", "dent", size=(5, 3))
    seen = []
    pixels = decode_native(str(tmp_path / "a.png"), Preprocess(0, 0, 3, "NCHW", "float32", resize="native"),
                           "dev.csv line 2", seen.append)
    assert pixels.shape == (3, 5, 3) and pixels[..., 2].min() == 200 and pixels[..., 0].max() == 20
    assert [image.size for image in seen] == [(5, 3)]


def test_native_and_size_settings_are_checked_against_the_input(tmp_path):
    fixed = constant_model(tmp_path / "fixed.onnx", {"y": [1, 3]})
    with pytest.raises(ErranError, match='resize = "native" needs a dynamic height and width'):
        fixed.preprocess({"resize": "native"})
    with pytest.raises(ErranError, match=r"size = \[4, 4\], but the model's input is fixed at 8 x 8"):
        fixed.preprocess({"size": [4, 4]})
    batched = constant_model(tmp_path / "b4.onnx", {"y": [4, 3]}, input_shape=(4, 3, "h", "w"))
    with pytest.raises(ErranError, match="runs one image at a time, but the model's batch is fixed at 4"):
        batched.preprocess({"resize": "native"})
    with pytest.raises(ErranError, match='set \\[preprocess\\] size = \\[H, W\\], or resize = "native"'):
        batched.preprocess({})
    with pytest.raises(ErranError, match="flatten = true is for a flat input"):
        fixed.preprocess({"flatten": True, "size": [8, 8]})


def unbatched_channel_mean(path):
    """[3, h, w] -> [3]: the channel means of one image of any size, no batch axis in or out."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image", "axes"], ["scores"], keepdims=0)], "unbatched",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "h", "w"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [3])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))


def test_an_unbatched_model_gets_each_image_at_its_own_size(tmp_path):
    """Images of four sizes, one per run; each painted so that its own class wins, except the
    two painted as "ok": recall 2/4 on the defects, counted by hand."""
    unbatched_channel_mean(tmp_path / "model.onnx")
    rows = [("scratch", "scratch", (8, 8)), ("dent", "dent", (13, 5)), ("scratch", "ok", (3, 17)),
            ("dent", "ok", (30, 2))]
    lines = ["image,label"]
    for i, (label, looks_like, size) in enumerate(rows):
        paint(tmp_path / f"images/{i}.png", looks_like, size=size)
        lines.append(f"images/{i}.png,{label}")
    (tmp_path / "dev.csv").write_text("\n".join(lines) + "\n")
    evaluation = pytest_erran.evaluate({"model": str(tmp_path / "model.onnx"), "data": str(tmp_path / "dev.csv"),
                                        "classes": list(CLASSES), "negative": "ok",
                                        "preprocess": {"resize": "native"}}, rootdir=tmp_path)
    assert evaluation.units["_hit"].tolist() == [True, True, False, False]
    assert evaluation.units["_pred"].tolist() == ["scratch", "dent", "ok", "ok"]
    assert (evaluation.bucket("all").hits, evaluation.bucket("all").positives) == (2, 4)
