"""Generate the synthetic "metal part surface" inspection data set.

Deterministic: every image is drawn from a numpy RNG seeded with
(SEED, split, index), so re-running this script reproduces byte-identical
PNGs and manifest. No network access, no external assets.

Output (relative to this file):
    data/images/{split}_{NNNN}.png   64x64 RGB PNG (grayscale-looking)
    data/manifest.csv                id,image,label,split,tags,lighting,camera

Classes (model output index -> name): ok, scratch, dent, stain.

How the data is built
---------------------
* Background: brushed-metal texture (streaks along the brushing direction,
  horizontal on cam1, vertical on cam2), a soft illumination gradient and
  sensor noise.
* scratch: a thin bright or dark line of random angle/length.
* dent:    a round depression rendered with directional shading (bright
           and dark crescents) plus a darker centre.
* stain:   an irregular soft dark blob (a few overlapping gaussians).
* "severe" defects are bigger and stronger; "edge" defects sit close to the
  image border; "faint" stains are very low contrast (hard on purpose).
* Low lighting: darker, lower contrast, noisier, and mostly diffuse light,
  so the directional shading that identifies a dent nearly vanishes and a
  dent looks a lot like a stain.

Designed weakness: low-light dents are rare in the train split (a handful)
but common in the dev split, so a model trained on `train` has poor dent
recall under low light. Faint stains are also hard.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 20240611
SIZE = 64
CLASSES = ["ok", "scratch", "dent", "stain"]

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
IMG_DIR = DATA_DIR / "images"

# Per split and class: (count, fraction of low-light images).
# Low-light dents are deliberately rare in train.
PLAN = {
    "train": {
        "ok": (112, 0.25),
        "scratch": (96, 0.25),
        "dent": (96, 0.05),
        "stain": (96, 0.25),
    },
    "dev": {
        "ok": (50, 0.30),
        "scratch": (50, 0.30),
        "dent": (50, 0.30),
        "stain": (50, 0.30),
    },
}
SPLIT_CODE = {"train": 1, "dev": 2}
SEVERE_FRAC = 0.25
EDGE_FRAC = 0.15
FAINT_STAIN_FRAC = 0.20


# ---------------------------------------------------------------- helpers
def _smooth1d(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Box-smooth along one axis (wrap-free, same size)."""
    kernel = np.ones(k) / k
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, a)


def _grid():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    return y, x


def _defect_center(rng: np.random.Generator, edge: bool, margin: float) -> tuple[float, float]:
    if edge:
        # within a few pixels of one border
        side = rng.integers(4)
        along = rng.uniform(8, SIZE - 8)
        depth = rng.uniform(2, 7)
        if side == 0:
            return depth, along
        if side == 1:
            return SIZE - 1 - depth, along
        if side == 2:
            return along, depth
        return along, SIZE - 1 - depth
    lo, hi = margin, SIZE - 1 - margin
    return rng.uniform(lo, hi), rng.uniform(lo, hi)


def background(rng: np.random.Generator, camera: str) -> np.ndarray:
    base = rng.uniform(0.52, 0.68)
    # brushed streaks: noise smoothed strongly along the brushing direction
    streak = rng.normal(0.0, 1.0, (SIZE, SIZE))
    axis = 1 if camera == "cam1" else 0
    streak = _smooth1d(streak, 21, axis)
    streak = streak / (streak.std() + 1e-8) * rng.uniform(0.012, 0.022)
    y, x = _grid()
    gx, gy = rng.uniform(-0.06, 0.06, 2)
    grad = gx * (x / SIZE - 0.5) + gy * (y / SIZE - 0.5)
    return base + streak + grad


def add_scratch(img, rng, severe, edge, shade):
    y, x = _grid()
    cy, cx = _defect_center(rng, edge, margin=14)
    theta = rng.uniform(0, np.pi)
    length = rng.uniform(34, 54) if severe else rng.uniform(14, 32)
    width = rng.uniform(1.6, 2.6) if severe else rng.uniform(0.8, 1.3)
    amp = rng.uniform(0.20, 0.32) if severe else rng.uniform(0.09, 0.18)
    sign = 1.0 if rng.random() < 0.6 else -1.0
    dy, dx = np.sin(theta), np.cos(theta)
    # distance to the segment centred at (cy, cx)
    t = (x - cx) * dx + (y - cy) * dy
    t = np.clip(t, -length / 2, length / 2)
    px, py = cx + t * dx, cy + t * dy
    d = np.hypot(x - px, y - py)
    mask = np.clip(1.0 - (d - width / 2), 0.0, 1.0)
    # slight intensity variation along the scratch
    along = 0.75 + 0.25 * np.cos(t / length * np.pi * rng.uniform(1, 3) + rng.uniform(0, 6.28))
    return img + sign * amp * shade * mask * along


