"""Image properties (brightness, contrast, blur) against an independent computation, and as
bucket columns through a real pytest run."""

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage

from pytest_erran.inference.properties import measure, referenced

LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float)


def reference(image: Image.Image) -> tuple[float, float, float]:
    """The definition computed another way: per-channel weights, scipy's convolution."""
    width, height = image.size
    if max(width, height) > 128:  # blocks of the integer factor, then bilinear for the rest
        scale = 128 / max(width, height)
        size = (round(width * scale), round(height * scale))
        factor = max(width, height) // 128
        if factor >= 2:
            image = image.reduce(factor)
        if image.size != size:
            image = image.resize(size, Image.BILINEAR)
    r, g, b = (np.asarray(image.getchannel(c), float) for c in "RGB")
    gray = 0.2125 * r + 0.7154 * g + 0.0721 * b
    response = ndimage.convolve(gray, LAPLACIAN, mode="constant")[1:-1, 1:-1]  # interior only
    mean = gray.sum() / gray.size
    return mean, float(np.sqrt(((gray - mean) ** 2).mean())), float(np.var(response))


@pytest.mark.parametrize("size", [(64, 48), (128, 128), (300, 200), (97, 401), (3, 3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measure_matches_the_definition(size, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    assert measure(image) == pytest.approx(reference(image), rel=1e-9)


def test_an_exact_multiple_is_measured_on_block_means():
    # 512 x 256 -> blocks of 4 x 4: the gray of the block means (PIL rounds them to whole levels)
    pixels = np.random.default_rng(4).integers(0, 256, (256, 512, 3), dtype=np.uint8)
    blocks = pixels.reshape(64, 4, 128, 4, 3).mean(axis=(1, 3))
    gray = np.floor(blocks + 0.5) @ np.array([0.2125, 0.7154, 0.0721])
    brightness, contrast, _ = measure(Image.fromarray(pixels))
    assert brightness == pytest.approx(gray.mean(), abs=1e-9)
    assert contrast == pytest.approx(gray.std(), rel=1e-9)


def test_blur_is_low_for_a_blurred_image_and_brightness_tracks_light():
    pixels = np.random.default_rng(3).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    sharp = Image.fromarray(pixels)
    blurred = sharp.filter(ImageFilter.GaussianBlur(3))
    dark = Image.fromarray(pixels // 4)
    assert measure(blurred)[2] < measure(sharp)[2] / 10
    assert measure(dark)[0] < measure(sharp)[0] / 3
    assert measure(Image.new("RGB", (10, 10), (50, 50, 50))) == pytest.approx((50.0, 0.0, 0.0))


def test_only_properties_a_where_uses_and_the_data_lacks_are_measured():
    assert referenced(["brightness < 40", "lighting == 'low'"], ["lighting"]) == ["brightness"]
    assert referenced(["blur < 5 and contrast > 2"], ["contrast"]) == ["blur"]
    assert referenced(["blurry == 1"], []) == []


def test_a_dark_bucket_through_pytest(project):
    # Images painted at strength 40 measure 21-25 (dark), at 200 over 60; dark misses: u004 and
    # u010 look like "ok".
    rows = []
    for i in range(12):
        label = ["ok", "scratch", "dent"][i % 3]
        dark = i % 2 == 0
        rows.append({"id": f"u{i:03d}", "label": label, "strength": 40 if dark else 200,
                     "looks_like": "ok" if i in (4, 10) else label})
    project.model()
    project.data(rows)
    project.config("""
    [buckets.dark]
    where = "brightness < 30"
    [[require]]
    bucket = "dark"
    recall = 0.9
    """)
    result, report = project.report()
    dark = {b["name"]: b for b in report["buckets"]}["dark"]
    expected = [r for r in rows if r["strength"] == 40 and r["label"] != "ok"]
    assert dark["positives"] == len(expected) == 4
    assert sorted(dark["missed"]) == ["u004", "u010"]
    assert result.ret == 1


def test_a_manifest_column_of_the_same_name_wins(project):
    rows = [{"id": f"u{i}", "label": "scratch", "brightness": 100 + i} for i in range(4)]
    project.model()
    project.data(rows)
    project.config("""
    [buckets.bright]
    where = "brightness > 101.5"
    [[require]]
    bucket = "bright"
    recall = 0.5
    """)
    result, report = project.report()
    # the painted images measure about 46: measuring them would have selected none
    assert {b["name"]: b for b in report["buckets"]}["bright"]["positives"] == 2


def test_objects_take_their_image_properties(project):
    import json

    images, annotations = [], []
    for i, level in enumerate([10, 200, 15]):  # dark, bright, dark
        Image.new("RGB", (40, 30), (level, level, level)).save(project.path / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 40, "height": 30})
        for k in range(2):
            annotations.append({"id": 10 * i + k, "image_id": i + 1, "category_id": 1,
                                "bbox": [2 + 10 * k, 2, 8, 8], "area": 64})
    (project.path / "dev.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "pit"}]}))
    # one prediction, on object 0 of the dark image 1: the dark bucket has 4 objects, 1 hit
    (project.path / "preds.json").write_text(json.dumps(
        [{"image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "score": 0.9}]))
    (project.path / "erran.toml").write_text("""
task = "detection"
data = "dev.json"
predictions = "preds.json"
[buckets.dark]
where = "brightness < 50"
[[require]]
bucket = "dark"
recall = 0.1
""")
    result, report = project.report()
    dark = {b["name"]: b for b in report["buckets"]}["dark"]
    assert (dark["positives"], dark["hits"]) == (4, 1)
    assert sorted(dark["missed"]) == ["1", "20", "21"]
