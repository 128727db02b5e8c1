"""The input cache: a new model on an unchanged dev set only runs inference, and no change to an
image, the manifest or the preprocessing is ever served a stale input. Every check compares the
cached run's predictions with a run without any cache (the independent reference)."""

from __future__ import annotations

import os
import shutil
import textwrap
import warnings

import numpy as np
import pytest
from PIL import Image

import pytest_erran
from builders import channel_mean_model, noisy_image, write_dev_set
from pytest_erran.inference import images as images_module
from pytest_erran.inference.images import Preprocess, decode_into
from pytest_erran.inference.input_cache import INDEX, ErranCacheWarning, InputCache

CONFIG = """
model = "{model}"
data = "{data}"
classes = ["ok", "scratch", "dent"]
negative = "ok"
{extra}
[preprocess]
size = [8, 8]
{preprocess}
[[require]]
bucket = "all"
recall = 0.0
"""


def evaluate(root, model="model.onnx", data="dev.csv", extra="", preprocess="", cache=True, **options):
    (root / "erran.toml").write_text(textwrap.dedent(CONFIG).format(
        model=model, data=data, extra=extra, preprocess=preprocess))
    cache_dir = root / "cache" if cache else None
    return pytest_erran.evaluate(root / "erran.toml", rootdir=root, cache_dir=cache_dir, **options)


def predictions(evaluation):
    return evaluation.units["_pred"].tolist(), evaluation.units["_score"].to_numpy()


def assert_same_as_uncached(root, evaluation, **kwargs):
    reference = evaluate(root, cache=False, **kwargs)
    assert predictions(evaluation)[0] == predictions(reference)[0]
    np.testing.assert_array_equal(predictions(evaluation)[1], predictions(reference)[1])


@pytest.fixture
def dev(tmp_path):
    channel_mean_model(tmp_path / "model.onnx")
    channel_mean_model(tmp_path / "other.onnx", bias=[0.3, 0.0, 0.0])  # another model, same inputs
    write_dev_set(tmp_path)
    return tmp_path


def count_decodes(monkeypatch):
    decoded = []
    real = images_module.decode_into

    def counting(path, *args):
        decoded.append(os.path.basename(path))
        return real(path, *args)

    monkeypatch.setattr("pytest_erran.inference.batches.decode_into", counting)
    return decoded


def test_a_new_model_on_a_cached_dev_set_decodes_nothing(dev, monkeypatch):
    first = evaluate(dev)
    assert (first.timing["inputs_cached"], first.timing["inputs_decoded"]) == (0, 24)
    decoded = count_decodes(monkeypatch)
    second = evaluate(dev, model="other.onnx")
    assert decoded == [] and second.timing["inputs_cached"] == 24
    assert_same_as_uncached(dev, second, model="other.onnx")
    # the other model's scores really differ: the cached inputs fed the new model
    assert not np.array_equal(predictions(first)[1], predictions(second)[1])


def test_changing_one_image_decodes_exactly_that_image(dev, monkeypatch):
    evaluate(dev)
    noisy_image(dev / "images" / "005.png", 5 + 3 * 100)  # new content, still looks like class 2
    noisy_image(dev / "images" / "007.png", 8 + 300)  # now looks like class 2 instead of 1
    decoded = count_decodes(monkeypatch)
    again = evaluate(dev, model="other.onnx")
    assert sorted(decoded) == ["005.png", "007.png"]
    assert (again.timing["inputs_cached"], again.timing["inputs_decoded"]) == (22, 2)
    assert_same_as_uncached(dev, again, model="other.onnx")
    assert again.units.set_index("id").loc["u007", "_pred"] == "dent"


def test_an_image_rewritten_with_its_old_size_and_mtime_is_still_noticed(dev, monkeypatch):
    """cp -p keeps size and mtime; the ctime (which no user can set) still changes."""
    evaluate(dev)
    path = dev / "images" / "004.png"
    before = os.stat(path)
    pixels = np.asarray(Image.open(path)).copy()
    pixels[0, 0] ^= 0xFF  # same size of file is likely but not needed: mtime is restored below
    Image.fromarray(pixels).save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    decoded = count_decodes(monkeypatch)
    evaluate(dev, model="other.onnx")
    assert decoded == ["004.png"]


