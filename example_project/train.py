"""Train the example's defect detectors from scratch on the CPU and export them to ONNX.

    python train.py --version v1                  # models/v1.onnx, annotations_v1.json's train split
    python train.py --version v2                  # models/v2.onnx, annotations.json's train split
    python train.py --version v3 --crop-prob 0.5  # models/v3_crop50.onnx: v2's data + random crop, 120 epochs

Needs torch (pip install 'pytest-erran[example]'); the plugin itself does not.

The detector is a small CenterNet-like network written here (0.26 M parameters, no
pretrained weights): a strided conv backbone down to 1/32, a two-step upsampling neck
back to 1/8 and one head on the 32x32 grid predicting, per cell, a heatmap score per
class (tube, fin), the box size (log of w, h) and the centre's offset in the cell.

ONNX contract (what the plugin reads with `output = "yolo"`):
    input  "images": float32 [N, 3, 256, 256], RGB scaled to [0, 1] (normalised inside)
    output "output0": float32 [N, 6, 1024]: cx, cy, w, h in input pixels, then the tube
           and fin scores in [0, 1]; a cell's score is kept only where it is a local
           maximum of its 3x3 neighbourhood (CenterNet's peak extraction), else 0
    metadata_props["classes"] = '["tube", "fin"]' (COCO category ids 1 and 2)
    resize: images are 256x256 already; any other size is stretched (`stretch`).

Training is seeded and deterministic (torch.use_deterministic_algorithms, 1 thread): the
same command on the same machine and torch build writes the same file (v1 trained twice,
under different loads, came out byte-identical). Another CPU or torch build may differ a little.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

# Threads sleep instead of spinning while they wait: on a busy 2-core machine spinning
# OpenMP threads made training five times slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
MODELS = HERE / "models"
CLASSES = ["tube", "fin"]  # category ids 1, 2
SIZE = 256
STRIDE = 8
GRID = SIZE // STRIDE
SEED = 2021
# v3 trains longer: with random crops the task is harder (at 80 epochs its training loss was
# still about twice v2's, and crop 0.5 reached 48 of the 51 test edge defects). The control,
# `--version v2 --epochs 120`, shows that the longer training alone does not fix the edge.
EPOCHS = {"v1": 80, "v2": 80, "v3": 120}
BATCH = 16
LR = 2e-3
MIN_VISIBLE = 0.6  # as the generator: a defect is labelled when >= 60% of its box is in view


# --------------------------------------------------------------------- data
def load_split(annotations: Path, split: str):
    """uint8 images [N, 3, S, S] and per image an array of [x1, y1, x2, y2, class]."""
    coco = json.loads(annotations.read_text())
    cat_index = {c["id"]: i for i, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}
    assert [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])] == CLASSES
    images = [im for im in coco["images"] if im["split"] == split]
    boxes = {im["id"]: [] for im in images}
    for a in coco["annotations"]:
        if a["image_id"] in boxes:
            x, y, w, h = a["bbox"]
            boxes[a["image_id"]].append([x, y, x + w, y + h, cat_index[a["category_id"]]])
    pixels = np.stack([np.asarray(Image.open(DATA / im["file_name"]).convert("RGB")) for im in images])
    targets = [np.array(boxes[im["id"]], dtype=np.float32).reshape(-1, 5) for im in images]
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), targets


def random_crop(img: torch.Tensor, boxes: np.ndarray, rng: random.Random):
    """A random square window of 75-95% of the side, resized back to SIZE x SIZE.

    Boxes are moved, clipped to the window and kept when >= MIN_VISIBLE of them is in it,
    so defects near the window's border become defects at or cut by the image edge."""
    # A large window: objects keep about their size (a zoom of 1.05-1.33), and the window's
    # border, never far from the image's, cuts through the defects near it.
    side = int(SIZE * rng.uniform(0.75, 0.95))
    x0 = rng.randint(0, SIZE - side)
    y0 = rng.randint(0, SIZE - side)
    crop = img[:, y0 : y0 + side, x0 : x0 + side].float()[None]
    crop = F.interpolate(crop, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]
    scale = SIZE / side
    kept = []
    for x1, y1, x2, y2, c in boxes:
        cx1, cy1 = max(x1, x0), max(y1, y0)
        cx2, cy2 = min(x2, x0 + side), min(y2, y0 + side)
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        if (cx2 - cx1) * (cy2 - cy1) < MIN_VISIBLE * (x2 - x1) * (y2 - y1):
            continue
        kept.append([(cx1 - x0) * scale, (cy1 - y0) * scale, (cx2 - x0) * scale, (cy2 - y0) * scale, c])
    return crop, np.array(kept, dtype=np.float32).reshape(-1, 5)


