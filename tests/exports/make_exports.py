"""Make the committed real-export fixtures under tests/exports/ (see README.md there).

Each fixture folder holds a small ONNX model really exported by its exporter, a dev set of
synthetic images generated here (seeded numpy + Pillow), `expected.json` with the exporter's
OWN predictions on those images and per-unit expected hits, and `layout.json` with the ONNX
graph's input/output names, shapes, dtypes and metadata_props. The plugin's tests read these
without torch, ultralytics or scikit-learn installed.

Run it in a separate venv that has the exporters (never a dependency of pytest-erran):

    python3 -m venv /work/venvs/exporters
    /work/venvs/exporters/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics \
        scikit-learn skl2onnx onnx onnxruntime pycocotools
    /work/venvs/exporters/bin/python tests/exports/make_exports.py            # everything
    /work/venvs/exporters/bin/python tests/exports/make_exports.py sklearn    # some fixtures

Fixture names: ultralytics_detect (makes ultralytics_detect_raw and ultralytics_detect_nms),
ultralytics_classify, torchvision_detect, sklearn (sklearn_zipmap and sklearn_nozipmap),
torch_classify. Nothing is downloaded: no pretrained weights, Ultralytics runs with
YOLO_OFFLINE=1 and its config/runs/datasets dirs in a temporary folder (with a DejaVu TTF
copied there as the Arial.ttf it wants). Ultralytics (AGPL-3.0) is imported only here.

Versions used are written to tests/exports/VERSIONS.json on every run. The committed fixtures
were made with Python 3.11.7, torch 2.14.1, torchvision 0.29.1, ultralytics 8.4.190,
scikit-learn 1.9.1, skl2onnx 1.20.0, onnx 1.23.2, onnxruntime 1.32.0 (onnxscript 0.7.2,
onnxslim 0.1.98, numpy 2.4.6, Pillow 13.0.0, opencv-python 5.0.0.93, pycocotools 2.0.11).
Run time on 2 CPU cores: about 26 minutes, 15 of them for the Ultralytics detector (README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
SEED = 20261127
DET_CLASSES = ["circle", "square", "triangle"]
SHAPE_CLASSES = ["circle", "square", "triangle"]
SURFACE_CLASSES = ["ok", "scratch", "stain"]
DIGITS = [1, 3, 7]
THREADS = 2


# --------------------------------------------------------------------------- helpers

def font_path() -> Path:
    """A DejaVu Sans TTF: Debian's if installed, else the one matplotlib ships."""
    for p in ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]:
        if Path(p).exists():
            return Path(p)
    import matplotlib
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def rounded(x, nd=5):
    """Floats rounded for JSON (predictions are compared with tolerances anyway)."""
    if isinstance(x, (list, tuple)):
        return [rounded(v, nd) for v in x]
    if isinstance(x, np.ndarray):
        return rounded(x.tolist(), nd)
    if isinstance(x, (float, np.floating)):
        return round(float(x), nd)
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- ONNX layout

def onnx_type(t) -> dict:
    """An ONNX TypeProto as a dict: tensor elem type and dims, or sequence/map nesting."""
    import onnx
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        dims = []
        if t.tensor_type.HasField("shape"):
            for d in t.tensor_type.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
        else:
            dims = None
        return {"kind": "tensor", "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type).name,
                "shape": dims}
    if kind == "sequence_type":
        return {"kind": "sequence", "elem": onnx_type(t.sequence_type.elem_type)}
    if kind == "map_type":
        return {"kind": "map",
                "key": onnx.helper.tensor_dtype_to_np_dtype(t.map_type.key_type).name,
                "value": onnx_type(t.map_type.value_type)}
    return {"kind": kind}


def layout_of(model_path: Path) -> dict:
    import onnx
    import onnxruntime as ort
    m = onnx.load(str(model_path))
    init = {i.name for i in m.graph.initializer}
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return {
        "file": model_path.name,
        "bytes": model_path.stat().st_size,
        "ir_version": m.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import},
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "inputs": [{"name": i.name, **onnx_type(i.type)} for i in m.graph.input if i.name not in init],
        "outputs": [{"name": o.name, **onnx_type(o.type)} for o in m.graph.output],
        "onnxruntime_inputs": [{"name": i.name, "shape": i.shape, "type": i.type} for i in sess.get_inputs()],
        "onnxruntime_outputs": [{"name": o.name, "shape": o.shape, "type": o.type} for o in sess.get_outputs()],
        "metadata_props": {p.key: p.value for p in m.metadata_props},
        "op_types": sorted({n.op_type for n in m.graph.node}),
    }


