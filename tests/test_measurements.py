"""Measurements against direct numpy computations: objects' brightness and contrast, the
difference hash, the pixel hash; and the same values whether measured in the model's decode
threads, in a decode-only pass, or read back from the cache."""

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builders import channel_mean_model
from pytest_erran.config import build_settings
from pytest_erran.inference.batches import run_batches
from pytest_erran.inference.fingerprints import area_means, difference_hash, pixel_hash
from pytest_erran.inference.measurements import Collector, Regions, measure_all, measure_image
from pytest_erran.inference.onnx_model import OnnxModel
from pytest_erran.inference.properties import measure, object_properties, small_gray
from pytest_erran.measuring import Measuring
from pytest_erran.tasks.classification.data import load_classification

WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


def reference_object(pixels: np.ndarray, box) -> tuple[float, float]:
    """The definition, with masks: a pixel column c is the box's when [c, c + 1) overlaps
    (x1, x2); the ring is the box grown by max(2, ceil(shorter side / 4)) pixels, minus the box."""
    height, width = pixels.shape[:2]
    gray = pixels[..., 0] * WEIGHTS[0] + pixels[..., 1] * WEIGHTS[1] + pixels[..., 2] * WEIGHTS[2]
    x1, y1, x2, y2 = box
    cols, rows = np.arange(width), np.arange(height)
    in_x, in_y = (cols + 1 > x1) & (cols < x2), (rows + 1 > y1) & (rows < y2)
    margin = max(2, math.ceil(min(in_x.sum(), in_y.sum()) / 4))
    c0, c1 = np.flatnonzero(in_x)[[0, -1]]
    r0, r1 = np.flatnonzero(in_y)[[0, -1]]
    out_x = (cols >= c0 - margin) & (cols <= c1 + margin)
    out_y = (rows >= r0 - margin) & (rows <= r1 + margin)
    inside = in_y[:, None] & in_x[None, :]
    ring = out_y[:, None] & out_x[None, :] & ~inside
    mean = gray[inside].mean()
    return mean, abs(mean - gray[ring].mean()) if ring.any() else float("nan")


@pytest.mark.parametrize("box", [(10, 10, 20, 18), (10.5, 3.2, 30.7, 9.9), (0, 0, 6, 6), (50, 30, 64, 40),
                                 (-4, 35, 3, 48.5), (20, 20, 21, 21), (0, 0, 64, 48)])
def test_object_properties_match_the_definition(box):
    pixels = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    found = object_properties(pixels, np.array([box], float))[0]
    brightness, contrast = reference_object(pixels, box)
    assert found[0] == pytest.approx(brightness, rel=1e-12)
    if box == (0, 0, 64, 48):  # the whole image: no surroundings to contrast with
        assert np.isnan(found[1])
    else:
        assert found[1] == pytest.approx(contrast, rel=1e-9, abs=1e-9)


def test_a_faint_object_has_low_contrast_and_a_clear_one_high():
    pixels = np.full((40, 40, 3), 100, np.uint8)
    pixels[5:15, 5:15] += 3  # faint
    pixels[25:35, 25:35] += 80  # clear
    found = object_properties(pixels, np.array([[5, 5, 15, 15], [25, 25, 35, 35]], float))
    assert found[:, 1] == pytest.approx([3.0, 80.0])
    assert found[:, 0] == pytest.approx([103.0, 180.0])


def reference_row_hash(gray: np.ndarray) -> int:
    """Area-averaging by explicit overlaps, comparisons by loops, bits packed by hand."""
    h, w = gray.shape

    def overlap(pixel, cell, size, cells):
        lo, hi = cell * size / cells, (cell + 1) * size / cells
        return max(0.0, min(pixel + 1, hi) - max(pixel, lo))

    small = np.zeros((8, 9))
    for i in range(8):
        for j in range(9):
            wy = np.array([overlap(r, i, h, 8) for r in range(h)])
            wx = np.array([overlap(c, j, w, 9) for c in range(w)])
            small[i, j] = round((wy[:, None] * wx[None, :] * gray).sum() / (wy.sum() * wx.sum()), 6)
    value = 0
    for i in range(8):
        for j in range(8):
            value = (value << 1) | int(small[i, j + 1] > small[i, j])
    return value


def reference_dhash(gray: np.ndarray) -> list[int]:
    """[rows, columns]: the column word is the row word of the transposed image."""
    return [reference_row_hash(gray), reference_row_hash(gray.T)]


@pytest.mark.parametrize("shape", [(64, 72), (8, 9), (13, 29), (128, 97), (5, 3)])
def test_difference_hash_matches_the_definition(shape):
    gray = np.random.default_rng(shape[0]).random(shape) * 255
    assert difference_hash(gray).tolist() == reference_dhash(gray)


