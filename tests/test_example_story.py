"""The example project's story, as a user runs it from the README (example_project/README.md):
v1 fails tube and severe and its coverage says why; v2 fixes tube and the analysis points at
the image edges; v3 passes everything against v2's committed baseline, and the compare step says
the crop worked there. Each run is a real pytest process in a copy of example_project/, so the
committed baseline is never touched; tube recall is also counted here by hand, from the model's
raw output, to check the plugin's figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from example_runs import EXAMPLES, Run, copy_example

@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    return copy_example(EXAMPLES, tmp_path_factory.mktemp("story") / "example_project", "surfaces")


@pytest.fixture(scope="module")
def runs(example) -> dict[str, Run]:
    """The walkthrough's three steps, in order, then v3 saved as the new baseline and run again."""
    out = {}
    out["v1"] = Run(example, "v1", "--erran-model=models/v1.onnx", "--erran-data=data/annotations_v1.json",
                    "--erran-analyze")
    out["v2"] = Run(example, "v2", "--erran-model=models/v2.onnx", "--erran-analyze")
    out["v3"] = Run(example, "v3", "--erran-model=models/v3.onnx", "--erran-analyze")
    out["save"] = Run(example, "save", "--erran-model=models/v3.onnx", "--erran-save-baseline", "--erran-analyze")
    out["again"] = Run(example, "again", "--erran-model=models/v3.onnx", "--erran-analyze")
    return out


def test_v1_fails_tube_and_severe_and_its_coverage_names_the_severe_tube_defects(runs):
    v1 = runs["v1"]
    assert v1.status == 1, v1.out
    assert {"recall(tube)>=0.90", "recall(severe)>=0.90"} <= set(v1.failed())
    assert "severe_tube" in v1.report["analysis"]["coverage"]["uncovered"]
    assert "severe_tube has 16 positives in test but 0 in train" in v1.out
    assert v1.recall("severe_tube") < 0.5


def test_v2_passes_tube_and_the_analysis_points_at_the_edges(runs):
    v2 = runs["v2"]
    assert v2.status == 1, v2.out
    assert "recall(tube)>=0.90" not in v2.failed() and "recall(auto:edge)>=0.95" in v2.failed()
    assert v2.report["analysis"]["coverage"]["uncovered"] == []
    first = v2.report["analysis"]["next"][0]
    assert first.split(" holds ")[0] in ("auto:edge", "tube & auto:edge") and "crop" in first
    assert f"try next: {first}" in v2.out


def test_tube_recall_rises_from_v1_to_v2_to_v3(runs):
    v1, v2, v3 = (runs[v].recall("tube") for v in ("v1", "v2", "v3"))
    assert v1 < v2 < v3


def test_v3_passes_everything_against_v2s_baseline_and_the_crop_worked_on_the_edge(runs):
    v3 = runs["v3"]
    assert v3.status == 0, v3.out
    assert v3.failed() == []
    compare = v3.report["analysis"]["compare"]
    assert any(line.startswith(("auto:edge", "tube & auto:edge")) and "the change worked there" in line
               and "no other bucket got significantly worse" in line for line in compare), compare
    # saved as the new baseline, the next run compares v3 with itself
    assert runs["save"].status == 0, runs["save"].out
    again = runs["again"]
    assert again.status == 0 and again.buckets["all"]["delta"] == 0.0, again.out


def test_the_committed_baseline_is_v2s_results(runs):
    committed = json.loads((EXAMPLES / ".erran" / "baseline.json").read_text())
    v2 = runs["v2"]
    assert committed["model"]["sha256"] == v2.report["model"]["sha256"]
    assert v2.buckets["all"]["delta"] == 0.0, "v2 against its own baseline changes nothing"


def hand_count(model: Path, annotations: Path, split: str, score: float = 0.3, iou: float = 0.5,
               nms: float = 0.5) -> dict[int, tuple[int, int]]:
    """Per category: (hits, positives), from the model's raw [N, 6, 1024] output -- threshold,
    per-class NMS, then COCO's greedy matching (highest score first, best IoU among the free
    ground truths of its class) -- written here with numpy, apart from the plugin."""
    data = json.loads(annotations.read_text())
    images = [im for im in data["images"] if im["split"] == split]
    truth: dict[int, list] = {}
    for a in data["annotations"]:
        truth.setdefault(a["image_id"], []).append(a)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    counts: dict[int, list[int]] = {}

    def overlap(a, b):  # a: [4] x0 y0 x1 y1, b: [k, 4]
        w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
        h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)

    for im in images:
        pixels = np.asarray(Image.open(annotations.parent / im["file_name"]).convert("RGB"), np.float32) / 255
        out = session.run(None, {"images": pixels.transpose(2, 0, 1)[None]})[0][0]
        cx, cy, w, h = out[:4]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        for c, category in enumerate((1, 2)):
            keep = np.flatnonzero(out[4 + c] >= score)
            keep = keep[np.argsort(-out[4 + c][keep], kind="stable")]
            kept = []
            for k in keep:  # NMS
                if not kept or overlap(boxes[k], boxes[kept]).max() <= nms:
                    kept.append(k)
            gts = [a for a in truth.get(im["id"], []) if a["category_id"] == category]
            gt_boxes = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in gts)]).reshape(-1, 4)
            free = np.ones(len(gts), bool)
            for k in kept:
                if not free.any():
                    break
                ious = np.where(free, overlap(boxes[k], gt_boxes), -1.0)
                best = int(np.argmax(ious))
                if ious[best] >= iou:
                    free[best] = False
            hits, positives = counts.setdefault(category, [0, 0])
            counts[category] = [hits + int((~free).sum()), positives + len(gts)]
    return {c: tuple(v) for c, v in counts.items()}


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_recall_per_class_equals_a_count_by_hand(runs, version):
    data = EXAMPLES / "data" / ("annotations_v1.json" if version == "v1" else "annotations.json")
    counted = hand_count(EXAMPLES / "models" / f"{version}.onnx", data, "test")
    for category, name in ((1, "tube"), (2, "fin")):
        bucket = runs[version].buckets[name]
        assert (bucket["hits"], bucket["positives"]) == counted[category]