def ort_session(model_path: Path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- synthetic images

def background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth random colour gradient with pixel noise, HxWx3 float."""
    c0, c1 = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    img += rng.normal(0, rng.uniform(2, 12), img.shape)
    return img


def contrasting_colour(rng: np.random.Generator, bg: np.ndarray) -> tuple:
    while True:
        col = rng.uniform(0, 255, 3)
        if np.abs(col - bg).sum() > rng.uniform(60, 200):
            return tuple(int(v) for v in col)


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, size: float, angle: float, fill):
    """Draw one shape; return its tight box [x1, y1, x2, y2] (continuous pixel coordinates)."""
    r = size / 2
    if kind == "circle":
        box = [cx - r, cy - r, cx + r, cy + r]
        draw.ellipse(box, fill=fill)
        return box
    if kind == "square":
        pts = [(cx + r * math.cos(angle + k * math.pi / 2) * math.sqrt(2) * 0.75,
                cy + r * math.sin(angle + k * math.pi / 2) * math.sqrt(2) * 0.75) for k in range(4)]
    elif kind == "triangle":
        pts = [(cx + r * math.cos(angle + k * 2 * math.pi / 3), cy + r * math.sin(angle + k * 2 * math.pi / 3))
               for k in range(3)]
    elif kind == "star":  # a distractor, never labelled
        pts = [(cx + (r if k % 2 == 0 else r * 0.45) * math.cos(angle + k * math.pi / 5),
                cy + (r if k % 2 == 0 else r * 0.45) * math.sin(angle + k * math.pi / 5)) for k in range(10)]
    else:
        raise ValueError(kind)
    draw.polygon(pts, fill=fill)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [min(xs), min(ys), max(xs), max(ys)]


def detection_scene(rng: np.random.Generator, w: int, h: int, n_objects: int, distractor_p: float = 0.3):
    """An image of coloured shapes on a gradient; objects [(class, x1, y1, x2, y2)] clipped to it."""
    arr = background(rng, w, h)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    objects, placed = [], []
    tries = 0
    while len(objects) < n_objects and tries < 200:
        tries += 1
        kind = DET_CLASSES[rng.integers(len(DET_CLASSES))]
        size = rng.uniform(0.12, 0.42) * min(w, h)
        cx, cy = rng.uniform(size * 0.3, w - size * 0.3), rng.uniform(size * 0.3, h - size * 0.3)
        if any(abs(cx - px) < (size + ps) * 0.5 and abs(cy - py) < (size + ps) * 0.5 for px, py, ps in placed):
            continue
        bg = arr[int(np.clip(cy, 0, h - 1)), int(np.clip(cx, 0, w - 1))]
        box = draw_shape(draw, kind, cx, cy, size, rng.uniform(0, 2 * math.pi), contrasting_colour(rng, bg))
        box = [max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3])]
        if box[2] - box[0] < 3 or box[3] - box[1] < 3:
            continue
        placed.append((cx, cy, size))
        objects.append((kind, *[round(v, 2) for v in box]))
    if rng.random() < distractor_p:  # an unlabelled star: bait for false positives
        size = rng.uniform(0.15, 0.35) * min(w, h)
        cx, cy = rng.uniform(size / 2, w - size / 2), rng.uniform(size / 2, h - size / 2)
        if not any(abs(cx - px) < (size + ps) * 0.5 and abs(cy - py) < (size + ps) * 0.5 for px, py, ps in placed):
            draw_shape(draw, "star", cx, cy, size, rng.uniform(0, 6.3), contrasting_colour(rng, arr[int(cy), int(cx)]))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    return img, objects


def shape_image(rng: np.random.Generator, kind: str, size: int) -> Image.Image:
    """One centred-ish shape for classification, with random scale, colour, blur and noise."""
    arr = background(rng, size, size)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    s = rng.uniform(0.4, 0.85) * size
    cx, cy = rng.uniform(s * 0.4, size - s * 0.4), rng.uniform(s * 0.4, size - s * 0.4)
    draw_shape(draw, kind, cx, cy, s, rng.uniform(0, 2 * math.pi),
               contrasting_colour(rng, arr[int(cy), int(cx)]))
    if rng.random() < 0.25:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    out = np.asarray(img).astype(np.float32) + rng.normal(0, rng.uniform(0, 12), (size, size, 3))
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def surface_image(rng: np.random.Generator, kind: str, size: int) -> Image.Image:
    """A brushed-metal-like gray texture, with a scratch (thin line) or a stain (soft blob)."""
    base = rng.uniform(70, 190)
    tex = rng.normal(0, 1, (size, size)).astype(np.float32)
    tex = np.cumsum(tex, axis=1) / math.sqrt(size) * rng.uniform(3, 10)  # streaks along x
    img = base + tex + rng.normal(0, rng.uniform(2, 10), (size, size))
    tint = rng.uniform(0.9, 1.1, 3)
    rgb = np.clip(img[..., None] * tint[None, None], 0, 255).astype(np.uint8)
    pil = Image.fromarray(rgb)
    strength = rng.uniform(0.25, 1.0)
    if kind == "scratch":
        layer = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(layer)
        x0, y0 = rng.uniform(0, size, 2)
        ang, length = rng.uniform(0, math.pi), rng.uniform(0.4, 0.9) * size
        d.line([(x0 - math.cos(ang) * length / 2, y0 - math.sin(ang) * length / 2),
                (x0 + math.cos(ang) * length / 2, y0 + math.sin(ang) * length / 2)],
               fill=255, width=int(rng.integers(1, 3)))
        a = np.asarray(layer, np.float32)[..., None] / 255 * strength
        col = 255.0 if rng.random() < 0.5 else 0.0
        rgb = (np.asarray(pil, np.float32) * (1 - a) + col * a)
        pil = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    elif kind == "stain":
        layer = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(layer)
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        rx, ry = rng.uniform(0.08, 0.25, 2) * size
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4)))
        a = np.asarray(layer, np.float32)[..., None] / 255 * strength * 0.8
        col = np.array([rng.uniform(20, 90), rng.uniform(20, 70), rng.uniform(0, 40)])
        rgb = np.asarray(pil, np.float32) * (1 - a) + col[None, None] * a
        pil = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return pil


def digit_image(rng: np.random.Generator, digit: int, size: int, font_file: Path) -> Image.Image:
    """A grayscale digit glyph, shifted, scaled, rotated and noised, size x size."""
    big = size * 4
    canvas = Image.new("L", (big, big), 0)
    font = ImageFont.truetype(str(font_file), int(big * rng.uniform(0.7, 0.95)))
    d = ImageDraw.Draw(canvas)
    d.text((big / 2 + rng.uniform(-0.07, 0.07) * big, big / 2 + rng.uniform(-0.06, 0.06) * big), str(digit),
           fill=255, font=font, anchor="mm", stroke_width=int(rng.integers(0, 5)), stroke_fill=255)
    canvas = canvas.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR)
    small = np.asarray(canvas.resize((size, size), Image.BILINEAR), np.float32) / 255
    bg, fg = rng.uniform(0, 110), rng.uniform(140, 255)
    if rng.random() < 0.2:
        bg, fg = 255 - bg, 255 - fg  # dark digit on light paper
    img = bg + (fg - bg) * small + rng.normal(0, rng.uniform(5, 40), small.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")


# --------------------------------------------------------------------------- detection dev sets and matching

def write_detection_devset(folder: Path, scenes: list, classes: list[str]) -> dict:
    """Save scenes [(name, PIL image, objects)] as PNGs and a COCO instances JSON; return the COCO dict."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)]}
    ann_id = 0
    for image_id, (name, img, objects) in enumerate(scenes, start=1):
        img.save(folder / "images" / name)
        coco["images"].append({"id": image_id, "file_name": f"images/{name}", "width": img.width,
                               "height": img.height})
        for kind, x1, y1, x2, y2 in objects:
            ann_id += 1
            coco["annotations"].append({
                "id": ann_id, "image_id": image_id, "category_id": classes.index(kind) + 1,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0})
    write_json(folder / "dev.json", coco)
    return coco


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x1y1x2y2 boxes, continuous coordinates (no +1), [len(a), len(b)]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def greedy_match(coco: dict, predictions: dict, score_threshold: float, iou_threshold: float = 0.5) -> dict:
    """COCOeval's matching at one IoU, written out: per image and class, predictions with
    score >= score_threshold in descending score order (stable) each take the still unmatched
    ground truth of that class with the highest IoU >= iou_threshold (on equal IoU the later
    ground truth, as COCOeval). Returns {annotation id: {"hit", "score", "iou"}} and per-image
    true/false positive counts."""
    by_image = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    units, per_image = {}, {}
    for im in coco["images"]:
        dets = [d for d in predictions[im["file_name"]] if d["score"] >= score_threshold]
        gts = by_image.get(im["id"], [])
        tp = fp = 0
        for cid, cname in names.items():
            g = [a for a in gts if a["category_id"] == cid]
            gb = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                           for a in g]).reshape(-1, 4)
            d = [x for x in dets if x["class"] == cname]
            order = sorted(range(len(d)), key=lambda i: -d[i]["score"])
            db = np.array([d[i]["box"] for i in order]).reshape(-1, 4)
            ious = iou_matrix(db, gb)
            taken = [False] * len(g)
            for di, i in enumerate(order):
                best, m = min(iou_threshold, 1 - 1e-10), -1
                for gi in range(len(g)):
                    if taken[gi] or ious[di, gi] < best:
                        continue
                    best, m = ious[di, gi], gi
                if m >= 0:
                    taken[m] = True
                    units[g[m]["id"]] = {"hit": True, "score": rounded(d[i]["score"]), "iou": rounded(best)}
                    tp += 1
                else:
                    fp += 1
            for gi, a in enumerate(g):
                if not taken[gi]:
                    units[a["id"]] = {"hit": False, "score": None, "iou": None}
        per_image[im["file_name"]] = {"tp": tp, "fp": fp}
    return {"units": {str(k): units[k] for k in sorted(units)}, "per_image": per_image}