def flip_and_jitter(img: torch.Tensor, boxes: np.ndarray, rng: random.Random):
    """The base augmentation of every version: flips, brightness and contrast.

    None of it moves a defect nearer to or further from the image border."""
    boxes = boxes.copy()
    if rng.random() < 0.5:
        img = img.flip(2)
        boxes[:, [0, 2]] = SIZE - boxes[:, [2, 0]]
    if rng.random() < 0.5:
        img = img.flip(1)
        boxes[:, [1, 3]] = SIZE - boxes[:, [3, 1]]
    gain, contrast = rng.uniform(0.6, 1.4), rng.uniform(0.8, 1.2)
    mean = img.mean()
    img = ((img - mean) * contrast + mean) * gain
    return img.clamp(0, 1), boxes


def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: how far a centre may move and keep IoU >= min_overlap."""
    a1, b1, c1 = 1, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def make_targets(boxes: np.ndarray):
    """Heatmap [C, G, G], size/offset targets [4, G, G] and their mask [G, G]."""
    heat = np.zeros((len(CLASSES), GRID, GRID), np.float32)
    reg = np.zeros((4, GRID, GRID), np.float32)
    mask = np.zeros((GRID, GRID), np.float32)
    gy, gx = np.mgrid[0:GRID, 0:GRID]
    for x1, y1, x2, y2, c in boxes:
        w, h = (x2 - x1) / STRIDE, (y2 - y1) / STRIDE
        cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
        ix, iy = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
        sigma = (2 * max(0.0, gaussian_radius(h, w)) + 1) / 6
        g = np.exp(-((gx - ix) ** 2 + (gy - iy) ** 2) / (2 * sigma**2))
        heat[int(c)] = np.maximum(heat[int(c)], g)
        reg[:, iy, ix] = [math.log(w), math.log(h), cx - ix, cy - iy]
        mask[iy, ix] = 1
    return heat, reg, mask


# -------------------------------------------------------------------- model
def cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.s2 = nn.Sequential(cbr(3, 16, 2), cbr(16, 24, 2))            # 1/4
        self.s3 = nn.Sequential(cbr(24, 32, 2), cbr(32, 32))              # 1/8
        self.s4 = nn.Sequential(cbr(32, 64, 2), cbr(64, 64))              # 1/16
        self.s5 = nn.Sequential(cbr(64, 64, 2), cbr(64, 64))              # 1/32
        self.n4 = cbr(64 + 64, 48)
        self.n3 = cbr(48 + 32, 48)
        self.head = nn.Sequential(cbr(48, 32), nn.Conv2d(32, len(CLASSES) + 4, 1))
        nn.init.constant_(self.head[-1].bias[: len(CLASSES)], -2.19)  # prior 0.1

    def forward(self, x):  # x: [N, 3, S, S] in [0, 1]
        x = (x - 0.5) / 0.25
        c3 = self.s3(self.s2(x))
        c4 = self.s4(c3)
        c5 = self.s5(c4)
        p4 = self.n4(torch.cat([F.interpolate(c5, scale_factor=2.0, mode="nearest"), c4], 1))
        p3 = self.n3(torch.cat([F.interpolate(p4, scale_factor=2.0, mode="nearest"), c3], 1))
        return self.head(p3)  # [N, C + 4, G, G]: class logits, log w, log h, offset x, y


class Exported(nn.Module):
    """The trained detector with its decoding: the raw YOLO layout [N, 4 + C, G * G]."""

    def __init__(self, net: Detector):
        super().__init__()
        self.net = net
        g = torch.arange(GRID, dtype=torch.float32)
        self.register_buffer("gx", g.view(1, 1, GRID).expand(1, GRID, GRID).reshape(1, -1).clone())
        self.register_buffer("gy", g.view(1, GRID, 1).expand(1, GRID, GRID).reshape(1, -1).clone())

    def forward(self, images):
        out = self.net(images)
        n, k = out.shape[0], len(CLASSES)
        heat = torch.sigmoid(out[:, :k])
        peak = F.max_pool2d(heat, 3, 1, 1)
        heat = heat * (heat == peak).float()
        out = out.flatten(2)
        cx = (self.gx + torch.sigmoid(out[:, k + 2])) * STRIDE
        cy = (self.gy + torch.sigmoid(out[:, k + 3])) * STRIDE
        w = torch.exp(out[:, k]) * STRIDE
        h = torch.exp(out[:, k + 1]) * STRIDE
        return torch.cat([torch.stack([cx, cy, w, h], 1), heat.flatten(2)], 1)


def focal_loss(logits, target):
    """CenterNet's penalty-reduced focal loss, summed and divided by the object count."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def loss_fn(out, heat, reg, mask):
    k = len(CLASSES)
    hm = focal_loss(out[:, :k], heat)
    m = mask[:, None]
    n = mask.sum().clamp(min=1)
    size = (torch.abs(out[:, k : k + 2] - reg[:, :2]) * m).sum() / n
    off = (torch.abs(torch.sigmoid(out[:, k + 2 :]) - reg[:, 2:]) * m).sum() / n
    return hm + size + off