def test_difference_hash_on_block_means_and_ramps():
    rng = np.random.default_rng(3)
    gray = rng.random((64, 72)) * 255
    blocks = gray.reshape(8, 8, 9, 8).mean(axis=(1, 3))  # exact 8 x 8 pixel blocks
    bits = (blocks[:, 1:] > blocks[:, :-1]).reshape(-1)
    assert int(difference_hash(gray)[0]) == int("".join("1" if b else "0" for b in bits), 2)
    ramp = np.tile(np.arange(90.0), (40, 1))  # brighter to the right, the same down every column
    assert difference_hash(ramp).tolist() == [2 ** 64 - 1, 0]
    assert difference_hash(ramp[:, ::-1]).tolist() == [0, 0]
    assert difference_hash(ramp.T).tolist() == [0, 2 ** 64 - 1]
    ten = np.arange(10.0)[:, None]  # 10 rows into 8 spans of 1.25: the first is 0 and a quarter of 1
    assert area_means(ten, 8, 0)[:2, 0].tolist() == pytest.approx([(0 + 0.25 * 1) / 1.25, (0.75 * 1 + 0.5 * 2) / 1.25])


def test_pixel_hash_is_sha256_of_the_shape_and_pixels():
    pixels = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).digest()[:16]
    assert pixel_hash(pixels).tolist() == [int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big")]
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert pixel_hash(changed).tolist() != pixel_hash(pixels).tolist()
    assert pixel_hash(pixels.reshape(30, 20, 3)).tolist() != pixel_hash(pixels).tolist()


def test_measure_image_agrees_with_the_property_formulas():
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 200, 3), dtype=np.uint8))
    values, dhash, pixels, regions = measure_image(image, np.array([[10, 10, 40, 50]], float))
    assert values == measure(image)
    assert dhash.tolist() == reference_dhash(small_gray(image))
    assert pixels.tolist() == pixel_hash(np.asarray(image)).tolist()
    assert regions[0].tolist() == pytest.approx(reference_object(np.asarray(image), (10, 10, 40, 50)))


def write_images(root: Path, count: int) -> list[str]:
    rng = np.random.default_rng(5)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, (24 + i % 3, 30, 3), dtype=np.uint8)
        mode = "L" if i % 4 == 3 else "RGB"  # a gray file is measured as its RGB conversion
        path = root / f"{i}.png"
        Image.fromarray(pixels).convert(mode).save(path)
        paths.append(str(path))
    return paths


def test_the_model_decode_measures_exactly_what_a_decode_only_pass_does(tmp_path):
    paths = write_images(tmp_path, 11)
    regions = Regions(np.array([0, 0, 3, 10]), np.array([[1, 1, 9, 9], [5, 5, 20, 20], [0, 0, 4, 4], [2, 3, 28, 22]],
                                                        float))
    model = OnnxModel(channel_mean_model(tmp_path / "m.onnx", size=(8, 8)))
    collector = Collector(len(paths), regions)
    prep = model.preprocess({})
    batches = list(run_batches(model, paths, paths, prep, 4, 2, observe=collector.observe))
    assert collector.complete and sum(b.stop - b.start for b in batches) == len(paths)
    alone = measure_all(paths, paths, regions, 3)
    for name in ("images", "dhash", "pixels", "regions"):
        assert np.array_equal(getattr(collector.result, name), getattr(alone, name), equal_nan=True), name
    # and the model's input is what it is without observing
    plain = list(run_batches(model, paths, paths, prep, 4, 2))
    assert all(np.array_equal(a.outputs[0], b.outputs[0]) for a, b in zip(batches, plain))


def test_measurements_are_cached_apart_from_predictions(tmp_path):
    rows = ["id,image,label,split"] + [f"u{i},{i}.png,scratch,{'train' if i < 6 else 'dev'}" for i in range(11)]
    write_images(tmp_path, 11)
    (tmp_path / "dev.csv").write_text("\n".join(rows) + "\n")
    settings = build_settings(tmp_path, None, {"data": str(tmp_path / "dev.csv"), "predictions": "x.csv",
                                               "analyze": True}, {})
    dataset = load_classification(settings.data, settings.split)
    cache = tmp_path / "cache"
    first = Measuring(settings, dataset, cache)
    assert first.pending and first.others and first.observe is not None
    first.finish(2)  # nothing observed (as after a prediction cache hit): a decode-only pass
    second = Measuring(settings, dataset, cache)
    assert not second.pending and second.observe is None
    second.finish(2)
    assert np.array_equal(second.measured.images, first.measured.images)
    assert np.array_equal(second.other_measured.dhash, first.other_measured.dhash)
    assert len(second.measured.images) == 5 and len(second.other_measured.images) == 6
    # the columns land on the images and units; a column the dev set has is kept
    second.add_columns()
    assert dataset.units["brightness"].tolist() == pytest.approx(first.measured.images[:, 0].tolist())
    assert "blur" in dataset.other_units.columns