def pycocotools_hits(coco: dict, predictions: dict, score_threshold: float, iou_threshold: float = 0.5) -> dict:
    """{annotation id: hit} from pycocotools' COCOeval (bbox, one IoU, area all, maxDets 10000)."""
    import contextlib
    import io
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(coco))
        gt.createIndex()
        cat = {c["name"]: c["id"] for c in coco["categories"]}
        img = {i["file_name"]: i["id"] for i in coco["images"]}
        res = [{"image_id": img[f], "category_id": cat[d["class"]],
                "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]],
                "score": d["score"]}
               for f, ds in predictions.items() for d in ds if d["score"] >= score_threshold]
        hits = {a["id"]: False for a in coco["annotations"]}
        if not res:
            return hits
        dt = gt.loadRes(res)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([iou_threshold])
        ev.params.maxDets = [10000]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
    for e in ev.evalImgs:
        if e is None:
            continue
        for gid, m in zip(e["gtIds"], e["gtMatches"][0]):
            if m > 0:
                hits[gid] = True
    return hits


def detection_hits(coco: dict, predictions: dict, thresholds=(0.25, 0.5)) -> dict:
    out = {}
    for t in thresholds:
        mine = greedy_match(coco, predictions, t)
        theirs = pycocotools_hits(coco, predictions, t)
        disagree = [k for k, v in mine["units"].items() if v["hit"] != theirs[int(k)]]
        assert not disagree, f"greedy matcher and pycocotools disagree on annotations {disagree}"
        n_hit = sum(v["hit"] for v in mine["units"].values())
        out[str(t)] = {"iou_threshold": 0.5, "score_threshold": t, "hits": n_hit, "positives": len(mine["units"]),
                       "true_positives": sum(v["tp"] for v in mine["per_image"].values()),
                       "false_positives": sum(v["fp"] for v in mine["per_image"].values()),
                       "checked_against_pycocotools": True, **mine}
    return out


def compare_detections(ref: dict, other: dict, min_score: float) -> dict:
    """Max differences between two prediction sets {file: [det]} (detections with score >=
    min_score in either, paired by class and best IoU)."""
    max_box = max_score = 0.0
    count_mismatch = []
    for f in ref:
        a = [d for d in ref[f] if d["score"] >= min_score]
        b = [d for d in other[f] if d["score"] >= min_score]
        if len(a) != len(b):
            count_mismatch.append({"image": f, "exporter": len(a), "onnxruntime": len(b)})
        used = set()
        for d in sorted(a, key=lambda d: -d["score"]):
            cand = [(j, e) for j, e in enumerate(b) if e["class"] == d["class"] and j not in used]
            if not cand:
                continue
            ious = [iou_matrix(np.array([d["box"]]), np.array([e["box"]]))[0, 0] for _, e in cand]
            j, e = cand[int(np.argmax(ious))]
            if max(ious) < 0.5:
                continue
            used.add(j)
            max_box = max(max_box, float(np.abs(np.array(d["box"]) - np.array(e["box"])).max()))
            max_score = max(max_score, abs(d["score"] - e["score"]))
    return {"min_score": min_score, "max_box_abs_diff_px": rounded(max_box, 6),
            "max_score_abs_diff": rounded(max_score, 7), "images_with_other_count": count_mismatch}


def hit_flips(ref_hits: dict, other_hits: dict) -> dict:
    out = {}
    for t, r in ref_hits.items():
        o = other_hits[t]["units"]
        out[t] = sorted(int(k) for k, v in r["units"].items() if v["hit"] != o[k]["hit"])
    return out


# --------------------------------------------------------------------------- plain-numpy reference decoding

def letterbox(rgb: np.ndarray, size: int, resizer: str) -> tuple[np.ndarray, tuple]:
    """Ultralytics' LetterBox(auto=False, center=True) arithmetic, pad 114; the resize by cv2
    INTER_LINEAR (what ultralytics uses) or Pillow BILINEAR (antialiased when shrinking).
    Returns the [1, 3, size, size] float32 input and (gain_x, gain_y, pad_x, pad_y)."""
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    if (nw, nh) != (w, h):
        if resizer == "cv2":
            import cv2
            rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        else:
            rgb = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    dw, dh = (size - nw) / 2, (size - nh) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[top:top + nh, left:left + nw] = rgb
    x = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255
    return x, (nw / w, nh / h, left, top)


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS: highest score first, drop boxes with IoU > iou with a kept one."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if order:
            ious = iou_matrix(boxes[[i]], boxes[order])[0]
            order = [j for j, v in zip(order, ious) if v <= iou]
    return keep


def unletterbox(xyxy: np.ndarray, geometry: tuple, w: int, h: int) -> np.ndarray:
    gx, gy, px, py = geometry
    out = xyxy.astype(np.float64).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - px) / gx
    out[:, [1, 3]] = (out[:, [1, 3]] - py) / gy
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def decode_yolo_raw(out: np.ndarray, conf: float, iou: float, classes: list[str]) -> list[tuple]:
    """[1, 4+C, A] (cx, cy, w, h, class scores) -> [(xyxy, score, class)] after class-aware NMS, <= 300."""
    p = out[0].T
    scores_all = p[:, 4:]
    cls = scores_all.argmax(1)
    score = scores_all.max(1)
    keep = score > conf
    p, cls, score = p[keep], cls[keep], score[keep]
    xyxy = np.stack([p[:, 0] - p[:, 2] / 2, p[:, 1] - p[:, 3] / 2, p[:, 0] + p[:, 2] / 2, p[:, 1] + p[:, 3] / 2], 1)
    kept = nms_numpy(xyxy + cls[:, None] * 7680.0, score, iou)[:300]
    return [(xyxy[i], float(score[i]), classes[int(cls[i])]) for i in kept]


def decode_yolo_nms(out: np.ndarray, conf: float, classes: list[str]) -> list[tuple]:
    """[1, 300, 6] (x1, y1, x2, y2, score, class) -> [(xyxy, score, class)] with score > conf."""
    rows = out[0]
    rows = rows[rows[:, 4] > conf]
    return [(r[:4], float(r[4]), classes[int(r[5])]) for r in rows]


def as_dets(items: list[tuple]) -> list[dict]:
    return [{"box": rounded(list(b), 3), "score": rounded(s, 5), "class": c} for b, s, c in items]


