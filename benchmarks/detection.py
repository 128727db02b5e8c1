"""Detection at scale: 100k ground-truth objects through the whole evaluation, and the
matching alone, against pycocotools' and faster-coco-eval's COCOeval on the same job in the
same process.

    python benchmarks/detection.py [--images 10000] [--per-image 10] [--rounds 3]

The job, end to end from the files on disk: a COCO dev set and COCO results -> per-class recall
at one IoU (0.5), predictions with score >= 0.5. Every tool reads both JSON files itself:
  erran            pytest_erran.evaluate (load, checks, match, buckets, gate)
  pycocotools      json.load of the results, the score filter, COCO(dev.json), loadRes,
                   COCOeval.evaluate + accumulate (one IoU, one area range, no maxDets cut)
  faster-coco-eval the same with faster_coco_eval.COCO / COCOeval_faster
The rounds alternate and the best of each counts. The per-class recalls of every tool are
printed and must agree. pycocotools is a test dependency; faster-coco-eval and orjson (the
[fast] extra) are optional: pip install faster-coco-eval 'pytest-erran[fast]'.
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


def time_cocoeval(root: Path, flavour: str) -> tuple[float, dict]:
    """(seconds, recall per class name) of the job with pycocotools or faster-coco-eval."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if flavour == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        truth = COCO(str(root / "dev.json"))
        kept = [r for r in json.loads((root / "preds.json").read_text()) if r["score"] >= 0.5]
        evaluation = COCOeval(truth, truth.loadRes(kept), iouType="bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.params.maxDets = [10_000]
        evaluation.params.areaRng = [[0, 1e10]]
        evaluation.params.areaRngLbl = ["all"]
        evaluation.evaluate()
        evaluation.accumulate()
    seconds = time.perf_counter() - start
    recall = evaluation.eval["recall"][0, :, 0, 0]  # [iou, class, area, maxDets]
    names = {c["id"]: c["name"] for c in truth.dataset["categories"]}
    return seconds, {names[c]: float(r) for c, r in zip(evaluation.params.catIds, recall)}


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


def run(images: int, per_image: int, rounds: int) -> dict:
    """Every tool on the same files, alternating for `rounds` rounds; the best of each."""
    import importlib.util

    flavours = ["pycocotools"] + (["faster-coco-eval"] if importlib.util.find_spec("faster_coco_eval") else [])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        coco, results = make_scene(root, images, per_image)
        n_predictions = len(results)
        del coco, results  # every tool reads the files
        times: dict[str, list[float]] = {"erran": [], **{f: [] for f in flavours}}
        recalls: dict[str, dict] = {}
        for _ in range(rounds):
            seconds, evaluation = time_erran(root)
            times["erran"].append(seconds)
            for flavour in flavours:
                seconds, recalls[flavour] = time_cocoeval(root, flavour)
                times[flavour].append(seconds)
        match_s = time_matching_only(evaluation)
    recalls["erran"] = {c: evaluation.bucket(c).recall for c in CLASSES}
    best = {name: min(values) for name, values in times.items()}
    return {"objects": len(evaluation.units), "images": images, "predictions": n_predictions,
            "seconds": best, "match_s": match_s, "recall": recalls, "rounds": rounds}


def report(result: dict) -> list[str]:
    best = result["seconds"]
    lines = [f"{result['objects']} objects in {result['images']} images, {result['predictions']} predictions; "
             f"end to end from the files, best of {result['rounds']} alternated rounds:"]
    for name, seconds in best.items():
        ratio = "" if name == "erran" else f"  {seconds / best['erran']:.1f}x erran's time"
        lines.append(f"  {name:<17} {seconds:6.2f} s{ratio}")
    lines.append(f"  erran match_detections alone: {result['match_s']:.2f} s")
    if "faster-coco-eval" in best:
        ok = "ok" if best["faster-coco-eval"] / best["erran"] >= 2 else "LOW"
        lines.append(f"  target: at least 2x faster than faster-coco-eval: "
                     f"{best['faster-coco-eval'] / best['erran']:.2f}x ({ok})")
    recall = result["recall"]
    agree = all(abs(recall[name][c] - recall["erran"][c]) < 1e-12 for name in recall for c in CLASSES)
    lines.append("  recall per class: " + ", ".join(f"{c} {recall['erran'][c]:.4f}" for c in CLASSES)
                 + ("; identical in every tool" if agree else f"; DIFFER: {recall}"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--per-image", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        import orjson  # noqa: F401
        parser_name = "orjson"
    except ImportError:
        parser_name = "json (pip install 'pytest-erran[fast]' for orjson)"
    print(f"JSON parser: {parser_name}")
    print("\n".join(report(run(args.images, args.per_image, args.rounds))))


if __name__ == "__main__":
    main()
