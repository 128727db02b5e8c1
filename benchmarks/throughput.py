#!/usr/bin/env python
"""Throughput, memory and start-up benchmark for pytest-erran.

    python benchmarks/throughput.py [--images N] [--rounds R] [--startup-runs K]
                                    [--data DIR] [--plugin-path DIR] [--json PATH]

In one invocation, on synthetic data written to a temporary directory:

1. N (default 1500) deterministic 256x256 RGB PNGs (gradient + shapes + noise, so decoding
   costs what a photo-like PNG costs) and a manifest CSV;
2. two small seeded CNN classifiers built with onnx.helper (NCHW float32, dynamic batch),
   one with a 64x64 input and one with a 224x224 input;
3. per input size, images per second (wall clock) and CPU time per image of
     (a) naive       a per-image loop: PIL open/convert/resize, normalise, session.run batch 1;
     (b) reference   a pipelined loop written here, independent of the plugin: decode threads
                     (one per core) write normalised rows into SLOTS preallocated float32 batch
                     buffers while onnxruntime (spinning off) runs the previous batch; batch
                     16/32 x 1/2 intra-op threads tried on a subset, the best one kept;
     (c) plugin      pytest_erran.pipeline.evaluate(settings, cache_dir=None), in process,
                     build_settings included;
     (d) pytest      `python -m pytest -p no:cacheprovider -q` in a directory holding an
                     erran.toml: wall time of the whole process, start-up included;
     (e) ref proc    (b) run as a script in a process of its own, imports included;
   (b)-(e) alternate for --rounds rounds and the best run of each is kept; ratios c/b
   (target >= 0.85) and d/e (whole process against whole process, target >= 0.75);
4. peak RSS (VmHWM) of a fresh process evaluating N and 2N images: memory must not grow with
   the data set beyond its tables;
5. start-up cost of the installed but inactive plugin: `pytest --co -q` with and without
   `-p no:erran` in an empty directory, plugins loaded as installed, medians of alternated runs
   (target < 15 ms).

Subprocesses run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed, PYTHONPYCACHEPREFIX
under the temp dir), as an installed package has its .pyc files, and with plugin autoloading off:
pytest-erran is loaded with -p, so other installed plugins are not timed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("ok", "scratch", "dent")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZES = (64, 224)
IMAGE_SIDE = 256
NAIVE_MAX = 500  # the naive loop is slow and steady: a subset measures it well enough
SWEEP_MAX = 500  # the (b) configurations are compared on a subset; the best then runs on all
SLOTS = 3


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------- data


def make_image(index: int, path: Path) -> None:
    rng = np.random.default_rng(10_000 + index)
    side = IMAGE_SIDE
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    c0, c1, c2 = rng.uniform(0, 255, (3, 3))
    base = c0 + (c1 - c0) * xx[..., None] + (c2 - c0) * yy[..., None] * 0.5
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 10))):
        x0, y0 = rng.integers(0, side - 16, 2)
        x1, y1 = x0 + rng.integers(8, 128), y0 + rng.integers(8, 128)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle([int(x0), int(y0), int(x1), int(y1)], fill=colour)
        elif kind == 1:
            draw.ellipse([int(x0), int(y0), int(x1), int(y1)], fill=colour)
        else:
            draw.line([int(x0), int(y0), int(x1), int(y1)], fill=colour, width=int(rng.integers(1, 6)))
    pixels = np.asarray(image).astype(np.int16) + rng.integers(-12, 13, (side, side, 3), dtype=np.int16)
    partial = path.with_name(path.name + ".part")  # an interrupted run leaves no truncated PNG
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(partial, format="PNG")
    os.replace(partial, path)


def _make_images(job: tuple[Path, list[tuple[int, str]]]) -> None:
    root, items = job
    for index, name in items:
        target = root / name
        if not target.exists():  # a kept --data directory is reused
            make_image(index, target)


def make_dataset(root: Path, count: int) -> tuple[list[str], Path]:
    images = root / "images"
    images.mkdir(exist_ok=True)
    names = [f"images/img_{i:05d}.png" for i in range(count)]
    workers = cores()
    jobs = [(root, [(i, names[i]) for i in range(w, count, workers)]) for w in range(workers)]
    with ProcessPoolExecutor(workers) as pool:  # processes: generation is not what is timed
        list(pool.map(_make_images, jobs))
    labels = [CLASSES[i % 5 % 3] for i in range(count)]  # ok, scratch, dent, ok, scratch, ...
    manifest = root / "dev.csv"
    write_manifest(manifest, [(n, n, l) for n, l in zip(names, labels)])
    return [str(root / n) for n in names], manifest


def write_manifest(path: Path, rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "image", "label"])
        writer.writerows(rows)


# ---------------------------------------------------------------------------------- models


def make_model(path: Path, side: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(side)
    conv_w = rng.normal(0, 0.2, (16, 3, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, 16).astype(np.float32)
    fc_w = rng.normal(0, 0.5, (16, 3)).astype(np.float32)
    fc_b = np.zeros(3, np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], strides=[2, 2],
                         pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, f"bench{side}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(a, n) for a, n in
         ((conv_w, "conv_w"), (conv_b, "conv_b"), (fc_w, "fc_w"), (fc_b, "fc_b"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def session(model: Path, intra: int | None, spinning: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra is not None:
        options.intra_op_num_threads = intra
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------- (a) naive


def run_naive(model: Path, paths: list[str], side: int) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    sess = session(model, None)  # onnxruntime defaults, as a first script would
    mean = np.asarray(MEAN, np.float32)
    std = np.asarray(STD, np.float32)
    predicted = []
    for path in paths:
        image = Image.open(path).convert("RGB").resize((side, side), Image.BILINEAR)
        x = (np.asarray(image, np.float32) / 255.0 - mean) / std
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        predicted.append(int(sess.run(None, {"input": x})[0].argmax()))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": len(paths), "ips": len(paths) / seconds,
            "cpu_ms": (time.process_time() - cpu) / len(paths) * 1e3, "pred": np.asarray(predicted)}


# ---------------------------------------------------------------------------------- (b) reference


def run_reference(model: Path, paths: list[str], side: int, batch: int, intra: int,
                  threads: int) -> dict:
    """Decode threads write normalised float32 CHW rows straight into one of SLOTS batch
    buffers (one task per thread per batch: a contiguous run of rows); the main thread runs
    onnxruntime on the oldest full buffer while the next two are being filled."""
    started, cpu = time.perf_counter(), time.process_time()
    sess = session(model, intra)
    gain = (np.float32(1 / 255) / np.asarray(STD, np.float32))[:, None, None]
    offset = (-np.asarray(MEAN, np.float32) / np.asarray(STD, np.float32))[:, None, None]
    buffers = [np.empty((batch, 3, side, side), np.float32) for _ in range(SLOTS)]
    count = len(paths)
    starts = list(range(0, count, batch))

    def fill(slot: int, lo: int, hi: int, start: int) -> None:
        out = buffers[slot]
        for i in range(lo, hi):
            with Image.open(paths[i]) as image:
                image = image.convert("RGB")
                if image.size != (side, side):
                    image = image.resize((side, side), Image.BILINEAR)
                pixels = np.asarray(image)
            row = out[i - start]
            np.multiply(pixels.transpose(2, 0, 1), gain, out=row)
            row += offset

    predicted = np.empty(count, np.int64)
    with ThreadPoolExecutor(threads) as pool:
        def submit(number: int):
            start = starts[number]
            stop = min(start + batch, count)
            bounds = np.linspace(start, stop, threads + 1).astype(int)
            slot = number % SLOTS
            return start, stop, slot, [pool.submit(fill, slot, int(a), int(b), start)
                                       for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

        pending = [submit(n) for n in range(min(SLOTS - 1, len(starts)))]
        following = len(pending)
        while pending:
            start, stop, slot, futures = pending.pop(0)
            for future in futures:
                future.result()
            if following < len(starts):
                pending.append(submit(following))
                following += 1
            logits = sess.run(None, {"input": buffers[slot][: stop - start]})[0]
            predicted[start:stop] = logits.argmax(axis=1)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": count, "ips": count / seconds, "pred": predicted,
            "cpu_ms": (time.process_time() - cpu) / count * 1e3,
            "batch": batch, "intra": intra, "threads": threads}


# ---------------------------------------------------------------------------------- (c) plugin


def erran_table(model: Path, data: Path, base: Path, extra: dict | None = None) -> dict:
    table = {
        "model": os.path.relpath(model, base),
        "data": os.path.relpath(data, base),
        "classes": list(CLASSES),
        "negative": "ok",
        "preprocess": {"mean": list(MEAN), "std": list(STD)},
        "require": [{"bucket": "scratch", "recall": 0.0}],
    }
    table.update(extra or {})
    return table


def write_erran_toml(directory: Path, table: dict) -> Path:
    def value(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines, tables = [], []
    for key, v in table.items():
        if key == "require":
            for entry in v:
                tables.append("[[require]]\n" + "".join(f"{k} = {value(x)}\n" for k, x in entry.items()))
        elif isinstance(v, dict):
            tables.append(f"[{key}]\n" + "".join(f"{k} = {value(x)}\n" for k, x in v.items()))
        else:
            lines.append(f"{key} = {value(v)}")
    path = directory / "erran.toml"
    path.write_text("\n".join(lines) + "\n\n" + "\n".join(tables))
    return path


def run_plugin(directory: Path, table: dict) -> dict:
    from pytest_erran.config import build_settings
    from pytest_erran.pipeline import evaluate

    started, cpu = time.perf_counter(), time.process_time()
    config = directory / "erran.toml"
    settings = build_settings(directory, config, table, overrides={})
    evaluation = evaluate(settings, cache_dir=None)
    seconds = time.perf_counter() - started
    images = evaluation.timing["images"]
    index = {c: i for i, c in enumerate(CLASSES)}
    return {"seconds": seconds, "images": images, "ips": images / seconds,
            "cpu_ms": (time.process_time() - cpu) / images * 1e3,
            "predict_s": evaluation.timing["predict_s"], "load_s": evaluation.timing["load_s"],
            "pred": np.asarray([index[p] for p in evaluation.units["_pred"]])}


# ---------------------------------------------------------------------------------- (d) pytest


BYTECODE_PREFIX: Path | None = None  # set in main(): where subprocesses cache their bytecode
PLUGIN_PATH: Path | None = None  # --plugin-path: a directory holding another pytest_erran copy


def clean_env() -> dict:
    """The environment of every timed subprocess: no pytest options from the caller, and bytecode
    caching on (PYTHONDONTWRITEBYTECODE=1 would recompile the plugin at every start, which no
    installed package does), written under the temporary directory, not into the source tree."""
    env = dict(os.environ)
    for key in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    # Only pytest and pytest-erran (loaded with ERRAN) are timed: other plugins installed here
    # cost what they cost with or without erran (hypothesis's imports hypothesis at every
    # session's end, about 0.7 s on this machine).
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    if BYTECODE_PREFIX is not None:
        env["PYTHONPYCACHEPREFIX"] = str(BYTECODE_PREFIX)
    if PLUGIN_PATH is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_PATH), env.get("PYTHONPATH")]))
    return env


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


ERRAN = ("-p", "pytest_erran.plugin")  # with autoload off, the plugin is named explicitly


def run_pytest(directory: Path, images: int, *extra: str, ok=(0, 1)) -> dict:
    started, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *extra],
                          cwd=directory, env=clean_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        raise RuntimeError(f"pytest failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return {"seconds": seconds, "images": images, "ips": images / seconds if images else 0.0,
            "cpu_ms": (children_cpu() - cpu) / max(images, 1) * 1e3, "cpu_s": children_cpu() - cpu,
            "rc": done.returncode,
            "tail": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""}


def run_reference_process(model: Path, paths_file: Path, images: int, side: int, batch: int,
                          intra: int, threads: int) -> dict:
    """(e) the reference pipeline as a whole process of its own, imports included: the fair
    partner of (d), which pays pytest's and the plugin's start-up."""
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run([sys.executable, __file__, "--reference-process", str(model), str(paths_file),
                    str(side), str(batch), str(intra), str(threads)],
                   check=True, env=clean_env(), capture_output=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": images, "ips": images / seconds,
            "cpu_ms": (children_cpu() - cpu) / images * 1e3}


# ---------------------------------------------------------------------------------- memory

# ru_maxrss alone would mislead here: Linux carries the parent's peak RSS across fork+exec into
# the child's ru_maxrss (this script is already ~300 MB when it starts the child). The child
# therefore also reads VmHWM, the peak RSS of its own address space, which starts fresh at exec.
MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys, time, tomllib
    from pathlib import Path

    def hwm_kb():
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is

    from pytest_erran.config import build_settings
    from pytest_erran.pipeline import evaluate
    import onnxruntime, pandas, PIL.PngImagePlugin  # the imports' own memory, before any image
    config = Path(sys.argv[1])
    table = tomllib.loads(config.read_text())
    before = hwm_kb()
    started = time.perf_counter()
    evaluation = evaluate(build_settings(config.parent, config, table, {}), cache_dir=None)
    seconds = time.perf_counter() - started
    print(json.dumps({"images": evaluation.timing["images"], "imports_kb": before, "peak_kb": hwm_kb(),
                      "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "seconds": seconds}))
""")