# --------------------------------------------------------------------------- Ultralytics

def ultralytics_setup(tmp: Path):
    """Offline Ultralytics with every dir of its own in tmp; returns the ultralytics module."""
    cfg = tmp / "ultralytics_config"
    cfg.mkdir(parents=True, exist_ok=True)
    shutil.copy(font_path(), cfg / "Arial.ttf")
    shutil.copy(font_path(), cfg / "Arial.Unicode.ttf")
    os.environ.update({"YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(cfg), "YOLO_AUTOINSTALL": "false",
                       "YOLO_VERBOSE": "false"})
    import ultralytics
    from ultralytics import settings
    settings.update({"runs_dir": str(tmp / "runs"), "datasets_dir": str(tmp / "datasets"),
                     "weights_dir": str(tmp / "weights"), "sync": False})
    return ultralytics


def tiny_yaml(tmp: Path, base: str, name: str, nc: int, depth: float, width: float) -> Path:
    """Ultralytics' own model yaml (loaded from the installed package, not copied into this
    repository) with a single scale of our own: the width-reduced model."""
    import yaml
    from ultralytics.nn.tasks import yaml_model_load
    d = yaml_model_load(base)
    d.pop("scale", None)
    d.pop("yaml_file", None)
    d["nc"] = nc
    d["scales"] = {"t": [depth, width, 1024]}
    path = tmp / name
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


ULTRA_IMGSZ = 160
ULTRA_WIDTH = 0.0625


