"""pycocotools' COCOeval set up as the plugin's matching is defined: one IoU threshold, every
detection kept (no maxDets cap), one area range covering every box. The tests' reference."""

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def evaluate_at_one_iou(truth: COCO, results: list[dict], iou: float) -> COCOeval:
    """COCOeval after evaluate(): read per-box matches from `evalImgs`. `results` must be
    filtered by the score thresholds already, and not be empty (loadRes refuses that)."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        evaluator = COCOeval(truth, truth.loadRes(results), iouType="bbox")
        evaluator.params.iouThrs = np.array([iou])
        evaluator.params.maxDets = [1_000_000]
        evaluator.params.areaRng = [[0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
    return evaluator


def index(dataset: dict) -> COCO:
    """A COCO object over an in-memory instances dict, without pycocotools' printing."""
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = dataset
        truth.createIndex()
    return truth
