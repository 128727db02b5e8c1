"""Generate the synthetic heat-exchanger inspection set (object detection).

Deterministic: image i is drawn from numpy's default_rng((SEED, i)) and the splits
from default_rng((SEED, 7)), so re-running this script rewrites the same JPEGs
and the same two COCO files. numpy + Pillow only; no network, no assets.

Output (relative to this file):
    data/images/part_NNNN.jpg    256x256 RGB JPEG (quality 60)
    data/annotations_v1.json     COCO instances, the "unlucky" first split
    data/annotations.json        COCO instances, the same images and boxes, with some
                                 severe-tube images moved from dev to train

Categories (id: name): 1: tube, 2: fin -- a model's output order is tube, fin.

The scene
---------
A finned-tube coil seen from above: a brushed-metal fixture plate, and on it a part
made of thin vertical aluminium fins crossed by 2-3 horizontal copper tubes. Per
image the part's size and position vary (usually it fills most of the frame; now and
then it sits shifted and runs off one side), and so do the lighting (some images
much darker or brighter, a light gradient, vignetting), the focus (about one image
in five is blurred) and the sensor noise.

Defects (COCO annotations, each with "severity": minor / moderate / severe)
--------------------------------------------------------------------------
* tube (rarer): minor and moderate ones are dents -- a small dark dimple with a
  bright rim, moderate ones bigger and darker with a scratch. A severe one is
  different in kind: a crushed stretch of tube, flattened (no cylinder shading),
  cracked and corroded, three to four times as long as a dent and taller than the
  tube.
* fin (common): bent fins -- the fin lines shear sideways and bunch up; the more
  severe, the bigger the patch and the stronger the bend, severe ones flattened
  into a bright smear.
Defects lie anywhere on the part, so when the part reaches the frame edge some are
touched or cut by it (boxes are clipped to the image; a defect is annotated when at
least 60% of its box is in view). Outside the train split some minor and moderate
defects are placed across the border where the part runs off the frame, and in the
train split no tube defect comes within TRAIN_TUBE_MARGIN px of the border: the rig
that made the training images framed the parts more carefully, so the defects at the
edge are what a model trained on them has seen least.

The splits
----------
Every image has a "split" key. round(8% of 600) = 48 images hold a severe tube defect.
The test split is 200 images drawn at random, stratified to hold its third of those (16),
the same in both files. annotations_v1.json puts 100 of the rest in dev and 300 in train,
with the unlucky draw: every other image with a severe tube defect (32) in dev, none in
train. annotations.json is the fix of the error analysis: three quarters of those (24)
moved from dev to train; nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SEED = 13
N_IMAGES = 600
N_TEST, N_DEV = 200, 100          # the rest (300) is train
SIZE = 256
QUALITY = 60
CATEGORIES = [{"id": 1, "name": "tube"}, {"id": 2, "name": "fin"}]
SEVERITIES = ("minor", "moderate", "severe")

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

# Expected defects per image and severity mix.
TUBE_DENTS_PER_IMAGE = 0.35       # minor + moderate tube defects (Poisson mean)
SEVERE_TUBE_IMAGE_FRAC = 0.08     # images holding one severe tube defect
TUBE_MIX = {"minor": 0.55, "moderate": 0.45}
FINS_PER_IMAGE = 1.3
FIN_MIX = {"minor": 0.4, "moderate": 0.4, "severe": 0.2}
# Outside the train split, a minor or moderate defect is placed across the left or right
# border of the frame (where the part runs off it) with these probabilities, so dev and
# test hold many more defects at the edge than train does; and in the train split no tube
# defect comes nearer the border than TRAIN_TUBE_MARGIN px (see "The splits").
EDGE_PLACED = {1: 0.10, 2: 0.06}  # category id -> probability
TRAIN_TUBE_MARGIN = 8
EDGE = 0.02                       # "at the edge" in the summary: edge_distance <= 2% of the side (auto:edge)
MIN_VISIBLE = 0.6                 # annotate a defect when >= 60% of its box is in view

COPPER = np.array([0.78, 0.50, 0.34])
ALU = np.array([0.80, 0.82, 0.85])
PLATE = np.array([0.55, 0.56, 0.58])


# ----------------------------------------------------------------- helpers
def box_blur(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Moving average of odd width k along one axis, edges replicated."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (k // 2, k // 2)
    p = np.pad(a, pad, mode="edge")
    c = np.cumsum(p, axis=axis)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    n = a.shape[axis]
    return (np.take(c, np.arange(k, k + n), axis=axis) - np.take(c, np.arange(0, n), axis=axis)) / k


def smooth_noise(rng, shape, k: int) -> np.ndarray:
    """Low-frequency noise, zero mean, unit-ish std."""
    n = rng.standard_normal(shape)
    n = box_blur(box_blur(n, k, 0), k, 1)
    return n / (n.std() + 1e-9)


def brushed(rng, shape) -> np.ndarray:
    """Brushed-metal streaks along x plus a soft mottle, around 0."""
    streak = box_blur(rng.standard_normal(shape), 41, 1) * 3.0
    return 0.05 * streak + 0.03 * smooth_noise(rng, shape, 31) + 0.008 * rng.standard_normal(shape)


# ------------------------------------------------------------------- scene
class Scene:
    def __init__(self, rng: np.random.Generator, train: bool):
        self.rng = rng
        self.train = train  # train split: no defect across the border on purpose, no tube defect near it
        s = SIZE
        self.yy, self.xx = np.mgrid[0:s, 0:s].astype(np.float64)
        # fixture plate
        self.img = PLATE[None, None, :] * (1.0 + brushed(rng, (s, s)))[:, :, None]
        # part rectangle: usually fills most of the frame; sometimes shifted off a side
        pw = rng.uniform(0.95, 1.15) * s
        ph = rng.uniform(0.72, 0.92) * s
        shift = rng.normal(0, 0.04 * s, size=2)
        if rng.random() < 0.30:  # misplaced on the fixture: runs off the left or right side
            shift[0] += rng.choice([-1, 1]) * rng.uniform(0.10, 0.22) * s
        cx, cy = s / 2 + shift[0], s / 2 + shift[1]
        self.px0, self.px1 = cx - pw / 2, cx + pw / 2
        self.py0, self.py1 = cy - ph / 2, cy + ph / 2
        # tubes: 2 or 3, evenly spaced in the part, diameter 20-28 px
        nt = int(rng.choice([2, 3], p=[0.45, 0.55]))
        self.d = rng.uniform(20, 28)
        gap = ph / nt
        self.tubes = [self.py0 + gap * (k + 0.5) + rng.normal(0, 3) for k in range(nt)]
        self.period = rng.uniform(4.6, 6.2)
        self.phase = rng.uniform(0, self.period)
        # fin warp field (a defect adds a local shear to it) and fin brightness
        self.fin_shift = np.zeros((s, s))
        self.fin_flat = np.zeros((s, s))  # 0 = normal fins, 1 = flattened smear
        self.tube_ops = []  # deferred tube-defect drawings
        self.annotations = []
        self.taken = []  # full boxes of the defects so far: defects do not overlap

    # --- geometry
    def part_mask(self) -> np.ndarray:
        soft = 1.5
        mx = np.clip((self.xx - self.px0) / soft, 0, 1) * np.clip((self.px1 - self.xx) / soft, 0, 1)
        my = np.clip((self.yy - self.py0) / soft, 0, 1) * np.clip((self.py1 - self.yy) / soft, 0, 1)
        return mx * my

    def tube_profile(self, yc: float):
        """(inside mask, v in [-1, 1] across the tube) for the tube centred at yc."""
        v = (self.yy - yc) / (self.d / 2)
        inside = np.clip((1.0 - np.abs(v)) * self.d / 2, 0, 1)
        return inside, np.clip(v, -1, 1)

    # --- defects
    def place(self, w: float, h: float, x_range, y_range, at_edge: bool = False, margin: float = 0):
        """Random box of size w x h with centre in the ranges; None if < MIN_VISIBLE in view.

        at_edge: across the left or right border instead (where the part runs off the
        frame), with 70-100% of its width in view. A box overlapping an earlier defect
        (or within 2 px of it), or nearer the border than `margin`, is drawn again."""
        sides = [side for side, reach in (("left", self.px0 < 0), ("right", self.px1 > SIZE)) if reach]
        at_edge = at_edge and bool(sides)
        for _ in range(30):
            y = self.rng.uniform(*y_range)
            if at_edge:
                side = sides[int(self.rng.integers(len(sides)))]
                out = (1 - self.rng.uniform(0.7, 1.0)) * w
                x = w / 2 - out if side == "left" else SIZE - w / 2 + out
            else:
                x = self.rng.uniform(*x_range)
            x0, y0, x1, y1 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
            if margin and min(x0, y0, SIZE - x1, SIZE - y1) < margin:
                continue
            if any(x0 < b[2] + 2 and b[0] < x1 + 2 and y0 < b[3] + 2 and b[1] < y1 + 2 for b in self.taken):
                continue
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, SIZE), min(y1, SIZE)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            if (cx1 - cx0) * (cy1 - cy0) >= MIN_VISIBLE * w * h:
                self.taken.append((x0, y0, x1, y1))
                return x, y, (cx0, cy0, cx1, cy1)
        return None

    def edge_placed(self, cat: int, severity: str) -> bool:
        """Outside train, whether this minor or moderate defect goes across the border."""
        return not self.train and severity != "severe" and self.rng.random() < EDGE_PLACED[cat]

    def add_tube_defect(self, severity: str) -> None:
        rng = self.rng
        yc = self.tubes[int(rng.integers(len(self.tubes)))]
        if severity == "minor":
            w, h = rng.uniform(9, 13), rng.uniform(8, 11)
        elif severity == "moderate":
            w, h = rng.uniform(12, 18), rng.uniform(10, 14)
        else:
            w, h = rng.uniform(30, 46), self.d + rng.uniform(6, 12)
        dy = max(self.d / 2 - h / 2, 0) if severity != "severe" else 0.0
        # anywhere along the tube where it crosses the part (fins on both sides)
        got = self.place(w, h, (self.px0, self.px1), (yc - dy, yc + dy), self.edge_placed(1, severity),
                         TRAIN_TUBE_MARGIN if self.train else 0)
        if got is None:
            return
        x, y, box = got
        self.tube_ops.append((severity, x, y, w, h, yc, rng.integers(1 << 30)))
        self.annotate(1, box, severity)

    def add_fin_defect(self, severity: str) -> None:
        rng = self.rng
        size = {"minor": (13, 19), "moderate": (18, 28), "severe": (28, 44)}[severity]
        w = rng.uniform(*size)
        h = w * rng.uniform(0.7, 1.3)
        # between tubes, inside the part
        bands = []
        edges = [self.py0] + [e for t in self.tubes for e in (t - self.d / 2, t + self.d / 2)] + [self.py1]
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a > h * 0.9:
                bands.append((a + h / 2 * 0.9, b - h / 2 * 0.9))
        if not bands:
            return
        band = bands[int(rng.integers(len(bands)))]
        if band[1] <= band[0]:
            band = ((band[0] + band[1]) / 2,) * 2
        lo, hi = max(self.px0, -w / 2), min(self.px1, SIZE + w / 2)
        got = self.place(w, h, (lo + w / 2 * 0.6, hi - w / 2 * 0.6), band, self.edge_placed(2, severity))
        if got is None:
            return
        x, y, box = got
        strength = {"minor": 1.0, "moderate": 1.4, "severe": 1.8}[severity]
        u = (self.xx - x) / (w / 2)
        v = (self.yy - y) / (h / 2)
        r = np.sqrt(u**2 + v**2)
        blob = np.clip(1.0 - r, 0, 1) ** 0.7
        sign = rng.choice([-1, 1])
        self.fin_shift += sign * strength * 5.0 * blob * (v + 1.2)
        # bent fins catch the light: a brighter patch (a flattened smear when severe),
        # which stays visible when the image is out of focus and the fin lines blur away
        flat = {"minor": 0.7, "moderate": 0.85, "severe": 2.2}[severity]
        self.fin_flat = np.maximum(self.fin_flat, np.clip(blob * flat, 0, 1))
        self.annotate(2, box, severity)

    def annotate(self, cat: int, box, severity: str) -> None:
        x0, y0, x1, y1 = box
        self.annotations.append(
            {"category_id": cat, "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
             "severity": severity}
        )

    # --- rendering
    def render(self) -> np.ndarray:
        rng = self.rng
        s = SIZE
        part = self.part_mask()
        # fins: thin bright lines, sheared/flattened by fin defects
        xf = self.xx + self.fin_shift + 0.6 * smooth_noise(rng, (s, s), 25)
        ph = 2 * np.pi * (xf - self.phase) / self.period
        line = (0.5 + 0.5 * np.cos(ph)) ** 3
        fins = 0.32 + 0.55 * line
        fins = fins * (1 - self.fin_flat) + (0.95 + 0.05 * rng.standard_normal((s, s))) * self.fin_flat
        fins = fins * (1 + 0.06 * smooth_noise(rng, (s, s), 15))
        fin_rgb = ALU[None, None, :] * fins[:, :, None]
        img = self.img * (1 - part[:, :, None]) + fin_rgb * part[:, :, None]
        # tubes across the whole frame width (they run through the part's end plates)
        for yc in self.tubes:
            inside, v = self.tube_profile(yc)
            shade = 0.35 + 0.55 * np.sqrt(np.clip(1 - v**2, 0, 1)) + 0.45 * np.exp(-((v + 0.35) / 0.18) ** 2)
            shade = shade * (1 + 0.04 * brushed(rng, (s, s)))
            tube = COPPER[None, None, :] * shade[:, :, None]
            # shadow under the tube
            sh = np.clip(1 - np.abs((self.yy - yc - self.d / 2 - 2) / 3), 0, 1) * 0.35
            img = img * (1 - sh[:, :, None])
            img = img * (1 - inside[:, :, None]) + tube * inside[:, :, None]
        for severity, x, y, w, h, yc, seed in self.tube_ops:
            img = draw_tube_defect(img, self, severity, x, y, w, h, yc, np.random.default_rng(seed))
        return img


def draw_tube_defect(img, scene, severity, x, y, w, h, yc, rng):
    xx, yy = scene.xx, scene.yy
    u = (xx - x) / (w / 2)
    v = (yy - y) / (h / 2)
    if severity in ("minor", "moderate"):
        r = np.sqrt(u**2 + v**2)
        depth = 0.65 if severity == "minor" else 0.8
        core = np.clip(1 - r, 0, 1) ** 0.8
        rim = np.exp(-((r - 1.0) / 0.18) ** 2) * (v < 0.2)
        factor = 1 - depth * core + 0.45 * rim
        if severity == "moderate":  # a scratch through the dent
            ang = rng.uniform(-0.6, 0.6)
            d = np.abs((yy - y) * math.cos(ang) - (xx - x) * math.sin(ang))
            along = np.abs((xx - x) * math.cos(ang) + (yy - y) * math.sin(ang))
            factor *= 1 - 0.5 * (d < 0.9) * (along < w * 0.9)
        return img * factor[:, :, None]
    # severe: a crushed, flattened, cracked and corroded stretch of tube
    box = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    edge = np.clip((1 - np.maximum(np.abs(u), np.abs(v) * 0.9)) * 6, 0, 1)
    mottle = smooth_noise(rng, img.shape[:2], 5)
    flat = np.array([0.55, 0.47, 0.40]) * (0.9 + 0.12 * mottle)[:, :, None]
    corrosion = (smooth_noise(rng, img.shape[:2], 7) > 0.5)
    flat = np.where(corrosion[:, :, None], np.array([0.22, 0.32, 0.24])[None, None, :], flat)
    out = img * (1 - edge[:, :, None]) + flat * edge[:, :, None]
    # dark jagged cracks across the crushed zone
    for _ in range(int(rng.integers(2, 5))):
        x0 = x + rng.uniform(-0.8, 0.8) * w / 2
        slope = rng.uniform(-0.6, 0.6)
        wig = 1.5 * np.sin((yy - y) * rng.uniform(0.3, 0.7) + rng.uniform(0, 6))
        crack = np.abs(xx - (x0 + slope * (yy - y) + wig)) < 1.0
        out = np.where((crack & box)[:, :, None], out * 0.25, out)
    return out


def finish(img: np.ndarray, rng) -> tuple[np.ndarray, dict]:
    """Lighting, vignetting, focus and noise; returns uint8 RGB and image metadata."""
    s = SIZE
    yy, xx = np.mgrid[0:s, 0:s] / s - 0.5
    r = rng.random()
    if r < 0.15:
        lighting, gain = "dark", rng.uniform(0.40, 0.60)
    elif r < 0.27:
        lighting, gain = "bright", rng.uniform(1.25, 1.45)
    else:
        lighting, gain = "normal", rng.uniform(0.85, 1.15)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = 1 + rng.uniform(0.0, 0.25) * (np.cos(ang) * xx + np.sin(ang) * yy) * 2
    vignette = 1 - rng.uniform(0.1, 0.3) * (xx**2 + yy**2) * 2
    img = img * (gain * ramp * vignette)[:, :, None]
    img = np.clip(img, 0, 1)
    pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
    blurred = rng.random() < 0.2
    radius = rng.uniform(1.0, 1.8) if blurred else rng.uniform(0.3, 0.7)
    pil = pil.filter(ImageFilter.GaussianBlur(radius))
    a = np.asarray(pil).astype(np.float64)
    a = a + rng.normal(0, rng.uniform(1.5, 3.0) * (1.5 if lighting == "dark" else 1.0), size=a.shape[:2])[:, :, None]
    a = np.clip(a + 0.5, 0, 255).astype(np.uint8)
    return a, {"lighting": lighting, "focus": "blurred" if blurred else "sharp"}


def make_image(i: int, train: bool, severe_tube: bool):
    rng = np.random.default_rng((SEED, i))
    sc = Scene(rng, train)
    if severe_tube:
        sc.add_tube_defect("severe")
    for _ in range(rng.poisson(TUBE_DENTS_PER_IMAGE)):
        sc.add_tube_defect(str(rng.choice(list(TUBE_MIX), p=list(TUBE_MIX.values()))))
    for _ in range(rng.poisson(FINS_PER_IMAGE)):
        sc.add_fin_defect(str(rng.choice(list(FIN_MIX), p=list(FIN_MIX.values()))))
    pixels, meta = finish(sc.render(), rng)
    return pixels, meta, sc.annotations


def plan():
    """Per image: whether it holds a severe tube defect, and its split in both files.

    round(N_IMAGES * SEVERE_TUBE_IMAGE_FRAC) images, drawn at random, hold a severe tube
    defect. The test split is N_TEST images drawn at random, stratified so that it holds
    its share (N_TEST / N_IMAGES) of those, the same in both files. Of the rest,
    annotations_v1.json puts N_DEV in dev and the others in train -- and, the unlucky draw,
    every image with a severe tube defect in dev. annotations.json moves three quarters of
    those from dev to train."""
    rng = np.random.default_rng((SEED, 7))
    n_severe = round(N_IMAGES * SEVERE_TUBE_IMAGE_FRAC)
    severe = np.zeros(N_IMAGES, bool)
    severe[rng.choice(N_IMAGES, n_severe, replace=False)] = True
    order = rng.permutation(N_IMAGES)
    with_severe = [int(i) for i in order if severe[i]]
    without = [int(i) for i in order if not severe[i]]
    k = round(n_severe * N_TEST / N_IMAGES)
    test = with_severe[:k] + without[: N_TEST - k]
    dev_severe = with_severe[k:]
    others = without[N_TEST - k :]
    v1 = np.full(N_IMAGES, "train", dtype=object)
    v1[test] = "test"
    v1[dev_severe + others[: N_DEV - len(dev_severe)]] = "dev"
    v2 = v1.copy()
    moved = rng.permutation(dev_severe)[: round(len(dev_severe) * 3 / 4)]
    v2[moved] = "train"
    return [bool(x) for x in severe], [str(x) for x in v1], [str(x) for x in v2]


def coco(images, annotations, split_of) -> dict:
    return {
        "info": {"description": "pytest-erran example: synthetic finned-tube coil inspection",
                 "version": "1"},
        "categories": CATEGORIES,
        "images": [dict(im, split=split_of[k]) for k, im in enumerate(images)],
        "annotations": annotations,
    }


def dump(doc: dict) -> str:
    """JSON with one image, annotation or category a line: compact, and diffs stay readable."""
    parts = []
    for key, value in doc.items():
        if isinstance(value, list):
            body = ",\n".join("  " + json.dumps(v, separators=(",", ":")) for v in value)
            parts.append(f"{json.dumps(key)}:[\n{body}\n]")
        else:
            parts.append(f"{json.dumps(key)}:{json.dumps(value, separators=(',', ':'))}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DATA, help="output folder (default: data/ here)")
    args = ap.parse_args()
    data, images_dir = args.out, args.out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for old in images_dir.glob("*.jpg"):
        old.unlink()
    severe, v1, v2 = plan()
    images, annotations = [], []
    for i in range(N_IMAGES):
        pixels, meta, anns = make_image(i, v1[i] == "train", severe[i])
        name = f"part_{i:04d}.jpg"
        Image.fromarray(pixels).save(images_dir / name, quality=QUALITY, optimize=True)
        images.append({"id": i + 1, "file_name": f"images/{name}", "width": SIZE, "height": SIZE, **meta})
        for a in anns:
            x, y, w, h = a["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": a["category_id"],
                                "bbox": a["bbox"], "area": round(w * h, 2), "iscrowd": 0,
                                "severity": a["severity"]})
    for name, split_of in (("annotations_v1.json", v1), ("annotations.json", v2)):
        (data / name).write_text(dump(coco(images, annotations, split_of)))
    summary(images, annotations, v1, v2)


def summary(images, annotations, v1, v2) -> None:
    for label, split_of in (("v1", v1), ("v2", v2)):
        print(f"{label}:")
        for sp in ("train", "dev", "test"):
            ids = {im["id"] for k, im in enumerate(images) if split_of[k] == sp}
            anns = [a for a in annotations if a["image_id"] in ids]
            row = {}
            for cat, cname in ((1, "tube"), (2, "fin")):
                c = [a for a in anns if a["category_id"] == cat]
                edge = [a for a in c if edge_distance(a["bbox"]) <= EDGE]
                row[cname] = (len(c), sum(a["severity"] == "severe" for a in c), len(edge))
            print(f"  {sp:5s} images {len(ids):3d}  " + "  ".join(
                f"{k}: {n} ({s} severe, {e} at the edge)" for k, (n, s, e) in row.items()))


def edge_distance(b) -> float:
    x, y, w, h = b
    return min(x, y, SIZE - x - w, SIZE - y - h) / SIZE


if __name__ == "__main__":
    main()