def detection_scenes(rng: np.random.Generator, n: int, prefix: str, dev: bool, long_side: int | None = None):
    scenes = []
    for i in range(n):
        if dev and i < 3:
            n_obj = 0  # images without objects: one plain, others with a possible distractor
        else:
            n_obj = int(rng.integers(1, 5))
        if long_side is not None and (not dev or i % 3 != 2):
            ls, ss = long_side, int(rng.integers(long_side // 2, long_side + 1))
        else:
            ls, ss = int(rng.integers(90, 330)), 0
            ss = int(rng.integers(ls // 2, ls + 1))
        w, h = (ls, ss) if rng.random() < 0.6 else (ss, ls)
        img, objects = detection_scene(rng, w, h, n_obj, distractor_p=0.0 if (dev and i == 0) else 0.3)
        scenes.append((f"{prefix}_{i:03d}.png", img, objects))
    return scenes


def make_ultralytics_detect(tmp: Path, report: dict) -> None:
    ultralytics_setup(tmp)
    from ultralytics import YOLO
    rng = np.random.default_rng(SEED + 1)
    root = tmp / "datasets" / "shapes_det"
    for split, n in (("train", 400), ("val", 40)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for name, img, objects in detection_scenes(rng, n, split, dev=False):
            img.save(root / "images" / split / name)
            lines = [f"{DET_CLASSES.index(k)} {(x1 + x2) / 2 / img.width:.6f} {(y1 + y2) / 2 / img.height:.6f} "
                     f"{(x2 - x1) / img.width:.6f} {(y2 - y1) / img.height:.6f}" for k, x1, y1, x2, y2 in objects]
            (root / "labels" / split / name.replace(".png", ".txt")).write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n"
                    + "".join(f"  {i}: {c}\n" for i, c in enumerate(DET_CLASSES)))
    cfg = tiny_yaml(tmp, "yolov8n.yaml", "tiny-yolov8-det.yaml", len(DET_CLASSES), 0.33, ULTRA_WIDTH)
    model = YOLO(str(cfg), task="detect")
    t = time.time()
    model.train(data=str(data), epochs=ULTRA_EPOCHS_DET, imgsz=ULTRA_IMGSZ, batch=16, workers=0, device="cpu",
                seed=0, deterministic=True, amp=False, plots=False, pretrained=False, project=str(tmp / "runs"),
                name="det", exist_ok=True, verbose=False, val=True, patience=1000)
    train_s = time.time() - t
    best = tmp / "runs" / "det" / "weights" / "best.pt"

    dev_rng = np.random.default_rng(SEED + 2)
    scenes = detection_scenes(dev_rng, 40, "dev", dev=True, long_side=ULTRA_IMGSZ)
    for variant, nms in (("ultralytics_detect_raw", False), ("ultralytics_detect_nms", True)):
        folder = fresh_dir(HERE / variant)
        coco = write_detection_devset(folder, scenes, DET_CLASSES)
        exp_model = YOLO(str(best))
        onnx_file = Path(exp_model.export(format="onnx", imgsz=ULTRA_IMGSZ, nms=nms, device="cpu"))
        shutil.copy(onnx_file, folder / "model.onnx")
        layout = layout_of(folder / "model.onnx")
        write_json(folder / "layout.json", layout)
        files = [im["file_name"] for im in coco["images"]]
        conf, iou = 0.1, 0.7
        onnx_yolo = YOLO(str(folder / "model.onnx"), task="detect")
        own = {}
        for f in files:
            r = onnx_yolo.predict(str(folder / f), imgsz=ULTRA_IMGSZ, conf=conf, iou=iou, max_det=300,
                                  device="cpu", verbose=False)[0]
            own[f] = as_dets([(b, s, r.names[int(c)]) for b, s, c in
                              zip(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy())])
        pt_yolo = YOLO(str(best))
        pt = {}
        for f in files:
            r = pt_yolo.predict(str(folder / f), imgsz=ULTRA_IMGSZ, conf=conf, iou=iou, max_det=300,
                                device="cpu", verbose=False)[0]
            pt[f] = as_dets([(b, s, r.names[int(c)]) for b, s, c in
                             zip(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy())])
        # plain onnxruntime, our own letterbox (cv2 as ultralytics, and Pillow) and numpy decoding
        sess = ort_session(folder / "model.onnx")
        ort_preds = {"cv2": {}, "pillow": {}}
        for f in files:
            rgb = load_rgb(folder / f)
            for resizer in ort_preds:
                x, geo = letterbox(rgb, ULTRA_IMGSZ, resizer)
                out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
                dets = decode_yolo_nms(out, conf, DET_CLASSES) if nms else decode_yolo_raw(out, conf, iou, DET_CLASSES)
                ort_preds[resizer][f] = as_dets([(unletterbox(np.array([b]), geo, rgb.shape[1], rgb.shape[0])[0], s, c)
                                                 for b, s, c in dets])
        hits = detection_hits(coco, own)
        resized = {f: max(im["width"], im["height"]) != ULTRA_IMGSZ for f, im in
                   zip(files, coco["images"])}
        checks = {
            "onnxruntime_cv2_letterbox_vs_exporter": compare_detections(own, ort_preds["cv2"], 0.25),
            "onnxruntime_cv2_letterbox_hit_flips": hit_flips(hits, detection_hits(coco, ort_preds["cv2"])),
            "onnxruntime_pillow_letterbox_vs_exporter": compare_detections(own, ort_preds["pillow"], 0.25),
            "onnxruntime_pillow_letterbox_vs_exporter_unresized_images_only": compare_detections(
                {f: v for f, v in own.items() if not resized[f]},
                {f: v for f, v in ort_preds["pillow"].items() if not resized[f]}, 0.25),
            "onnxruntime_pillow_letterbox_hit_flips": hit_flips(hits, detection_hits(coco, ort_preds["pillow"])),
            "pt_model_vs_onnx_through_ultralytics": compare_detections(own, pt, 0.25),
            "pt_model_hit_flips": hit_flips(hits, detection_hits(coco, pt)),
        }
        names_meta = layout["metadata_props"].get("names")
        expected = {
            "fixture": variant,
            "task": "detection",
            "model": "model.onnx",
            "dev_set": "dev.json",
            "classes": DET_CLASSES,
            "predicted_by": "ultralytics YOLO('model.onnx', task='detect').predict(image_path, ...) -- the exported "
                            "ONNX through ultralytics' own loader, pre- and post-processing",
            "settings": {"imgsz": ULTRA_IMGSZ, "conf": conf, "iou": iou, "max_det": 300,
                         "letterbox": "square, centred, pad value 114, cv2 INTER_LINEAR resize, scale-up allowed; "
                                      "images whose longer side is 160 are only padded",
                         "input": "RGB, float32 /255, [1, 3, 160, 160]",
                         "boxes": "x1 y1 x2 y2 in original image pixels, clipped to the image",
                         "nms": ("in the graph (export nms=True, export conf 0.25, iou 0.7, class-aware, "
                                 "max_det 300); predict only drops rows with score <= conf") if nms else
                                "ultralytics non_max_suppression, class-aware, iou 0.7, conf > 0.1, max_det 300"},
            "names_metadata": names_meta,
            "resized_images": sorted(f for f, v in resized.items() if v),
            "predictions": own,
            "hits": hits,
            "checks": checks,
        }
        write_json(folder / "expected.json", expected)
        report[variant] = {"train_seconds": round(train_s, 1), "bytes": dir_size(folder),
                           "hits@0.25": f"{hits['0.25']['hits']}/{hits['0.25']['positives']}",
                           "hits@0.5": f"{hits['0.5']['hits']}/{hits['0.5']['positives']}", "checks": checks}


ULTRA_EPOCHS_DET = int(os.environ.get("ERRAN_EPOCHS_DET", 80))


# --------------------------------------------------------------------------- classification helpers

def write_manifest(folder: Path, rows: list[tuple[str, str]]) -> None:
    with open(folder / "dev.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["image", "label"])
        w.writerows(rows)


def classification_summary(expected_rows: dict, classes: list) -> dict:
    hits = {f: r["predicted"] == r["label"] for f, r in expected_rows.items()}
    per_class = {}
    for f, r in expected_rows.items():
        c = per_class.setdefault(r["label"], {"positives": 0, "hits": 0})
        c["positives"] += 1
        c["hits"] += hits[f]
    return {"hits": sum(hits.values()), "units": len(hits), "per_class": per_class, "units_hit": hits}


# --------------------------------------------------------------------------- Ultralytics classification

ULTRA_CLS_IMGSZ = 64


def make_ultralytics_classify(tmp: Path, report: dict) -> None:
    ultralytics_setup(tmp)
    from ultralytics import YOLO
    rng = np.random.default_rng(SEED + 3)
    root = tmp / "datasets" / "shapes_cls"
    for split, n in (("train", 400), ("val", 20)):
        for c in SHAPE_CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                shape_image(rng, c, ULTRA_CLS_IMGSZ).save(root / split / c / f"{c}_{i:03d}.png")
    cfg = tiny_yaml(tmp, "yolov8n-cls.yaml", "tiny-yolov8-cls.yaml", len(SHAPE_CLASSES), 0.33, ULTRA_WIDTH)
    model = YOLO(str(cfg), task="classify")
    t = time.time()
    model.train(data=str(root), epochs=ULTRA_EPOCHS_CLS, imgsz=ULTRA_CLS_IMGSZ, batch=32, workers=0, device="cpu",
                seed=0, deterministic=True, amp=False, plots=False, pretrained=False, project=str(tmp / "runs"),
                name="cls", exist_ok=True, verbose=False, patience=1000, optimizer="AdamW", lr0=0.002,
                erasing=0.0, auto_augment=None)
    train_s = time.time() - t
    best = tmp / "runs" / "cls" / "weights" / "best.pt"

    folder = fresh_dir(HERE / "ultralytics_classify")
    (folder / "images").mkdir()
    dev_rng = np.random.default_rng(SEED + 4)
    rows = []
    for i in range(42):
        c = SHAPE_CLASSES[i % 3]
        size = ULTRA_CLS_IMGSZ if i < 33 else 96  # the last 9 are resized (shorter side to 64) by predict
        name = f"images/dev_{i:03d}.png"
        shape_image(dev_rng, c, size).save(folder / name)
        rows.append((name, c))
    write_manifest(folder, rows)
    onnx_file = Path(YOLO(str(best)).export(format="onnx", imgsz=ULTRA_CLS_IMGSZ, device="cpu"))
    shutil.copy(onnx_file, folder / "model.onnx")
    layout = layout_of(folder / "model.onnx")
    write_json(folder / "layout.json", layout)
    onnx_yolo = YOLO(str(folder / "model.onnx"), task="classify")
    pt_yolo = YOLO(str(best))
    sess = ort_session(folder / "model.onnx")
    own, max_pt, max_ort = {}, 0.0, 0.0
    ort_flips, pt_flips = [], []
    for name, label in rows:
        r = onnx_yolo.predict(str(folder / name), imgsz=ULTRA_CLS_IMGSZ, device="cpu", verbose=False)[0]
        probs = r.probs.data.numpy().astype(float)
        p = pt_yolo.predict(str(folder / name), imgsz=ULTRA_CLS_IMGSZ, device="cpu", verbose=False)[0]
        pt_probs = p.probs.data.numpy().astype(float)
        # plain onnxruntime: shorter side to 64 (Pillow bilinear, as torchvision's Resize on a PIL image), centre crop
        img = Image.open(folder / name).convert("RGB")
        if img.size != (ULTRA_CLS_IMGSZ, ULTRA_CLS_IMGSZ):
            s = ULTRA_CLS_IMGSZ / min(img.size)
            img = img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR)
            left, top = (img.width - ULTRA_CLS_IMGSZ) // 2, (img.height - ULTRA_CLS_IMGSZ) // 2
            img = img.crop((left, top, left + ULTRA_CLS_IMGSZ, top + ULTRA_CLS_IMGSZ))
        x = np.asarray(img, np.float32).transpose(2, 0, 1)[None] / 255
        o = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
        max_ort = max(max_ort, float(np.abs(o - probs).max()))
        max_pt = max(max_pt, float(np.abs(pt_probs - probs).max()))
        pred = r.names[int(probs.argmax())]
        if SHAPE_CLASSES[int(o.argmax())] != pred:
            ort_flips.append(name)
        if p.names[int(pt_probs.argmax())] != pred:
            pt_flips.append(name)
        own[name] = {"label": label, "predicted": pred, "scores": rounded(probs, 6)}
    summary = classification_summary(own, SHAPE_CLASSES)
    checks = {"onnxruntime_vs_exporter_max_abs_prob_diff": rounded(max_ort, 8),
              "onnxruntime_prediction_flips": ort_flips,
              "pt_model_vs_onnx_max_abs_prob_diff": rounded(max_pt, 8), "pt_model_prediction_flips": pt_flips}
    write_json(folder / "expected.json", {
        "fixture": "ultralytics_classify", "task": "classification", "model": "model.onnx", "dev_set": "dev.csv",
        "classes": SHAPE_CLASSES,
        "predicted_by": "ultralytics YOLO('model.onnx', task='classify').predict(image_path, imgsz=64)",
        "settings": {"imgsz": ULTRA_CLS_IMGSZ,
                     "preprocess": "RGB; shorter side resized to 64 (torchvision Resize on a PIL image = Pillow "
                                   "bilinear), centre crop 64x64, /255, no mean/std; 64x64 images pass unchanged",
                     "output": "softmax probabilities [1, 3] in class index order (names metadata)"},
        "names_metadata": layout["metadata_props"].get("names"),
        "resized_images": [n for n, _ in rows[33:]],
        "predictions": own, "hits": summary, "checks": checks})
    report["ultralytics_classify"] = {"train_seconds": round(train_s, 1), "bytes": dir_size(folder),
                                      "hits": f"{summary['hits']}/{summary['units']}", "checks": checks}


ULTRA_EPOCHS_CLS = int(os.environ.get("ERRAN_EPOCHS_CLS", 20))


# --------------------------------------------------------------------------- scikit-learn + skl2onnx

SK_SIZE = 16


def make_sklearn(tmp: Path, report: dict) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(SEED + 5)
    ff = font_path()
    y_train = rng.choice(DIGITS, 600)
    X_train = np.stack([np.asarray(digit_image(rng, d, SK_SIZE, ff), np.float32).reshape(-1) / 255 for d in y_train])
    clf = LogisticRegression(C=0.5, max_iter=5000)
    clf.fit(X_train, y_train)
    dev_rng = np.random.default_rng(SEED + 6)
    dev_labels = [DIGITS[i % 3] for i in range(45)]
    dev_images = [digit_image(dev_rng, d, SK_SIZE, ff) for d in dev_labels]
    X_dev = np.stack([np.asarray(im, np.float32).reshape(-1) / 255 for im in dev_images])
    proba = clf.predict_proba(X_dev)
    pred = clf.predict(X_dev)
    for variant, zipmap in (("sklearn_zipmap", True), ("sklearn_nozipmap", False)):
        folder = fresh_dir(HERE / variant)
        (folder / "images").mkdir()
        rows = []
        for i, (im, d) in enumerate(zip(dev_images, dev_labels)):
            name = f"images/dev_{i:03d}.png"
            im.save(folder / name)
            rows.append((name, str(d)))
        write_manifest(folder, rows)
        onx = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, SK_SIZE * SK_SIZE]))],
                              options=None if zipmap else {id(clf): {"zipmap": False}},
                              target_opset={"": 17, "ai.onnx.ml": 3})
        (folder / "model.onnx").write_bytes(onx.SerializeToString())
        write_json(folder / "layout.json", layout_of(folder / "model.onnx"))
        # plain onnxruntime on pixels read back from the committed PNGs, all images in one batch
        X_png = np.stack([np.asarray(Image.open(folder / n).convert("L"), np.float32).reshape(-1) / 255
                          for n, _ in rows])
        assert np.array_equal(X_png, X_dev)
        sess = ort_session(folder / "model.onnx")
        labels_ort, probs_ort = sess.run(None, {"input": X_png})
        if zipmap:
            probs_ort = np.array([[m[c] for c in clf.classes_] for m in probs_ort])
        own = {n: {"label": lab, "predicted": str(int(p)), "scores": rounded(pr, 7)}
               for (n, lab), p, pr in zip(rows, pred, proba)}
        summary = classification_summary(own, [str(c) for c in clf.classes_])
        checks = {"onnxruntime_label_mismatches": [n for (n, _), a, b in zip(rows, pred, labels_ort) if a != b],
                  "onnxruntime_vs_predict_proba_max_abs_diff": rounded(float(np.abs(probs_ort - proba).max()), 9),
                  "onnxruntime_argmax_equals_label_output": bool(
                      (clf.classes_[np.asarray(probs_ort).argmax(1)] == labels_ort).all())}
        write_json(folder / "expected.json", {
            "fixture": variant, "task": "classification", "model": "model.onnx", "dev_set": "dev.csv",
            "classes": [str(c) for c in clf.classes_], "class_values": [int(c) for c in clf.classes_],
            "predicted_by": "scikit-learn LogisticRegression.predict / predict_proba (float32 pixels, as fitted)",
            "estimator": repr(clf),
            "settings": {"preprocess": {"size": [SK_SIZE, SK_SIZE], "channels": 1, "mode": "grayscale (PNG mode L)",
                                        "flatten": True, "order": "row-major: pixel (row r, column c) is feature "
                                        f"r*{SK_SIZE}+c", "scale": 1 / 255, "mean_std": None, "resize": None},
                         "zipmap": zipmap,
                         "outputs": "output_label [N] int64 class values; output_probability " +
                                    ("ZipMap: a sequence of {class value: probability} maps" if zipmap else
                                     "[N, 3] float32 in classes_ order")},
            "predictions": own, "hits": summary, "checks": checks})
        report[variant] = {"bytes": dir_size(folder), "hits": f"{summary['hits']}/{summary['units']}",
                           "checks": checks}