def test_a_fresh_checkout_reuses_rows_by_content(dev, monkeypatch):
    """CI restores the cache into a new clone: every stat differs, the contents do not."""
    evaluate(dev)
    for path in (dev / "images").iterdir():
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)  # a new inode, mtime and ctime
    decoded = count_decodes(monkeypatch)
    again = evaluate(dev, model="other.onnx")
    assert decoded == [] and again.timing["inputs_cached"] == 24
    decoded.clear()
    evaluate(dev)  # the new stats were recorded: found by path again
    assert decoded == []


def test_an_edited_manifest_decodes_only_its_new_images(dev, monkeypatch):
    evaluate(dev)
    # rows reordered, two removed, three new images added
    write_dev_set(dev, seeds=[30, 31, 32] + list(range(23, 1, -1)))
    decoded = count_decodes(monkeypatch)
    again = evaluate(dev, model="other.onnx")
    assert sorted(decoded) == ["030.png", "031.png", "032.png"]
    assert again.timing["inputs_cached"] == 22
    assert_same_as_uncached(dev, again, model="other.onnx")


def test_other_preprocessing_geometry_is_another_entry_but_normalisation_is_not(dev, monkeypatch):
    evaluate(dev)
    decoded = count_decodes(monkeypatch)
    normalised = evaluate(dev, model="other.onnx", preprocess="mean = [0.1]\nstd = [0.5]")
    assert decoded == [] and normalised.timing["inputs_cached"] == 24  # normalised after the cache
    assert_same_as_uncached(dev, normalised, model="other.onnx", preprocess="mean = [0.1]\nstd = [0.5]")
    letterboxed = evaluate(dev, preprocess='resize = "letterbox"')
    assert letterboxed.timing["inputs_cached"] == 0 and letterboxed.timing["inputs_decoded"] == 24
    assert_same_as_uncached(dev, letterboxed, preprocess='resize = "letterbox"')
    entries = [p for p in (dev / "cache" / "inputs").iterdir() if p.is_dir()]
    assert len(entries) == 2


def test_a_damaged_pixel_row_is_decoded_again(dev, monkeypatch):
    evaluate(dev)
    [entry] = (dev / "cache" / "inputs").iterdir()
    [pixels] = entry.glob("pixels-*.u8")
    data = bytearray(pixels.read_bytes())
    row = 8 * 8 * 3
    data[3 * row + 10] ^= 0x55  # one byte of the fourth row
    pixels.write_bytes(bytes(data))
    with np.load(entry / INDEX) as index:
        damaged = os.path.basename(str(index["path"][3]))  # rows are in the order threads stored them
    decoded = count_decodes(monkeypatch)
    again = evaluate(dev, model="other.onnx")
    assert decoded == [damaged]
    assert_same_as_uncached(dev, again, model="other.onnx")
    decoded.clear()
    evaluate(dev)  # the row decoded again supersedes the damaged one
    assert decoded == []


@pytest.mark.parametrize("damage", ["garbage index", "truncated pixels", "foreign index"])
def test_a_damaged_or_foreign_entry_is_a_miss(dev, damage, monkeypatch):
    evaluate(dev)
    [entry] = (dev / "cache" / "inputs").iterdir()
    if damage == "garbage index":
        (entry / INDEX).write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "truncated pixels":
        [pixels] = entry.glob("pixels-*.u8")
        pixels.write_bytes(pixels.read_bytes()[:1000])
    else:  # an index of a pickled object array must never be unpickled
        np.savez(entry / INDEX, digest=np.array([object()], dtype=object))
    decoded = count_decodes(monkeypatch)
    again = evaluate(dev, model="other.onnx")
    assert len(decoded) == 24
    assert_same_as_uncached(dev, again, model="other.onnx")


