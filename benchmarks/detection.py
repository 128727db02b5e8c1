"""Detection at scale: 100k ground-truth objects through the whole evaluation, and the
matching alone, against pycocotools' COCOeval on the same objects in the same process.

    python benchmarks/detection.py [--images 10000] [--per-image 10]

Prints seconds and the ratio pycocotools / pytest-erran. pycocotools is a test-only
dependency (pip install -e ".[test]").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pytest_erran.config import build_settings
from pytest_erran.pipeline import evaluate
from pytest_erran.tasks.detection.matching import match_detections

CLASSES = ["tube", "fin", "crack"]


def make_scene(root: Path, n_images: int, per_image: int, seed: int = 0):
    """A COCO dev set with n_images x per_image objects (2% crowd) and 1.5 predictions per
    object: jittered copies of the truth, some with the wrong class, random scores."""
    rng = np.random.default_rng(seed)
    tiny = io.BytesIO()
    Image.new("RGB", (640, 480)).save(tiny, format="PNG")  # the size the dev set declares
    (root / "images").mkdir()
    images = []
    for i in range(n_images):
        (root / "images" / f"{i}.png").write_bytes(tiny.getvalue())  # the loader reads each header
        images.append({"id": i + 1, "file_name": f"images/{i}.png", "width": 640, "height": 480})
    n = n_images * per_image
    xy = rng.uniform(0, 440, (n, 2))
    wh = rng.uniform(10, 200, (n, 2))
    labels = rng.integers(0, len(CLASSES), n)
    image_of = np.repeat(np.arange(n_images), per_image)
    crowd = rng.random(n) < 0.02
    annotations = [{"id": k + 1, "image_id": int(image_of[k]) + 1, "category_id": int(labels[k]) + 1,
                    "bbox": [float(xy[k, 0]), float(xy[k, 1]), float(wh[k, 0]), float(wh[k, 1])],
                    "area": float(wh[k, 0] * wh[k, 1]), "iscrowd": int(crowd[k])} for k in range(n)]
    source = rng.integers(0, n, int(n * 1.5))
    jitter = rng.normal(0, 6, (len(source), 4))
    label = np.where(rng.random(len(source)) < 0.9, labels[source], rng.integers(0, len(CLASSES), len(source)))
    results = [{"image_id": int(image_of[s]) + 1, "category_id": int(label[j]) + 1,
                "bbox": [float(xy[s, 0] + jitter[j, 0]), float(xy[s, 1] + jitter[j, 1]),
                         float(max(1.0, wh[s, 0] + jitter[j, 2])), float(max(1.0, wh[s, 1] + jitter[j, 3]))],
                "score": float(rng.random())} for j, s in enumerate(source)]
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
    (root / "dev.json").write_text(json.dumps(coco))
    (root / "preds.json").write_text(json.dumps(results))
    return coco, results


def time_erran(root: Path) -> tuple[float, object]:
    table = {"task": "detection", "data": "dev.json", "predictions": "preds.json",
             "score_threshold": 0.5, "require": [{"bucket": "all", "recall": 0.1}]}
    settings = build_settings(root, root / "erran.toml", table, {})
    start = time.perf_counter()
    evaluation = evaluate(settings)
    return time.perf_counter() - start, evaluation


def time_matching_only(evaluation) -> float:
    """match_detections alone, on arrays already in memory."""
    units = evaluation.units
    rng = np.random.default_rng(1)
    n = len(units)
    boxes = units[["x1", "y1", "x2", "y2"]].to_numpy(float)
    image = units["_image_index"].to_numpy()
    label = units["label"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    source = rng.integers(0, n, int(n * 1.5))
    start = time.perf_counter()
    match_detections(image, label, boxes, np.zeros(n, bool), image[source], label[source],
                     boxes[source] + rng.normal(0, 6, (len(source), 4)), rng.random(len(source)),
                     np.full(len(CLASSES), 0.5), 0.5)
    return time.perf_counter() - start


def time_pycocotools(coco: dict, results: list) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = coco
        truth.createIndex()
        kept = [r for r in results if r["score"] >= 0.5]  # the same filtered predictions
        evaluation = COCOeval(truth, truth.loadRes(kept), iouType="bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.params.maxDets = [10_000]
        evaluation.params.areaRng = [[0, 1e10]]
        evaluation.params.areaRngLbl = ["all"]
        evaluation.evaluate()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--per-image", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        coco, results = make_scene(root, args.images, args.per_image)
        erran_s, evaluation = time_erran(root)
        match_s = time_matching_only(evaluation)
        coco_s = time_pycocotools(coco, results)
    objects = len(evaluation.units)
    print(f"{objects} objects in {args.images} images, {len(results)} predictions")
    print(f"pytest-erran evaluate (load COCO + predictions, match, buckets, gate): {erran_s:6.2f} s")
    print(f"pytest-erran match_detections alone:                                 {match_s:6.2f} s")
    print(f"pycocotools COCO index + loadRes + COCOeval.evaluate (one IoU):      {coco_s:6.2f} s")
    print(f"ratio pycocotools / erran evaluate: {coco_s / erran_s:.1f}x; "
          f"/ matching alone: {coco_s / match_s:.1f}x")


if __name__ == "__main__":
    main()