# --------------------------------------------------------------------------- torchvision detection

TV_MIN_SIZE, TV_MAX_SIZE = 128, 256
TV_RPN_SCORE_THRESH = 0.0  # training; set from the blank frame's objectness before export


def tiny_faster_rcnn():
    from torch import nn
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.rpn import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    class Backbone(nn.Sequential):
        def __init__(self):
            def block(i, o, s):
                return [nn.Conv2d(i, o, 3, s, 1), nn.ReLU(inplace=True)]
            super().__init__(*block(3, 16, 2), *block(16, 16, 1), *block(16, 32, 2), *block(32, 32, 1),
                             *block(32, 32, 2), *block(32, 32, 1))
            self.out_channels = 32

    anchors = AnchorGenerator(sizes=((16, 32, 64, 128),), aspect_ratios=((0.5, 1.0, 2.0),))
    return FasterRCNN(
        Backbone(), num_classes=None, rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(32 * 7 * 7, 128), box_predictor=FastRCNNPredictor(128, len(DET_CLASSES) + 1),
        min_size=TV_MIN_SIZE, max_size=TV_MAX_SIZE, rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        box_batch_size_per_image=128,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, rpn_score_thresh=TV_RPN_SCORE_THRESH,
        box_score_thresh=0.05, box_detections_per_img=100)


