#!/usr/bin/env python
"""What the error analysis adds to an evaluation, with every cache cold.

    python benchmarks/analysis.py [--images 2000] [--train 500] [--rounds 3] [--side 256]

On the same photo-like PNGs as throughput.py (256x256, or --side pixels square), in this process, per model input size
(64 and 224 px), best of --rounds alternated runs of `pytest_erran.pipeline.evaluate` with an
empty cache directory each time:

  (a) plain      the evaluation alone;
  (b) analyze    analyze = true: properties, hashes measured in the model's own decode threads,
                 then the ranked buckets, false positives, label errors and the rest;
  (c) 2 passes   what (b) would cost with a separate decode-only pass for the measurements: (a)
                 plus `measure_all` over the same images, timed on its own;
and, with a train split of --train more images (measured, never run through the model):
  (d) analyze    (b) with the train split's images measured too (calibration, drift, leakage).

It prints (b)/(a) (target < 1.15) and the other ratios against (a), in wall-clock and in CPU time
(all threads): on a machine busy with other work, compare the CPU ratios.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import throughput  # noqa: E402
from throughput import CLASSES, SIZES, cores, erran_table, load_average, make_dataset, make_model, \
    write_manifest  # noqa: E402


def evaluate_cold(directory: Path, table: dict, analyze: bool) -> tuple[float, float, dict]:
    from pytest_erran.config import build_settings
    from pytest_erran.pipeline import evaluate

    cache = Path(tempfile.mkdtemp(prefix="erran-cache-", dir=directory))
    try:
        started, cpu = time.perf_counter(), time.process_time()
        settings = build_settings(directory, directory / "erran.toml", {**table, "analyze": analyze}, {})
        evaluation = evaluate(settings, cache_dir=cache)
        return time.perf_counter() - started, time.process_time() - cpu, evaluation.timing
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def measure_pass(paths: list[str]) -> tuple[float, float]:
    """The same measurements as (b) (no fingerprints without another split), decoded apart."""
    from pytest_erran.inference.measurements import Regions, measure_all

    started, cpu = time.perf_counter(), time.process_time()
    measure_all(paths, paths, Regions.none(), cores(), fingerprints=False)
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side", type=int, default=throughput.IMAGE_SIDE, help="image side in pixels")
    args = parser.parse_args()
    throughput.IMAGE_SIDE = args.side  # make_image reads it (its worker processes are forked)
    root = Path(tempfile.mkdtemp(prefix="erran-analysis-bench-"))
    try:
        paths, manifest = make_dataset(root, args.images + args.train)
        dev = [(f"images/img_{i:05d}.png", f"images/img_{i:05d}.png", CLASSES[i % 5 % 3]) for i in range(args.images)]
        write_manifest(root / "dev_only.csv", dev)
        with_train = root / "with_train.csv"
        rows = [(n, n, label, "dev") for n, _, label in dev] + \
            [(f"images/img_{i:05d}.png", f"images/img_{i:05d}.png", CLASSES[i % 5 % 3], "train")
             for i in range(args.images, args.images + args.train)]
        import csv

        with with_train.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "image", "label", "split"])
            writer.writerows(rows)
        (root / "erran.toml").write_text("")
        print(f"{args.images} dev images (+{args.train} train), {args.side}x{args.side} PNG, {cores()} cores, "
              f"load average {load_average()}")
        for side in SIZES:
            model = root / f"model{side}.onnx"
            make_model(model, side)
            plain_table = erran_table(model, root / "dev_only.csv", root)
            train_table = erran_table(model, with_train, root)
            names = ("plain", "analyze", "pass", "train")
            wall, cpu = {n: float("inf") for n in names}, {n: float("inf") for n in names}
            timing = {}
            for _ in range(args.rounds):
                for name, run in (("plain", lambda: evaluate_cold(root, plain_table, False)),
                                  ("analyze", lambda: evaluate_cold(root, plain_table, True)),
                                  ("train", lambda: evaluate_cold(root, train_table, True))):
                    seconds, used, timing[name] = run()
                    wall[name], cpu[name] = min(wall[name], seconds), min(cpu[name], used)
                seconds, used = measure_pass(paths[:args.images])
                wall["pass"], cpu["pass"] = min(wall["pass"], seconds), min(cpu["pass"], used)
            wall["pass"] += wall["plain"]
            cpu["pass"] += cpu["plain"]
            print(f"\n[{side}x{side}] best of {args.rounds} alternated runs, cold caches; wall clock and CPU time "
                  f"(all threads)")
            print(f"  {'':30} {'wall s':>7} {'ratio':>6}   {'cpu s':>7} {'ratio':>6}")
            labels = {"plain": "(a) plain evaluate", "analyze": "(b) analyze, same decode",
                      "pass": "(c) a + a separate pass", "train": f"(d) analyze, +{args.train} train images"}
            for name in names:
                print(f"  {labels[name]:30} {wall[name]:7.2f} {wall[name] / wall['plain']:6.3f}   "
                      f"{cpu[name]:7.2f} {cpu[name] / cpu['plain']:6.3f}")
            ok = "ok" if wall["analyze"] / wall["plain"] < 1.15 else "HIGH"
            print(f"  b/a = {wall['analyze'] / wall['plain']:.3f} wall ({ok}: target < 1.15), "
                  f"{cpu['analyze'] / cpu['plain']:.3f} CPU; the analysis after prediction took "
                  f"{timing['analyze']['analysis_s']:.2f} s")
        print(f"\nload average at the end: {load_average()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