# ----------------------------------------------------------------- training
def train(images: torch.Tensor, targets: list, crop_prob: float, epochs: int, seed: int) -> Detector:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    net = Detector()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    steps = epochs * math.ceil(len(images) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.1)
    net.train()
    for epoch in range(epochs):
        order = list(range(len(images)))
        rng.shuffle(order)
        total = 0.0
        for b in range(0, len(order), BATCH):
            batch = order[b : b + BATCH]
            xs, hs, rs, ms = [], [], [], []
            for i in batch:
                img, boxes = images[i], targets[i]
                if crop_prob > 0 and rng.random() < crop_prob:
                    img, boxes = random_crop(img, boxes, rng)
                img, boxes = flip_and_jitter(img.float() / 255, boxes, rng)
                heat, reg, mask = make_targets(boxes)
                xs.append(img)
                hs.append(heat)
                rs.append(reg)
                ms.append(mask)
            x = torch.stack(xs)
            loss = loss_fn(net(x), torch.from_numpy(np.stack(hs)), torch.from_numpy(np.stack(rs)),
                           torch.from_numpy(np.stack(ms)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
        if epoch % 10 == 0 or epoch == epochs - 1:
            print(f"  epoch {epoch + 1:3d}/{epochs}  loss {total / len(images):.3f}", flush=True)
    return net.eval()


def float16_weights(m):
    """Store every float32 weight as float16, cast back to float32 when the model loads.

    Halves the file; the graph still computes in float32 (input and output float32),
    and onnxruntime folds the casts into constants once, when it opens the model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = m.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        name = init.name
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "_fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT,
                                      name="cast_" + name))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return m


def export(net: Detector, path: Path, description: str) -> None:
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    model = Exported(net).eval()
    torch.onnx.export(
        model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
        output_names=["output0"], dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    m = float16_weights(onnx.load(str(path)))
    del m.metadata_props[:]
    for key, value in (("classes", json.dumps(CLASSES)), ("description", description)):
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    m.producer_name = "pytest-erran example_project/train.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", choices=["v1", "v2", "v3"], required=True)
    ap.add_argument("--crop-prob", type=float, default=None, help="v3 only: probability of a random crop")
    ap.add_argument("--epochs", type=int, default=None, help="default 80 (v1, v2), 120 (v3)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: the committed models were trained so)")
    ap.add_argument("--out", type=Path, default=None, help="default models/<version>[_cropNN].onnx")
    args = ap.parse_args()
    if (args.version == "v3") != (args.crop_prob is not None):
        ap.error("--crop-prob is required for v3 and only for v3")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    annotations = DATA / ("annotations_v1.json" if args.version == "v1" else "annotations.json")
    crop = args.crop_prob or 0.0
    name = args.version if args.version != "v3" else f"v3_crop{round(crop * 100)}"
    out = args.out or MODELS / f"{name}.onnx"
    images, targets = load_split(annotations, "train")
    print(f"{name}: {len(images)} train images, {sum(len(t) for t in targets)} objects "
          f"from {annotations.name}, crop probability {crop}")
    start = time.perf_counter()
    epochs = args.epochs or EPOCHS[args.version]
    net = train(images, targets, crop, epochs, SEED)
    took = time.perf_counter() - start
    export(net, out, f"{name}: trained {epochs} epochs on {annotations.name} train split, "
                     f"random crop p={crop}")
    print(f"wrote {out} ({out.stat().st_size} bytes), training took {took:.0f} s")


if __name__ == "__main__":
    main()