def to_tensor(img: Image.Image):
    import torch
    return torch.from_numpy(np.asarray(img.convert("RGB"), np.float32).transpose(2, 0, 1).copy() / 255)


TV_EPOCHS = int(os.environ.get("ERRAN_EPOCHS_TV", 8))


def make_torchvision_detect(tmp: Path, report: dict) -> None:
    import torch
    import torchvision
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED + 7)
    train = detection_scenes(rng, 300, "train", dev=False)
    model = tiny_faster_rcnn()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(TV_EPOCHS * 0.7)], 0.1)
    data = [(to_tensor(img), {"boxes": torch.tensor([o[1:] for o in objs], dtype=torch.float32).reshape(-1, 4),
                              "labels": torch.tensor([DET_CLASSES.index(o[0]) + 1 for o in objs],
                                                     dtype=torch.int64)})
            for _, img, objs in train]
    t = time.time()
    order_rng = np.random.default_rng(SEED + 8)
    model.train()
    for epoch in range(TV_EPOCHS):
        order = order_rng.permutation(len(data))
        total = 0.0
        for b in range(0, len(order), 4):
            batch = [data[i] for i in order[b:b + 4]]
            losses = model([x for x, _ in batch], [y for _, y in batch])
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            total += float(loss.detach())
        sched.step()
        print(f"   torchvision epoch {epoch}: loss {total / (len(order) / 4):.3f}", flush=True)
    train_s = time.time() - t
    model.eval()
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), tmp / "faster_rcnn_state_dict.pt")  # kept with --keep-tmp

    folder = fresh_dir(HERE / "torchvision_detect")
    dev_rng = np.random.default_rng(SEED + 9)
    scenes = detection_scenes(dev_rng, 40, "dev", dev=True)
    # one more image: a uniform gray frame (no objects), on which the region proposals come out empty
    scenes.append(("dev_blank.png", Image.new("RGB", (150, 120), (128, 128, 128)), []))
    coco = write_detection_devset(folder, scenes, DET_CLASSES)
    files = [im["file_name"] for im in coco["images"]]
    # rpn.score_thresh (a FasterRCNN option, default 0.0): set just above the blank frame's highest
    # objectness, so that frame gets no region proposals while images with shapes keep theirs
    objectness = {}
    for f in files:
        with torch.no_grad():
            images, _ = model.transform([to_tensor(Image.open(folder / f))])
            logits, _ = model.rpn.head([model.backbone(images.tensors)])
            objectness[f] = float(torch.sigmoid(logits[0]).max())
    rpn_score_thresh = round(objectness["images/dev_blank.png"] + 0.01, 4)
    model.rpn.score_thresh = rpn_score_thresh
    proposals = {}
    for f in files:
        with torch.no_grad():
            images, _ = model.transform([to_tensor(Image.open(folder / f))])
            props, _ = model.rpn(images, {"0": model.backbone(images.tensors)})
            proposals[f] = int(props[0].shape[0])
    # trace on the image with the most proposals (tracing on one without any bakes that path in)
    example_file = max(files, key=lambda f: proposals[f])
    example = to_tensor(Image.open(folder / example_file))
    exporter = "torch.onnx.export(dynamo=False) (TorchScript tracing), opset 17"
    try:
        with torch.no_grad():
            torch.onnx.export(model, ([example],), str(folder / "model.onnx"), dynamo=True,
                              input_names=["image"], output_names=["boxes", "labels", "scores"],
                              dynamic_shapes=([{1: torch.export.Dim("height"), 2: torch.export.Dim("width")}],))
        exporter = "torch.onnx.export(dynamo=True)"
    except Exception as e:  # it fails on data-dependent shapes in batched_nms (see README)
        dynamo_error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
        print("   dynamo export failed:", dynamo_error, flush=True)
        for p in folder.glob("model.onnx*"):
            p.unlink()
        with torch.no_grad():
            torch.onnx.export(model, ([example],), str(folder / "model.onnx"), dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["boxes", "labels", "scores"],
                              dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "detections"},
                                            "labels": {0: "detections"}, "scores": {0: "detections"}})
    layout = layout_of(folder / "model.onnx")
    write_json(folder / "layout.json", layout)
    own, ort_preds, failures = {}, {}, {}
    sess = ort_session(folder / "model.onnx")
    for f in files:
        x = to_tensor(Image.open(folder / f))
        with torch.no_grad():
            out = model([x])[0]
        own[f] = as_dets([(b, s, DET_CLASSES[int(l) - 1]) for b, s, l in
                          zip(out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy())])
        try:
            boxes, labels, scores = sess.run(None, {"image": x.numpy()})
            ort_preds[f] = as_dets([(b, s, DET_CLASSES[int(l) - 1]) for b, s, l in zip(boxes, scores, labels)])
        except Exception as e:
            failures[f] = f"{type(e).__name__}: {e}"
            ort_preds[f] = []
    hits = detection_hits(coco, own)
    ok = [f for f in files if f not in failures]
    checks = {
        "onnxruntime_failures": failures,
        "onnxruntime_vs_torch": compare_detections({f: own[f] for f in ok}, {f: ort_preds[f] for f in ok}, 0.25),
        "onnxruntime_vs_torch_all_scores": compare_detections({f: own[f] for f in ok},
                                                              {f: ort_preds[f] for f in ok}, 0.05),
        "onnxruntime_hit_flips": hit_flips(hits, detection_hits(coco, ort_preds)),
    }
    write_json(folder / "expected.json", {
        "fixture": "torchvision_detect", "task": "detection", "model": "model.onnx", "dev_set": "dev.json",
        "classes": DET_CLASSES,
        "label_offset": "ONNX `labels` are 1..3 for circle, square, triangle; 0 is background (never output)",
        "predicted_by": "torchvision FasterRCNN in eval mode, model([image])[0], each image at its own size",
        "exporter": exporter,
        "settings": {"input": "one unbatched RGB image [3, H, W] float32 in [0, 1], any H and W; the graph "
                              "normalises (ImageNet mean/std) and resizes itself (shorter side to "
                              f"{TV_MIN_SIZE}, longer side at most {TV_MAX_SIZE}, bilinear)",
                     "boxes": "x1 y1 x2 y2 in the input image's pixels",
                     "box_score_thresh": 0.05, "box_nms_thresh": 0.5, "box_detections_per_img": 100,
                     "rpn_score_thresh": rpn_score_thresh},
        "max_objectness_per_image": {f: rounded(v, 5) for f, v in objectness.items()},
        "traced_on": example_file,
        "rpn_proposals_per_image": proposals,
        "predictions": own, "hits": hits, "checks": checks})
    report["torchvision_detect"] = {"train_seconds": round(train_s, 1), "bytes": dir_size(folder),
                                    "exporter": exporter, "torch_version": torch.__version__,
                                    "torchvision_version": torchvision.__version__,
                                    "hits@0.25": f"{hits['0.25']['hits']}/{hits['0.25']['positives']}",
                                    "hits@0.5": f"{hits['0.5']['hits']}/{hits['0.5']['positives']}",
                                    "checks": checks}