def test_the_bound_caches_what_fits_with_one_warning_and_prunes_the_oldest(dev, monkeypatch):
    from pytest_erran.inference import input_cache

    monkeypatch.setattr(input_cache, "MB", 1000)  # rows of 192 bytes: the bound in kB-sized units
    with pytest.warns(ErranCacheWarning, match="cache_max_mb = 2") as caught:
        evaluate(dev, extra="cache_max_mb = 2")  # 2000 bytes: 10 rows of 192
    assert len(caught) == 1
    decoded = count_decodes(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ErranCacheWarning)
        again = evaluate(dev, model="other.onnx", extra="cache_max_mb = 2")
    assert again.timing["inputs_cached"] == 10 and len(decoded) == 14
    # Two geometries, room for one: the older entry goes.
    evaluate(dev, extra="cache_max_mb = 15")
    entries = [p for p in (dev / "cache" / "inputs").iterdir() if p.is_dir()]
    assert len(entries) == 1
    first = entries[0]
    evaluate(dev, preprocess='resize = "letterbox"', extra="cache_max_mb = 15")
    entries = [p for p in (dev / "cache" / "inputs").iterdir() if p.is_dir()]
    assert len(entries) == 1 and entries[0] != first


def test_cache_false_or_no_cache_folder_stores_nothing(dev):
    evaluate(dev, extra="cache = false")
    assert not (dev / "cache").exists()
    evaluate(dev, cache=False)
    assert not (dev / "cache").exists()


def test_a_folder_that_cannot_be_written_means_no_cache_and_one_warning(dev):
    (dev / "cache").mkdir()
    (dev / "cache" / "inputs").write_text("a file where the folder should be")
    with pytest.warns(ErranCacheWarning, match="cannot write") as caught:
        evaluation = evaluate(dev)
    assert len(caught) == 1 and evaluation.timing["inputs_cached"] == 0
    assert_same_as_uncached(dev, evaluation)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_entry_means_no_cache_and_one_warning(dev):
    evaluate(dev, model="other.onnx", cache=True)
    [entry] = (dev / "cache" / "inputs").iterdir()
    shutil.rmtree(entry)
    (dev / "cache" / "inputs").chmod(0o555)
    try:
        with pytest.warns(ErranCacheWarning, match="cannot write") as caught:
            evaluation = evaluate(dev)
    finally:
        (dev / "cache" / "inputs").chmod(0o755)
    assert len(caught) == 1
    assert_same_as_uncached(dev, evaluation)


def test_rows_round_trip_through_the_cache(tmp_path):
    """The unit: a cached row is the decoded row, its image's own size with it."""
    paths = []
    for seed in range(5):
        noisy_image(tmp_path / f"{seed}.png", seed, size=(20 + seed, 9))
        paths.append(str(tmp_path / f"{seed}.png"))
    prep = Preprocess(width=8, height=6, channels=3, layout="NCHW", dtype="float32")
    cache = InputCache(tmp_path / "inputs", 10)
    expected = np.empty((5, 6, 8, 3), np.uint8)
    with cache.rows("dev", prep, paths) as rows:
        for i, path in enumerate(paths):
            assert rows.get(i, expected[i]) is None
            size = decode_into(path, expected[i], prep, path)
            rows.put(i, expected[i], size)
    assert cache.decoded == 5
    got = np.zeros_like(expected)
    with cache.rows("dev", prep, paths[::-1]) as rows:
        sizes = [rows.get(i, got[4 - i]) for i in range(5)]
    np.testing.assert_array_equal(got, expected)
    assert sizes == [(24, 9), (23, 9), (22, 9), (21, 9), (20, 9)]
    assert cache.hits == 5 and cache.decoded == 0


def test_the_plugin_keeps_inputs_between_runs_unless_told_not_to(pytester, project):
    channel_mean_model(project.path / "model.onnx", size=(8, 8))
    channel_mean_model(project.path / "other.onnx", bias=[0.3, 0.0, 0.0])
    write_dev_set(project.path)
    project.config("""
        [[require]]
        bucket = "all"
        recall = 0.0
    """)
    inputs = project.path / ".pytest_cache" / "d" / "erran-predictions" / "inputs"
    assert project.run("-p", "no:cacheprovider").ret == 0
    assert not (project.path / ".pytest_cache").exists()
    assert project.run("--erran-no-cache").ret == 0
    assert not inputs.parent.exists()  # neither predictions nor inputs
    assert project.run().ret == 0
    [entry] = inputs.iterdir()
    assert (entry / INDEX).is_file()
    result = project.run("--erran-model=other.onnx", "-W", "error::UserWarning")
    assert result.ret == 0


