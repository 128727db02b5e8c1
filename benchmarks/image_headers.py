"""What checking every detection image's declared size costs: the image's size and EXIF
orientation from its first bytes (pytest_erran.inference.image_headers) against PIL's own
header read, in the same invocation.

    python benchmarks/image_headers.py [--images 2000]

Prints microseconds per image and the ratio PIL / pytest-erran for PNG, JPEG and JPEG with an
EXIF orientation (640 x 480, random pixels).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pytest_erran.inference.images import image_size, open_image_header, orientation


def pil(path: str):
    with open_image_header(path, path) as image:
        return image.size, orientation(image)


def best_per_image(read, paths: list[str], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            read(path)
        best = min(best, (time.perf_counter() - start) / len(paths))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    tags = Image.Exif()
    tags[0x0112] = 6
    with tempfile.TemporaryDirectory() as folder:
        for name, save in (("PNG", lambda p: Image.fromarray(pixels).save(p, "PNG")),
                           ("JPEG", lambda p: Image.fromarray(pixels).save(p, "JPEG")),
                           ("JPEG + EXIF", lambda p: Image.fromarray(pixels).save(p, "JPEG", exif=tags))):
            first = Path(folder) / f"{name.replace(' ', '')}.img"
            save(first)
            paths = [str(first)] * args.images  # the same file: the page cache holds it for both
            reference = best_per_image(pil, paths)
            ours = best_per_image(lambda p: image_size(p, p), paths)
            print(f"{name:12s} PIL header {reference * 1e6:6.0f} us   pytest-erran {ours * 1e6:5.0f} us   "
                  f"ratio {reference / ours:.1f}x")


if __name__ == "__main__":
    main()
