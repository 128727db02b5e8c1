"""Cost of the image-property columns (brightness, contrast, blur), against plain decoding.

    python benchmarks/properties.py [--images 1000]

Both run over the same photo-like 256x256 PNGs with one thread per core, in this process:
(1) decode only (PIL open + convert to RGB), (2) pytest_erran.inference.measurements.measure_all
(properties only, no fingerprints or objects). The ratio
says what a `where` on a property adds to a run, on top of decoding for the model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from pytest_erran.inference.measurements import Regions, measure_all
from pytest_erran.inference.batches import default_threads

sys.path.insert(0, str(Path(__file__).parent))
from throughput import make_image  # noqa: E402  (the same photo-like images)


def decode_only(paths: list[str], threads: int) -> None:
    def one(path: str) -> None:
        with Image.open(path) as image:
            image.convert("RGB")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, paths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    threads = default_threads()
    with tempfile.TemporaryDirectory() as folder:
        paths = [str(Path(folder) / f"{i}.png") for i in range(args.images)]
        for i, path in enumerate(paths):
            make_image(i, Path(path))
        timings = {}
        for name, run in (("decode", lambda: decode_only(paths, threads)),
                          ("properties", lambda: measure_all(paths, paths, Regions.none(), threads, fingerprints=False))):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            timings[name] = best
    for name, seconds in timings.items():
        print(f"{name:>10}: {args.images / seconds:7.0f} img/s ({seconds:.2f} s, best of 3, {threads} threads)")
    print(f"properties / decode time: {timings['properties'] / timings['decode']:.2f}")


if __name__ == "__main__":
    main()
