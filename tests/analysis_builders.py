"""Images with a planted cause of error, for the error-analysis tests.

Classification: noisy textured images whose dominant colour channel decides what the channel-mean
model (builders.channel_mean_model) predicts; a cause is planted by how the image is painted (dark,
blurred), and a miss by painting a defect as "ok". Detection: a textured background with drawn
rectangles of a chosen contrast, predictions written by hand as COCO results.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from builders import CLASSES

SIZE = 32


def textured(path: Path, looks_like: str, *, level: int, blur: float = 0.0, seed: int = 0,
             strength: int = 40) -> None:
    """An RGB image: level + noise in every channel, `looks_like`'s channel `strength` higher."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 21, (SIZE, SIZE, 3)).astype(np.int32) + level
    pixels[..., CLASSES.index(looks_like)] += strength
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def manifest(root: Path, rows: list[dict], name: str = "dev.csv") -> Path:
    """rows: id, image, label, split and any metadata (the images already written)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = root / name
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def reference_brightness(path: Path) -> float:
    """The brightness definition, computed directly (these images are under 128 px: no resize)."""
    pixels = np.asarray(Image.open(path).convert("RGB"), float)
    return float((pixels @ np.array([0.2125, 0.7154, 0.0721])).mean())


# --- detection -----------------------------------------------------------------------------------

WIDTH, HEIGHT = 96, 64


class Scene:
    """Images with rectangles drawn at a contrast, their COCO file and predictions."""

    def __init__(self, root: Path, categories=("pit", "dent")):
        self.root = root
        self.categories = list(categories)
        self.images, self.annotations = [], []
        self._pixels: dict[int, np.ndarray] = {}
        self._next = 1

    def image(self, split: str, seed: int) -> int:
        index = len(self.images)
        rng = np.random.default_rng(1000 + seed)
        self._pixels[index] = rng.integers(95, 106, (HEIGHT, WIDTH, 3)).astype(np.int32)
        self.images.append({"id": index + 1, "file_name": f"images/{index:03d}.png", "width": WIDTH,
                            "height": HEIGHT, "split": split})
        return index

    def object(self, image: int, label: str, box: tuple[int, int, int, int], contrast: int = 80) -> int:
        x1, y1, x2, y2 = box
        self._pixels[image][y1:y2, x1:x2] += contrast
        self.annotations.append({"id": self._next, "image_id": image + 1,
                                 "category_id": self.categories.index(label) + 1,
                                 "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
        self._next += 1
        return self._next - 1

    def write(self, name: str = "dev.json") -> Path:
        (self.root / "images").mkdir(parents=True, exist_ok=True)
        for index, pixels in self._pixels.items():
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(self.root / self.images[index]["file_name"])
        path = self.root / name
        path.write_text(json.dumps({"images": self.images, "annotations": self.annotations,
                                    "categories": [{"id": i + 1, "name": c} for i, c in enumerate(self.categories)]}))
        return path

    def box_of(self, annotation: int) -> list[float]:
        return next(a["bbox"] for a in self.annotations if a["id"] == annotation)

    def found(self, annotation: int, score: float = 0.9, shift: int = 0, label: str | None = None) -> dict:
        """A prediction on the object (shifted right by `shift` pixels)."""
        record = next(a for a in self.annotations if a["id"] == annotation)
        x, y, w, h = record["bbox"]
        category = record["category_id"] if label is None else self.categories.index(label) + 1
        return {"image_id": record["image_id"], "category_id": category, "bbox": [x + shift, y, w, h],
                "score": score}


def write_predictions(root: Path, predictions: list[dict], name: str = "preds.json") -> Path:
    path = root / name
    path.write_text(json.dumps(predictions))
    return path
