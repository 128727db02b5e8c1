#!/usr/bin/env python
"""What the reports cost: a gate run on N (default 2000) images with and without the HTML
gallery, the Markdown summary and JUnit XML, in one invocation.

    python benchmarks/reports.py [--images N] [--rounds R] [--data DIR]

The data and model are throughput.py's (photo-like 256x256 PNGs, a small seeded CNN with a 64x64
input); the requirements fail on purpose, so every gallery is full (48 thumbnails each) and
false positives exist. Printed, best of R alternating rounds each:

  (a) pytest, no reports                 the model runs, no cache (-p no:cacheprovider)
  (b) pytest, every report               the same, plus --erran-html, --erran-markdown,
                                         --junit-xml: the gallery also measures the image
                                         properties of every image (no cache to keep them)
  (c) pytest, every report, warm cache   (b) with the cache provider on, properties and
                                         predictions already cached, against (d) the same
                                         warm run without reports
  (e) in process: writing the reports    render_html + markdown_document on one evaluation,
                                         against evaluate() of the same settings, no cache

and the ratios (b)/(a), (c)/(d) and (e) over evaluate(), in wall time and in CPU time (which a
busy machine disturbs less); the gallery's size is printed too.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402  (same folder: its data, model and clean environment)

FAILING = [{"bucket": "scratch", "recall": 0.99}, {"bucket": "dent", "recall": 0.99}]
REPORTS = ("--erran-html=out/erran.html", "--erran-markdown=out/erran.md", "--junit-xml=out/junit.xml")


def run(directory: Path, *extra: str, cache: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one pytest process."""
    args = [sys.executable, "-m", "pytest", "-q", *throughput.ERRAN, *extra]
    if not cache:
        args[3:3] = ["-p", "no:cacheprovider"]
    started, cpu = time.perf_counter(), throughput.children_cpu()
    done = subprocess.run(args, cwd=directory, env=throughput.clean_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 1:  # the gate fails by design; anything else is a broken run
        raise RuntimeError(f"pytest exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, throughput.children_cpu() - cpu


def in_process(directory: Path, table: dict) -> tuple[float, float, float, float]:
    """(wall, CPU) of evaluate() and (wall, CPU) of writing the gallery and the Markdown."""
    from pytest_erran.config import build_settings
    from pytest_erran.pipeline import evaluate
    from pytest_erran.report.html import render_html
    from pytest_erran.report.markdown import markdown_document

    settings = build_settings(directory, directory / "erran.toml", table, overrides={})
    started, cpu = time.perf_counter(), time.process_time()
    evaluation = evaluate(settings, cache_dir=None)
    evaluated, evaluated_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    render_html(evaluation)
    markdown_document(evaluation, html_link="erran.html")
    return evaluated, evaluated_cpu, time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, help="keep the generated images here and reuse them")
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="erran-bench-reports-"))
    throughput.BYTECODE_PREFIX = temp / "pycache"
    try:
        data = args.data or temp / "data"
        data.mkdir(parents=True, exist_ok=True)
        if not (data / "dev.csv").exists() or len((data / "dev.csv").read_text().splitlines()) != args.images + 1:
            throughput.make_dataset(data, args.images)
        model = data / "model64.onnx"
        throughput.make_model(model, 64)
        work = temp / "run"
        work.mkdir()
        table = throughput.erran_table(model, data / "dev.csv", work, {"require": FAILING})
        throughput.write_erran_toml(work, table)

        print(f"{args.images} images, {args.rounds} rounds; load average {throughput.load_average()}")
        run(work)  # warm the page cache and the bytecode
        bare, full = [], []
        for _ in range(args.rounds):
            bare.append(run(work))
            full.append(run(work, *REPORTS))
        run(work, *REPORTS, cache=True)  # fill the cache: predictions and properties
        warm_bare, warm_full = [], []
        for _ in range(args.rounds):
            warm_bare.append(run(work, cache=True))
            warm_full.append(run(work, *REPORTS, cache=True))
        size = (work / "out" / "erran.html").stat().st_size
        e = min((in_process(work, table) for _ in range(args.rounds)), key=lambda r: r[2])

        def best(runs):
            return min(r[0] for r in runs), min(r[1] for r in runs)

        (a, a_cpu), (b, b_cpu), (d, d_cpu), (c, c_cpu) = best(bare), best(full), best(warm_bare), best(warm_full)
        print("                                       wall            CPU")
        print(f"(a) pytest, no reports                {a:6.2f} s       {a_cpu:6.2f} s")
        print(f"(b) pytest, every report              {b:6.2f} s       {b_cpu:6.2f} s   (b)/(a) = {b / a:.3f} wall, "
              f"{b_cpu / a_cpu:.3f} CPU (includes measuring every image's properties)")
        print(f"(d) pytest, no reports, warm cache    {d:6.2f} s       {d_cpu:6.2f} s")
        print(f"(c) pytest, every report, warm cache  {c:6.2f} s       {c_cpu:6.2f} s   (c)/(d) = {c / d:.3f} wall, "
              f"{c_cpu / d_cpu:.3f} CPU")
        print(f"(e) writing the reports in process    {e[2]:6.2f} s       {e[3]:6.2f} s   against evaluate() "
              f"{e[0]:.2f} s / {e[1]:.2f} s CPU: {e[2] / e[0]:.3f} wall, {e[3] / e[1]:.3f} CPU")
        print(f"gallery: {size / 1e6:.2f} MB")
        return 0
    finally:
        if args.data is None:
            shutil.rmtree(temp, ignore_errors=True)
        else:
            shutil.rmtree(temp / "run", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