# --------------------------------------------------------------------------- torch classification

TORCH_SIZE = 48
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TORCH_EPOCHS = int(os.environ.get("ERRAN_EPOCHS_TORCH", 8))


def make_torch_classify(tmp: Path, report: dict) -> None:
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED + 10)
    y = rng.integers(0, 3, 900)
    mean, std = np.array(MEAN, np.float32)[:, None, None], np.array(STD, np.float32)[:, None, None]

    def prep(img):
        return (np.asarray(img, np.float32).transpose(2, 0, 1) / 255 - mean) / std

    X = torch.from_numpy(np.stack([prep(surface_image(rng, SURFACE_CLASSES[c], TORCH_SIZE)) for c in y]))
    Y = torch.from_numpy(y)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    t = time.time()
    for epoch in range(TORCH_EPOCHS):
        perm = torch.randperm(len(X))
        for b in range(0, len(X), 32):
            idx = perm[b:b + 32]
            loss = nn.functional.cross_entropy(model(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_s = time.time() - t
    model.eval()
    folder = fresh_dir(HERE / "torch_classify")
    (folder / "images").mkdir()
    dev_rng = np.random.default_rng(SEED + 11)
    rows = []
    for i in range(45):
        c = SURFACE_CLASSES[i % 3]
        name = f"images/dev_{i:03d}.png"
        surface_image(dev_rng, c, TORCH_SIZE).save(folder / name)
        rows.append((name, c))
    write_manifest(folder, rows)
    X_dev = torch.from_numpy(np.stack([prep(Image.open(folder / n).convert("RGB")) for n, _ in rows]))
    with torch.no_grad():
        logits = model(X_dev).numpy().astype(float)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    exporters = {}
    for file, net, out_name in (("model.onnx", model, "logits"),
                                ("model_probs.onnx", nn.Sequential(model, nn.Softmax(dim=1)).eval(), "probabilities")):
        example = X_dev[:2]
        try:
            torch.onnx.export(net, (example,), str(folder / file), dynamo=True, input_names=["input"],
                              output_names=[out_name], dynamic_shapes=({0: torch.export.Dim("batch")},),
                              external_data=False)
            exporters[file] = "torch.onnx.export(dynamo=True)"
        except Exception as e:
            print("   dynamo export failed:", type(e).__name__, str(e)[:300], flush=True)
            for p in folder.glob(file + "*"):
                p.unlink()
            torch.onnx.export(net, (example,), str(folder / file), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=[out_name],
                              dynamic_axes={"input": {0: "batch"}, out_name: {0: "batch"}})
            exporters[file] = "torch.onnx.export(dynamo=False), opset 17"
    layouts = {f: layout_of(folder / f) for f in exporters}
    write_json(folder / "layout.json", layouts)
    checks = {}
    for f, ref in (("model.onnx", logits), ("model_probs.onnx", probs)):
        sess = ort_session(folder / f)
        whole = sess.run(None, {"input": X_dev.numpy()})[0]  # all 45 in one batch: the batch axis is dynamic
        ones = np.concatenate([sess.run(None, {"input": X_dev[i:i + 1].numpy()})[0] for i in range(len(X_dev))])
        checks[f] = {"onnxruntime_batch45_vs_torch_max_abs_diff": rounded(float(np.abs(whole - ref).max()), 9),
                     "onnxruntime_batch1_vs_torch_max_abs_diff": rounded(float(np.abs(ones - ref).max()), 9),
                     "argmax_flips": int((whole.argmax(1) != ref.argmax(1)).sum())}
    own = {n: {"label": lab, "predicted": SURFACE_CLASSES[int(lg.argmax())], "logits": rounded(lg, 6),
               "scores": rounded(pr, 6)} for (n, lab), lg, pr in zip(rows, logits, probs)}
    summary = classification_summary(own, SURFACE_CLASSES)
    write_json(folder / "expected.json", {
        "fixture": "torch_classify", "task": "classification", "models": exporters, "dev_set": "dev.csv",
        "classes": SURFACE_CLASSES,
        "predicted_by": "torch forward of the nn.Sequential in eval mode (logits; scores = softmax(logits), which "
                        "is what model_probs.onnx outputs)",
        "settings": {"preprocess": {"size": [TORCH_SIZE, TORCH_SIZE], "channels": "RGB", "layout": "NCHW",
                                    "scale": 1 / 255, "mean": MEAN, "std": STD, "resize": None},
                     "outputs": {"model.onnx": "logits [batch, 3]", "model_probs.onnx": "softmax [batch, 3]"}},
        "predictions": own, "hits": summary, "checks": checks})
    report["torch_classify"] = {"train_seconds": round(train_s, 1), "bytes": dir_size(folder),
                                "exporters": exporters, "hits": f"{summary['hits']}/{summary['units']}",
                                "checks": checks}


# --------------------------------------------------------------------------- main

def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ["torch", "torchvision", "ultralytics", "scikit-learn", "skl2onnx", "onnx", "onnxruntime",
                 "onnxscript", "onnxslim", "numpy", "pillow", "opencv-python", "pycocotools"]:
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


FIXTURES = {
    "ultralytics_detect": lambda tmp, rep: make_ultralytics_detect(tmp, rep),
    "ultralytics_classify": lambda tmp, rep: make_ultralytics_classify(tmp, rep),
    "torchvision_detect": lambda tmp, rep: make_torchvision_detect(tmp, rep),
    "sklearn": lambda tmp, rep: make_sklearn(tmp, rep),
    "torch_classify": lambda tmp, rep: make_torch_classify(tmp, rep),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fixtures", nargs="*", choices=[*FIXTURES, []], help="default: all")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary training folder")
    args = parser.parse_args()
    names = args.fixtures or list(FIXTURES)
    random.seed(SEED)
    np.random.seed(SEED)
    import torch
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # 2 threads on 2 busy cores ran torchvision training 10-20x slower
    report_path = HERE / "VERSIONS.json"
    report, timings = {}, {}
    tmp = Path(tempfile.mkdtemp(prefix="erran_exports_"))
    try:
        for name in names:
            t = time.time()
            print(f"== {name}", flush=True)
            FIXTURES[name](tmp / name, report)
            timings[name] = round(time.time() - t, 1)
            print(f"== {name} done in {timings[name]} s", flush=True)
            # merge with what other runs (other fixtures, maybe in parallel) wrote meanwhile
            now = json.loads(report_path.read_text()) if report_path.exists() else {}
            merged_fixtures = {**now.get("fixtures", {}), **report}
            merged_seconds = {**now.get("seconds", {}), **timings}
            write_json(report_path, {"versions": versions(), "seconds": merged_seconds,
                                     "fixtures": merged_fixtures})
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)


if __name__ == "__main__":
    main()