def add_dent(img, rng, severe, edge, directional):
    y, x = _grid()
    cy, cx = _defect_center(rng, edge, margin=12)
    r = rng.uniform(7.5, 11.0) if severe else rng.uniform(4.0, 7.0)
    amp = rng.uniform(0.22, 0.32) if severe else rng.uniform(0.12, 0.20)
    h = -np.exp(-(((x - cx) ** 2) + ((y - cy) ** 2)) / (2 * r * r))  # depression
    gy_, gx_ = np.gradient(h)
    # light mostly from the upper left
    ang = np.deg2rad(225 + rng.uniform(-25, 25))
    lx, ly = np.cos(ang), np.sin(ang)
    shading = (gx_ * lx + gy_ * ly) * r  # roughly scale free
    occlusion = h  # darker in the middle of the dent
    return img + amp * (directional * 1.6 * shading + 0.55 * occlusion)


def add_stain(img, rng, severe, edge, faint):
    y, x = _grid()
    cy, cx = _defect_center(rng, edge, margin=12)
    size = rng.uniform(7.0, 11.0) if severe else rng.uniform(4.5, 8.0)
    if faint:
        amp = rng.uniform(0.04, 0.065)
    elif severe:
        amp = rng.uniform(0.18, 0.28)
    else:
        amp = rng.uniform(0.10, 0.18)
    blob = np.zeros((SIZE, SIZE))
    for _ in range(rng.integers(2, 6)):
        oy, ox = rng.normal(0, size * 0.6, 2)
        s = size * rng.uniform(0.45, 0.9)
        w = rng.uniform(0.5, 1.0)
        blob += w * np.exp(-(((x - cx - ox) ** 2) + ((y - cy - oy) ** 2)) / (2 * s * s))
    blob = np.clip(blob / blob.max(), 0, 1) ** 0.8
    return img - amp * blob


def render(rng: np.random.Generator, label: str, severe: bool, edge: bool,
           faint: bool, low: bool, camera: str) -> np.ndarray:
    img = background(rng, camera)
    # low light: mostly diffuse ambient light -> weak directional cues
    directional = rng.uniform(0.35, 0.55) if low else rng.uniform(0.85, 1.15)
    shade = 0.9 if low else 1.0
    if label == "scratch":
        img = add_scratch(img, rng, severe, edge, shade)
    elif label == "dent":
        img = add_dent(img, rng, severe, edge, directional)
    elif label == "stain":
        img = add_stain(img, rng, severe, edge, faint)
    if low:
        mean = img.mean()
        img = mean + (img - mean) * rng.uniform(0.8, 0.9)    # lower contrast
        img = img * rng.uniform(0.5, 0.6)                    # darker
        noise = 0.014
    else:
        noise = 0.010
    img = img + rng.normal(0.0, noise, img.shape)
    g = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    # grayscale-looking metal with a faint cool tint (R,G,B nearly equal)
    rgb = np.stack([g, g, np.clip(g.astype(np.int16) + 2, 0, 255).astype(np.uint8)], axis=-1)
    return rgb


def main() -> None:
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    for old in IMG_DIR.glob("*.png"):
        old.unlink()
    rows = []
    for split, plan in PLAN.items():
        # a fixed, shuffled ordering of labels per split
        order_rng = np.random.default_rng([SEED, SPLIT_CODE[split], 0])
        labels = [c for c in CLASSES for _ in range(plan[c][0])]
        labels = [labels[i] for i in order_rng.permutation(len(labels))]
        # choose exactly round(frac * n) low-light items per class
        low_idx: set[int] = set()
        for c in CLASSES:
            idx = [i for i, lab in enumerate(labels) if lab == c]
            n_low = int(round(plan[c][1] * len(idx)))
            low_idx.update(order_rng.choice(idx, size=n_low, replace=False).tolist())
        for i, label in enumerate(labels):
            rng = np.random.default_rng([SEED, SPLIT_CODE[split], i + 1])
            low = i in low_idx
            camera = "cam1" if rng.random() < 0.5 else "cam2"
            is_defect = label != "ok"
            severe = is_defect and rng.random() < SEVERE_FRAC
            edge = is_defect and rng.random() < EDGE_FRAC
            faint = label == "stain" and not severe and rng.random() < FAINT_STAIN_FRAC
            rgb = render(rng, label, severe, edge, faint, low, camera)
            uid = f"{split}_{i + 1:04d}"
            rel = f"images/{uid}.png"
            Image.fromarray(rgb, mode="RGB").save(DATA_DIR / rel, format="PNG", optimize=True)
            tags = [t for t, on in (("severe", severe), ("edge", edge), ("faint", faint)) if on]
            rows.append({
                "id": uid,
                "image": rel,
                "label": label,
                "split": split,
                "tags": ";".join(tags),
                "lighting": "low" if low else "normal",
                "camera": camera,
            })
    with open(DATA_DIR / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "image", "label", "split", "tags", "lighting", "camera"],
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} images to {os.path.relpath(IMG_DIR)} and manifest.csv")


if __name__ == "__main__":
    main()