def run_memory(config: Path) -> dict:
    # cwd: `python -c` puts the working directory first on sys.path, before --plugin-path
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(config)], capture_output=True,
                          text=True, env=clean_env(), cwd=config.parent)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- start-up


def run_startup(root: Path, runs: int) -> dict:
    directory = root / "startup"
    directory.mkdir()
    (directory / "test_trivial.py").write_text("def test_trivial():\n    assert True\n")
    # Here plugins load as installed (autoload on): the cost of an installed but inactive
    # pytest-erran is the difference with `-p no:erran`, everything else being equal.
    env = {k: v for k, v in clean_env().items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    commands = {
        "with": [sys.executable, "-m", "pytest", "--co", "-q"],
        "without": [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:erran"],
    }
    times: dict[str, list[float]] = {"with": [], "without": []}
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    for name, command in commands.items():  # warm the file system and bytecode caches
        subprocess.run(command, cwd=directory, env=env, capture_output=True, check=True)
    for run in range(runs):
        order = ("with", "without") if run % 2 == 0 else ("without", "with")
        for name in order:
            started, used = time.perf_counter(), children_cpu()
            subprocess.run(commands[name], cwd=directory, env=env, capture_output=True, check=True)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(children_cpu() - used)
    median = {name: statistics.median(values) for name, values in times.items()}
    # Steadier than wall clock on a busy machine: the import of the plugin's entry-point module
    # (and whatever it pulls in) timed inside fresh interpreters that already imported pytest.
    # (-X importtime cannot do this: pytest loads entry points through importlib.import_module,
    # which that option does not time.)
    probe = ("import time, pytest; t = time.perf_counter(); import pytest_erran.plugin; "
             "print((time.perf_counter() - t) * 1000)")
    imports = [float(subprocess.run([sys.executable, "-c", probe], cwd=directory, env=env, capture_output=True,
                                    text=True, check=True).stdout) for _ in range(5)]
    return {"runs": runs, "with_ms": median["with"] * 1000, "without_ms": median["without"] * 1000,
            "plugin_import_ms": statistics.median(imports),
            "overhead_ms": (median["with"] - median["without"]) * 1000,
            "min_overhead_ms": (min(times["with"]) - min(times["without"])) * 1000,
            "cpu_overhead_ms": (statistics.median(cpu["with"]) - statistics.median(cpu["without"])) * 1000}


# ---------------------------------------------------------------------------------- main


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    global BYTECODE_PREFIX, PLUGIN_PATH
    if sys.argv[1:2] == ["--reference-process"]:  # the child of run_reference_process
        model, paths_file, side, batch, intra, threads = sys.argv[2:8]
        run_reference(Path(model), Path(paths_file).read_text().split("\n"), int(side), int(batch),
                      int(intra), int(threads))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1500, help="dev set size (default 1500)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternated repetitions of (b), (c), (d); the best is kept (default 2)")
    parser.add_argument("--startup-runs", type=int, default=15, help="runs per start-up variant")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the generated PNGs in this directory and reuse them next time "
                             "(default: a temporary directory, removed at the end)")
    parser.add_argument("--plugin-path", type=Path, default=None,
                        help="benchmark the pytest_erran package found in this directory instead of "
                             "the installed one (A/B tests of a patched copy)")
    parser.add_argument("--memory-images", type=int, default=20_000,
                        help="the larger dev set of the memory check (default 20000: the images listed "
                             "again under other ids)")
    parser.add_argument("--jpegs", type=int, default=300,
                        help="large JPEGs (2-5 MP) for decode exact vs fast (default 300; 0 skips)")
    parser.add_argument("--skip-detection", action="store_true", help="skip the detection comparison")
    parser.add_argument("--skip-ray", action="store_true", help="skip engine = \"ray\" even if Ray is installed")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    if args.plugin_path is not None:
        PLUGIN_PATH = args.plugin_path.resolve()
        sys.path.insert(0, str(PLUGIN_PATH))
    import onnxruntime
    import pytest_erran.inference.batches

    n_cores = cores()
    root = Path(tempfile.mkdtemp(prefix="erran-bench-"))
    BYTECODE_PREFIX = Path(tempfile.gettempdir()) / "erran-bench-pycache"  # shared by runs: compiled once
    data_root = args.data.resolve() if args.data else root
    data_root.mkdir(parents=True, exist_ok=True)
    results: dict = {"images": args.images, "cores": n_cores, "python": sys.version.split()[0],
                     "onnxruntime": onnxruntime.__version__, "pillow": Image.__version__,
                     "numpy": np.__version__, "load_average_start": load_average(), "sizes": {}}
    print(f"pytest-erran throughput benchmark: {args.images} PNGs {IMAGE_SIDE}x{IMAGE_SIDE}, "
          f"{n_cores} cores, python {results['python']}, onnxruntime {results['onnxruntime']}, "
          f"pillow {results['pillow']}, numpy {results['numpy']}")
    print(f"plugin: {Path(pytest_erran.inference.batches.__file__).parent.parent}; load average {load_average()}")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * n_cores:
        print(f"WARNING: the machine is busy (1-minute load {os.getloadavg()[0]:.1f} on {n_cores} cores): "
              "img/s will be noisy; the CPU-time table is the steadier comparison")
    try:
        started = time.perf_counter()
        paths, manifest = make_dataset(data_root, args.images)
        size_mb = sum(os.path.getsize(p) for p in paths) / 1e6
        print(f"images: {len(paths)} ({size_mb:.1f} MB, {size_mb * 1e3 / len(paths):.0f} kB each) "
              f"ready in {time.perf_counter() - started:.1f}s under {data_root}")

        for side in SIZES:
            make_model(root / f"model{side}.onnx", side)
        # One small pytest run first: bytecode compiled, files cached, before anything is timed.
        warm = root / "warmup"
        warm.mkdir()
        write_manifest(warm / "dev.csv", [(os.path.relpath(p, warm),) * 2 + (CLASSES[i % 5 % 3],)
                                          for i, p in enumerate(paths[:32])])
        write_erran_toml(warm, erran_table(root / f"model{SIZES[0]}.onnx", warm / "dev.csv", warm))
        (warm / "pytest.ini").write_text("[pytest]\n")
        run_pytest(warm, 32, *ERRAN)

        rows = []
        for side in SIZES:
            model = root / f"model{side}.onnx"
            run_dir = root / f"run{side}"
            run_dir.mkdir()
            table = erran_table(model, manifest, run_dir)
            write_erran_toml(run_dir, table)
            (run_dir / "pytest.ini").write_text("[pytest]\n")  # pins the rootdir to run_dir
            naive = run_naive(model, paths[:NAIVE_MAX], side)
            sweep = []
            for batch in (16, 32):
                for intra in (1, 2):
                    sweep.append(run_reference(model, paths[:SWEEP_MAX], side, batch, intra, n_cores))
            best = max(sweep, key=lambda r: r["ips"])
            references, plugins, processes, bare, ref_processes = [], [], [], [], []
            paths_file = root / "paths.txt"
            paths_file.write_text("\n".join(paths))
            for _ in range(args.rounds):  # alternated, so that a burst of load hits all of them
                references.append(run_reference(model, paths, side, best["batch"], best["intra"], n_cores))
                ref_processes.append(run_reference_process(model, paths_file, len(paths), side,
                                                           best["batch"], best["intra"], n_cores))
                plugins.append(run_plugin(run_dir, table))
                processes.append(run_pytest(run_dir, len(paths), *ERRAN))
                bare.append(run_pytest(run_dir, 0, ok=(5,)))  # pytest alone: nothing collected
            reference = max(references, key=lambda r: r["ips"])
            plugin = max(plugins, key=lambda r: r["ips"])
            process = max(processes, key=lambda r: r["ips"])
            ref_process = max(ref_processes, key=lambda r: r["ips"])
            bare_s = min(r["seconds"] for r in bare)
            cpu = {name: min(r["cpu_ms"] for r in runs) for name, runs in
                   (("naive", [naive]), ("reference", references), ("plugin", plugins), ("process", processes))}
            agree = float((plugin["pred"] == reference["pred"]).mean())
            agree_naive = float((naive["pred"] == reference["pred"][: len(naive["pred"])]).mean())
            entry = {
                "naive_ips": naive["ips"], "naive_images": naive["images"],
                "sweep": [{k: r[k] for k in ("batch", "intra", "ips", "cpu_ms")} for r in sweep],
                "reference_ips": reference["ips"], "reference_s": reference["seconds"],
                "reference_config": {k: reference[k] for k in ("batch", "intra", "threads")},
                "plugin_ips": plugin["ips"], "plugin_s": plugin["seconds"],
                "plugin_predict_s": plugin["predict_s"], "plugin_load_s": plugin["load_s"],
                "process_ips": process["ips"], "process_s": process["seconds"], "process_rc": process["rc"],
                "process_summary": process["tail"], "bare_pytest_s": bare_s,
                "plugin_ratio": plugin["ips"] / reference["ips"],
                "process_ratio": process["ips"] / reference["ips"],
                "reference_process_ips": ref_process["ips"], "reference_process_s": ref_process["seconds"],
                "process_ratio_vs_process": process["ips"] / ref_process["ips"],
                "cpu_ms_per_image": cpu,
                "agreement_plugin_reference": agree, "agreement_naive_reference": agree_naive,
            }
            results["sizes"][side] = entry
            sweep_text = ", ".join(f"b{r['batch']}/intra{r['intra']}: {r['ips']:.0f}" for r in sweep)
            print(f"\n[{side}x{side}] (b) configurations on {sweep[0]['images']} images (img/s, {n_cores} "
                  f"decode threads): {sweep_text}")
            print(f"[{side}x{side}] plugin evaluate(): load {plugin['load_s']:.2f}s + predict "
                  f"{plugin['predict_s']:.2f}s of {plugin['seconds']:.2f}s; predictions equal to (b): "
                  f"plugin {agree:.1%}, naive {agree_naive:.1%}")
            fixed = process["seconds"] - len(paths) / reference["ips"]
            entry["process_fixed_s"] = fixed
            entry["images_for_process_target"] = max(0, int(np.ceil(3 * fixed * reference["ips"])))
            print(f"[{side}x{side}] pytest process {process['seconds']:.2f}s ('{process['tail']}', rc "
                  f"{process['rc']}) = (b)'s time + {fixed:.2f}s (pytest alone in the same "
                  f"dir: {bare_s:.2f}s); at that cost d/b >= 0.75 from {entry['images_for_process_target']} "
                  f"images on")
            rows.append((side, entry))

        print(f"\nThroughput, {args.images} images, best of {args.rounds} alternated runs; naive on the "
              f"first {min(NAIVE_MAX, args.images)}; (b) configuration chosen on the first "
              f"{min(SWEEP_MAX, args.images)}")
        header = (f"{'input':>7} | {'(a) naive':>9} | {'(b) ref':>8} {'config':>12} | "
                  f"{'(c) plugin':>10} | {'(d) pytest':>10} | {'(e) ref proc':>12} | {'c/b':>5} {'':4} | "
                  f"{'d/b':>5} | {'d/e':>5} {'':4}")
        print(header)
        print("-" * len(header))
        for side, e in rows:
            cfg = f"b{e['reference_config']['batch']} intra{e['reference_config']['intra']}"
            ok_c = "ok" if e["plugin_ratio"] >= 0.85 else "LOW"
            ok_d = "ok" if e["process_ratio_vs_process"] >= 0.75 else "LOW"
            print(f"{side:>4}px | {e['naive_ips']:>9.0f} | {e['reference_ips']:>8.0f} {cfg:>12} | "
                  f"{e['plugin_ips']:>10.0f} | {e['process_ips']:>10.0f} | {e['reference_process_ips']:>12.0f} | "
                  f"{e['plugin_ratio']:>5.2f} {ok_c:4} | {e['process_ratio']:>5.2f} | "
                  f"{e['process_ratio_vs_process']:>5.2f} {ok_d:4}")
        print("img/s (wall clock); c/b target >= 0.85; whole process: d/e target >= 0.75 (pytest with "
              "the plugin vs the reference as a script, both start-up included); d/b for reference")
        print("\nCPU time per image (ms, all threads; lowest of the runs; less sensitive than img/s to "
              "other load on the machine):")
        print(f"{'input':>7} | {'(a) naive':>9} | {'(b) ref':>8} | {'(c) plugin':>10} | {'(d) pytest':>10} | "
              f"{'c/b':>5} | {'d/b':>5}")
        for side, e in rows:
            c = e["cpu_ms_per_image"]
            print(f"{side:>4}px | {c['naive']:>9.2f} | {c['reference']:>8.2f} | {c['plugin']:>10.2f} | "
                  f"{c['process']:>10.2f} | {c['plugin'] / c['reference']:>5.2f} | "
                  f"{c['process'] / c['reference']:>5.2f}")

        import speed_cases

        speed_cases.tp = sys.modules[__name__]  # this module's settings (bytecode prefix, plugin path)
        results["input_cache"] = speed_cases.input_cache_case(root, manifest, SIZES[0], args.rounds)

        # memory: N and memory_images images (the larger manifest lists every image again under other ids)
        side = SIZES[0]
        model = root / f"model{side}.onnx"
        memory = {}
        copies = max(2, -(-args.memory_images // len(paths)))
        for factor in (1, copies):
            mem_dir = root / f"mem{factor}"
            mem_dir.mkdir()
            data = manifest
            if factor > 1:
                data = mem_dir / "dev_more.csv"
                names = [os.path.relpath(p, mem_dir) for p in paths]
                labels = [CLASSES[i % 5 % 3] for i in range(len(paths))]
                rows = [(f"{copy}/{n}", n, l) for copy in range(factor) for n, l in zip(names, labels)]
                write_manifest(data, rows[:max(args.memory_images, len(paths) + 1)])
            write_erran_toml(mem_dir, erran_table(model, data, mem_dir))
            memory[factor] = run_memory(mem_dir / "erran.toml")
        results["memory"] = memory
        one, two = memory[1], memory[copies]
        growth = (two["peak_kb"] - one["peak_kb"]) / 1024
        per_1000 = growth / (two["images"] - one["images"]) * 1000
        print(f"\nPeak RSS (VmHWM) of a fresh process running evaluate() (no cache), {side}x{side} model:")
        for factor in (1, copies):
            m = memory[factor]
            print(f"  {m['images']:>6} images: after imports {m['imports_kb'] / 1024:6.1f} MB, "
                  f"peak {m['peak_kb'] / 1024:6.1f} MB (+{(m['peak_kb'] - m['imports_kb']) / 1024:.1f} MB); "
                  f"ru_maxrss {m['ru_maxrss_kb'] / 1024:.1f} MB; {m['images'] / m['seconds']:.0f} img/s")
        print(f"  growth {one['images']} -> {two['images']} images: {growth:+.1f} MB ({growth * 1024 / one['peak_kb']:+.1%} of the peak; "
              f"{per_1000:+.2f} MB per 1000 images, noise included)")
        print("  (ru_maxrss includes the parent's RSS, carried over by Linux across fork+exec)")

        if args.jpegs:
            results["large_jpegs"] = speed_cases.large_jpeg_case(root, data_root, args.jpegs, SIZES[-1], args.rounds)
        if not args.skip_detection:
            import detection

            print("\nDetection predictions (benchmarks/detection.py, 10k images):")
            results["detection"] = detection.run(10_000, 10, max(2, args.rounds))
            print("\n".join(detection.report(results["detection"])))
        if not args.skip_ray:
            results["ray"] = speed_cases.ray_case(root, manifest, SIZES[0], args.rounds)

        startup = run_startup(root, args.startup_runs)
        results["startup"] = startup
        target = "ok" if startup["overhead_ms"] < 15 else "HIGH"
        print(f"\nStart-up, `pytest --co -q` in an empty dir, medians of {startup['runs']} alternated runs: "
              f"with erran {startup['with_ms']:.1f} ms, with -p no:erran {startup['without_ms']:.1f} ms, "
              f"overhead {startup['overhead_ms']:+.1f} ms (target < 15 ms: {target}); "
              f"difference of the fastest runs {startup['min_overhead_ms']:+.1f} ms, "
              f"of median CPU time {startup['cpu_overhead_ms']:+.1f} ms")
        print(f"  import of pytest_erran.plugin after pytest, in-process, median of 5 fresh processes: "
              f"{startup['plugin_import_ms']:.1f} ms")
        results["load_average_end"] = load_average()
        print(f"load average at the end: {results['load_average_end']}")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
