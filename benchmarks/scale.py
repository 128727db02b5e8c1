#!/usr/bin/env python
"""Gating at scale: a predictions file of 1,000,000 classification rows, and a COCO dev set of
1,000,000 ground-truth objects with its results, each evaluated in a fresh process.

    python benchmarks/scale.py [--rows 1000000] [--objects 1000000] [--files 1000]

Prints, per case, the seconds of `pytest_erran.evaluate` and the process's peak RSS (VmHWM,
which starts fresh at exec), against the targets: under 60 s and under 2 GB. The classification
manifest lists --files distinct 8x8 PNGs many times over (the loader checks that each exists;
their pixels are never read with a predictions file); the detection dev set has 10,000 images.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("ok", "scratch", "dent")
DETECTION_CLASSES = ("tube", "fin", "crack")

CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    def hwm_kb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    import pytest_erran
    started = time.perf_counter()
    evaluation = pytest_erran.evaluate(Path(sys.argv[1]))
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_kb": hwm_kb(),
                      "units": len(evaluation.units), "passed": evaluation.passed,
                      "recall_all": evaluation.bucket("all").recall}))
""")


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (20, 200, 20)).save(buffer, format="PNG")
    return buffer.getvalue()


def classification_case(root: Path, rows: int, files: int) -> Path:
    (root / "images").mkdir()
    png = tiny_png()
    for i in range(files):
        (root / "images" / f"{i}.png").write_bytes(png)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, rows)
    predicted = np.where(rng.random(rows) < 0.9, truth, rng.integers(0, 3, rows))
    scores = rng.random(rows)
    with (root / "dev.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "image", "label", "camera"])
        writer.writerows((f"u{i}", f"images/{i % files}.png", CLASSES[truth[i]], i % 7) for i in range(rows))
    with (root / "preds.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "score"])
        writer.writerows((f"u{i}", CLASSES[predicted[i]], f"{scores[i]:.4f}") for i in range(rows))
    (root / "erran.toml").write_text(textwrap.dedent("""
        data = "dev.csv"
        predictions = "preds.csv"
        classes = ["ok", "scratch", "dent"]
        negative = "ok"
        [buckets.camera3]
        where = "camera == 3"
        [[require]]
        bucket = "all"
        recall = 0.5
        [[require]]
        bucket = "camera3"
        recall = 0.5
    """))
    return root / "erran.toml"


def detection_case(root: Path, objects: int, n_images: int = 10_000) -> Path:
    """A COCO dev set and 1.5 predictions per object, written as JSON streams (the generator
    itself must not hold a million dicts)."""
    (root / "images").mkdir()
    png = tiny_png()
    rng = np.random.default_rng(1)
    per_image = objects // n_images
    with (root / "dev.json").open("w") as f:
        f.write('{"categories": ' + json.dumps([{"id": i + 1, "name": c} for i, c in enumerate(DETECTION_CLASSES)]))
        f.write(', "images": [')
        for i in range(n_images):
            (root / "images" / f"{i}.png").write_bytes(png)
            f.write(("," if i else "") + json.dumps({"id": i + 1, "file_name": f"images/{i}.png",
                                                      "width": 640, "height": 480}))
        f.write('], "annotations": [')
        xy = rng.uniform(0, 440, (objects, 2))
        wh = rng.uniform(10, 200, (objects, 2))
        labels = rng.integers(0, 3, objects)
        for k in range(objects):
            f.write(("," if k else "") + '{"id": %d, "image_id": %d, "category_id": %d, "bbox": [%.2f, %.2f, %.2f, %.2f], '
                    '"area": %.1f, "iscrowd": 0}' % (k + 1, k // per_image + 1, labels[k] + 1, xy[k, 0], xy[k, 1],
                                                     wh[k, 0], wh[k, 1], wh[k, 0] * wh[k, 1]))
        f.write("]}")
    source = rng.integers(0, objects, int(objects * 1.5))
    jitter = rng.normal(0, 6, (len(source), 4))
    with (root / "preds.json").open("w") as f:
        f.write("[")
        for j, s in enumerate(source):
            f.write(("," if j else "") + '{"image_id": %d, "category_id": %d, "bbox": [%.2f, %.2f, %.2f, %.2f], '
                    '"score": %.4f}' % (s // per_image + 1, labels[s] + 1, xy[s, 0] + jitter[j, 0],
                                       xy[s, 1] + jitter[j, 1], max(1.0, wh[s, 0] + jitter[j, 2]),
                                       max(1.0, wh[s, 1] + jitter[j, 3]), rng.random()))
        f.write("]")
    (root / "erran.toml").write_text(textwrap.dedent("""
        task = "detection"
        data = "dev.json"
        predictions = "preds.json"
        [[require]]
        bucket = "all"
        recall = 0.1
    """))
    return root / "erran.toml"


def measure(config: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(config)], capture_output=True, text=True,
                          cwd=config.parent)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    for name, build, size in (("classification predictions file", classification_case, args.rows),
                              ("detection dev set + results", detection_case, args.objects)):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            config = build(Path(folder), size, args.files) if build is classification_case else build(Path(folder), size)
            made = time.perf_counter() - started
            m = measure(config)
        ok = "ok" if m["seconds"] < 60 and m["peak_kb"] < 2 * 1024 ** 2 else "OVER"
        print(f"{name}: {m['units']} units gated in {m['seconds']:.1f} s, peak RSS {m['peak_kb'] / 1024:.0f} MB "
              f"(targets < 60 s, < 2048 MB: {ok}); recall(all) {m['recall_all']:.3f}; data made in {made:.0f} s")


if __name__ == "__main__":
    main()
