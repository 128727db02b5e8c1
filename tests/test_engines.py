"""The engines that run a model: Ray gives exactly the local runner's predictions; onnxruntime
providers are checked; decode = "fast" keeps every shape and size."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import pytest_erran
from builders import channel_mean_model, write_dev_set
from detection_builders import boxes_scores_labels_model, model_detections, random_scene, write_coco
from pytest_erran.errors import ErranError
from pytest_erran.inference.images import Preprocess, decode_into, letterbox_geometry

CLASSIFICATION = """
model = "model.onnx"
data = "dev.csv"
classes = ["ok", "scratch", "dent"]
negative = "ok"
batch_size = 4
[preprocess]
size = [8, 8]
[[require]]
bucket = "all"
recall = 0.0
"""

DETECTION = """
task = "detection"
model = "det.onnx"
data = "dev.json"
batch_size = 3
[[require]]
bucket = "all"
recall = 0.0
"""


def evaluate(root, text, **options):
    (root / "erran.toml").write_text(textwrap.dedent(text))
    return pytest_erran.evaluate(root / "erran.toml", rootdir=root, **options)


def test_the_ray_engine_predicts_exactly_what_the_local_runner_does(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'pytest-erran[ray]' to test engine = \"ray\"")
    classification, detection = tmp_path / "classification", tmp_path / "detection"
    classification.mkdir(), detection.mkdir()
    channel_mean_model(classification / "model.onnx")
    write_dev_set(classification, n=30)
    scene = random_scene(3, num_images=9)
    write_coco(detection, scene)
    boxes_scores_labels_model(detection / "det.onnx", (64, 32), model_detections(scene, (64, 32)))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
    try:
        for root, text in ((classification, CLASSIFICATION), (detection, DETECTION)):
            local = evaluate(root, text)
            remote = evaluate(root, text, engine="ray", ray_workers=2)
            assert remote.timing["predicted"] == local.timing["predicted"] > 0
            for column in ("_hit", "_pred", "_score"):
                if column in local.units:
                    np.testing.assert_array_equal(remote.units[column].to_numpy(), local.units[column].to_numpy())
            for name in ("image", "label", "score", "box", "match", "unit", "iou") if root is detection else ("index",):
                np.testing.assert_array_equal(getattr(remote.predictions, name), getattr(local.predictions, name))
            assert [v.message for v in remote.verdicts] == [v.message for v in local.verdicts]
    finally:
        ray.shutdown()


def test_an_image_a_ray_actor_cannot_read_is_the_local_runners_one_line_error(tmp_path):
    """The actor hands the ErranError back as a row (Ray would wrap it past recognition), and
    the driver raises it as it was; checked on the actor class itself, without starting Ray."""
    from pytest_erran.inference.onnx_model import OnnxModel
    from pytest_erran.inference.ray_engine import BatchPredictor, in_order

    model = OnnxModel(channel_mean_model(tmp_path / "model.onnx"))
    write_dev_set(tmp_path, n=5)
    (tmp_path / "images" / "003.png").write_bytes(b"not a png")
    paths = [str(tmp_path / "images" / f"{i:03d}.png") for i in range(5)]
    block = {"index": np.arange(5), "path": np.array(paths, object),
             "source": np.array([f"dev.csv line {i + 2}" for i in range(5)], object)}
    predictor = BatchPredictor(str(model.path), model.providers, model.preprocess({}), 2)
    rows = predictor(block)
    with pytest.raises(ErranError, match=r"^dev.csv line 5: cannot read image .*003.png: not an image format"):
        list(in_order(({k: rows[k][i] for k in rows} for i in range(len(rows["start"]))), 5))
    good = predictor({k: v[:3] for k, v in block.items()})  # batches of 2: [0, 2) and [2, 3)
    assert good["start"].tolist() == [0, 2] and good["stop"].tolist() == [2, 3]
    batches = list(in_order(({k: good[k][i] for k in good} for i in (1, 0)), 3))  # out of order
    assert [(b.start, b.stop) for b in batches] == [(0, 2), (2, 3)]


def test_without_ray_the_ray_engine_says_how_to_install_it(tmp_path, monkeypatch):
    channel_mean_model(tmp_path / "model.onnx")
    write_dev_set(tmp_path, n=3)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ErranError, match=r"pip install 'pytest-erran\[ray\]'"):
        evaluate(tmp_path, CLASSIFICATION, engine="ray")


def test_providers_are_passed_to_onnxruntime_and_checked(tmp_path, project):
    channel_mean_model(tmp_path / "model.onnx")
    write_dev_set(tmp_path, n=3)
    evaluation = evaluate(tmp_path, CLASSIFICATION, providers=["CPUExecutionProvider"])
    assert evaluation.timing["predicted"] == 3
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ErranError, match=r"providers: CUDAExecutionProvider is not available .*"
                                             r"install onnxruntime-gpu \(pip install 'pytest-erran\[gpu\]'"):
            evaluate(tmp_path, CLASSIFICATION, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ErranError, match=r"providers: NoSuchExecutionProvider is not available in this "
                                         r"onnxruntime \(available: .*CPUExecutionProvider.*\); check the name"):
        evaluate(tmp_path, CLASSIFICATION, providers=["NoSuchExecutionProvider"])
    # Through pytest: a usage error naming the provider, before any image is read.
    channel_mean_model(project.path / "model.onnx")
    write_dev_set(project.path, n=3)
    project.config('providers = ["NoSuchExecutionProvider"]\n[[require]]\nbucket = "all"\nrecall = 0.0\n')
    from conftest import usage_error

    usage_error(project.run(), "NoSuchExecutionProvider is not available")


def large_jpeg(path, size, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 64 + 2, size[0] // 64 + 2, 3), dtype=np.uint8)  # smooth, as photos are
    Image.fromarray(small).resize(size, Image.BICUBIC).save(path, quality=90)


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
@pytest.mark.parametrize("channels", [1, 3])
def test_fast_decode_keeps_shapes_sizes_and_nearly_the_pixels(tmp_path, resize, channels):
    """decode = "fast" changes how a JPEG is decoded, never the row's shape or the image's own size."""
    exact = Preprocess(width=64, height=48, channels=channels, layout="NCHW", dtype="float32", resize=resize)
    fast = Preprocess(width=64, height=48, channels=channels, layout="NCHW", dtype="float32", resize=resize,
                      decode="fast")
    for k, size in enumerate([(520, 390), (333, 500), (64, 48)]):
        path = str(tmp_path / f"{k}.jpg")
        large_jpeg(path, size, k)
        a, b = exact.buffer(1)[0], fast.buffer(1)[0]
        assert decode_into(path, a, exact, path) == decode_into(path, b, fast, path) == size
        assert a.shape == b.shape == (48, 64, channels)
        # the same picture, slightly differently low-passed (the issue measured a mean absolute
        # difference of 0.17 on a photo; these random images have far more fine detail)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97, size
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 6, size
        if resize == "letterbox":  # the padding is where it was: gray 114 outside the pasted image
            _, new_w, new_h, left, top = letterbox_geometry(size, (64, 48))
            outside = np.ones((48, 64), bool)
            outside[top:top + new_h, left:left + new_w] = False
            assert (a[outside] == 114).all() and (b[outside] == 114).all()
    png = str(tmp_path / "x.png")
    Image.open(str(tmp_path / "0.jpg")).save(png)  # not a JPEG: decoded exactly either way
    a, b = exact.buffer(1)[0], fast.buffer(1)[0]
    decode_into(png, a, exact, png), decode_into(png, b, fast, png)
    np.testing.assert_array_equal(a, b)


def test_fast_decode_is_a_config_key_and_part_of_the_cache_keys(tmp_path):
    channel_mean_model(tmp_path / "model.onnx")
    write_dev_set(tmp_path, n=6)
    text = CLASSIFICATION.replace("size = [8, 8]", 'size = [8, 8]\ndecode = "fast"')
    fast = evaluate(tmp_path, text, cache_dir=tmp_path / "cache")
    exact = evaluate(tmp_path, CLASSIFICATION, cache_dir=tmp_path / "cache")
    assert fast.timing["predicted"] == exact.timing["predicted"] == 6  # not one the other's cache
    assert exact.timing["inputs_cached"] == 0
    with pytest.raises(ErranError, match="decode"):
        evaluate(tmp_path, CLASSIFICATION.replace("size = [8, 8]", 'size = [8, 8]\ndecode = "quick"'))