def test_the_plugin_warns_once_when_the_cache_folder_cannot_be_written(project):
    channel_mean_model(project.path / "model.onnx", size=(8, 8))
    write_dev_set(project.path)
    project.config("""
        [[require]]
        bucket = "all"
        recall = 0.0
    """)
    predictions_dir = project.path / ".pytest_cache" / "d" / "erran-predictions"
    predictions_dir.mkdir(parents=True)
    (predictions_dir / "inputs").write_text("in the way")
    result = project.run()
    out = result.stdout.str()
    assert result.ret == 0, out
    assert out.count("ErranCacheWarning: erran input cache: cannot write") == 1, out
    assert "1 passed, 1 warning" in out


def test_a_writer_killed_mid_way_leaves_a_cache_that_serves_only_whole_rows(dev, monkeypatch):
    """What a SIGKILL leaves: rows written past the index (never indexed) and a half-written
    index temp file. The next run serves the indexed rows and decodes the rest, correctly."""
    evaluate(dev)
    [entry] = (dev / "cache" / "inputs").iterdir()
    [pixels] = entry.glob("pixels-*.u8")
    with pixels.open("ab") as f:
        f.write(os.urandom(8 * 8 * 3 * 5 + 17))  # five rows and a torn one, never indexed
    (entry / (INDEX + ".tmp")).write_bytes(b"PK half an index")
    write_dev_set(dev, seeds=list(range(24)) + [40, 41])  # two new images to append after them
    decoded = count_decodes(monkeypatch)
    again = evaluate(dev, model="other.onnx")
    assert sorted(decoded) == ["040.png", "041.png"]
    assert not (entry / (INDEX + ".tmp")).exists()
    assert_same_as_uncached(dev, again, model="other.onnx")
    decoded.clear()
    evaluate(dev)
    assert decoded == []


def test_detection_models_get_their_images_sizes_back_from_the_cache(tmp_path):
    """Boxes are mapped back with each image's own size, which the cache keeps with its row."""
    from detection_builders import boxes_scores_labels_model, model_detections, random_scene, write_coco

    scene = random_scene(5, num_images=8)
    write_coco(tmp_path, scene)
    table = model_detections(scene, (64, 32), "letterbox")
    boxes_scores_labels_model(tmp_path / "det.onnx", (64, 32), table)
    # another file (its metadata names the classes): another model, the same detections
    boxes_scores_labels_model(tmp_path / "det2.onnx", (64, 32), table, classes_metadata=list(scene.classes))
    (tmp_path / "erran.toml").write_text(textwrap.dedent("""
        task = "detection"
        data = "dev.json"
        [preprocess]
        resize = "letterbox"
        [[require]]
        bucket = "all"
        recall = 0.0
    """))

    def run(model, cache):
        return pytest_erran.evaluate(tmp_path / "erran.toml", rootdir=tmp_path, model=tmp_path / model,
                                     cache_dir=tmp_path / "cache" if cache else None)

    run("det.onnx", True)
    cached, reference = run("det2.onnx", True), run("det2.onnx", False)
    assert cached.timing["inputs_cached"] == 8 and cached.timing["inputs_decoded"] == 0
    for name in ("image", "label", "score", "box", "match"):
        np.testing.assert_array_equal(getattr(cached.predictions, name), getattr(reference.predictions, name))
    assert cached.units["_hit"].tolist() == reference.units["_hit"].tolist()


@pytest.mark.parametrize("reading", ["fails", "works"])
def test_an_image_the_cache_cannot_use_is_the_decoders_one_line_error(dev, monkeypatch, reading):
    """The cache reads each changed image first (its digest); an image it cannot read, or that
    is not an image, is left to the decoder, whose error names the row."""
    from pytest_erran.errors import ErranError
    from pytest_erran.inference import input_cache

    evaluate(dev)
    (dev / "images" / "006.png").write_bytes(b"no longer a PNG")
    if reading == "fails":
        def unreadable(path):
            raise PermissionError(13, "Permission denied", path)

        monkeypatch.setattr(input_cache, "content_digest", unreadable)
    with pytest.raises(ErranError, match=r"dev.csv line 8: cannot read image .*006.png: not an image"):
        evaluate(dev, model="other.onnx")
