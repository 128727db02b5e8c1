"""The speed cases of throughput.py beyond the pipelined reference: the input cache and warm
runs, large JPEGs decoded exact vs fast, the Ray engine against the local runner. Each returns
a dict of figures and prints its lines; throughput.py runs them in the same invocation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).parent))
import throughput as tp  # noqa: E402

# ---------------------------------------------------------------------------------- input cache


def other_model(path: Path, side: int) -> None:
    """The benchmark CNN with other weights: a new model on the same dev set and geometry."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path.with_name(f"model{side}.onnx")))
    for init in model.graph.initializer:
        if init.name == "fc_w":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init)[:, ::-1].copy(), "fc_w"))
    onnx.save(model, str(path))


def evaluate_timed(directory: Path, table: dict, cache_dir: Path | None) -> dict:
    from pytest_erran.config import build_settings
    from pytest_erran.pipeline import evaluate

    started = time.perf_counter()
    evaluation = evaluate(build_settings(directory, directory / "erran.toml", table, {}), cache_dir=cache_dir)
    return {"seconds": time.perf_counter() - started, "timing": evaluation.timing,
            "pred": evaluation.units["_pred"].tolist()}


def pytest_process(directory: Path, *extra: str) -> tuple[float, float]:
    """(wall, CPU) seconds of a whole pytest process with the cache provider on (the cache under
    test). On a busy machine the CPU time is the steadier of the two."""
    started, cpu = time.perf_counter(), tp.children_cpu()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *tp.ERRAN, *extra], cwd=directory,
                          env=tp.clean_env(), capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"pytest failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started, tp.children_cpu() - cpu


def input_cache_case(root: Path, manifest: Path, side: int, rounds: int) -> dict:
    """Cold (empty cache), a new model on the cached dev set, and a warm re-run of the same model:
    as evaluations in this process and as whole pytest processes, alternated, best of each."""
    model = root / f"model{side}.onnx"
    other = root / f"other{side}.onnx"
    other_model(other, side)
    directory = root / f"cache{side}"
    directory.mkdir()
    table = tp.erran_table(model, manifest, directory)
    tp.write_erran_toml(directory, table)
    (directory / "pytest.ini").write_text("[pytest]\n")
    other_table = {**table, "model": os.path.relpath(other, directory)}
    cache = directory / "evaluation-cache"
    pytest_cache = directory / ".pytest_cache"
    times: dict[str, list[float]] = {k: [] for k in ("cold", "new_model", "proc_cold", "proc_new_model",
                                                     "proc_warm")}
    agree = True
    for _ in range(rounds):
        shutil.rmtree(cache, ignore_errors=True)
        cold = evaluate_timed(directory, table, cache)
        for entry in cache.glob("*.npz"):  # keep the inputs, forget the predictions: a new model
            entry.unlink()
        new = evaluate_timed(directory, other_table, cache)
        reference = evaluate_timed(directory, other_table, None)
        agree &= new["pred"] == reference["pred"] and new["timing"]["inputs_cached"] == len(new["pred"])
        times["cold"].append(cold["seconds"])
        times["new_model"].append(new["seconds"])
        shutil.rmtree(pytest_cache, ignore_errors=True)
        for name, extra in (("proc_cold", ()), ("proc_new_model", (f"--erran-model={other}",)),
                            ("proc_warm", (f"--erran-model={other}",))):
            wall, cpu = pytest_process(directory, *extra)
            times[name].append(wall)
            times.setdefault(name + "_cpu", []).append(cpu)
    best = {k: min(v) for k, v in times.items()}
    result = {**best, "images": len(cold["pred"]), "agree": agree,
              "ratio_new_model": best["cold"] / best["new_model"],
              "ratio_proc_new_model": best["proc_cold"] / best["proc_new_model"],
              "ratio_proc_warm": best["proc_cold"] / best["proc_warm"],
              "cpu_ratio_proc_new_model": best["proc_cold_cpu"] / best["proc_new_model_cpu"],
              "cpu_ratio_proc_warm": best["proc_cold_cpu"] / best["proc_warm_cpu"],
              "cache_mb": sum(p.stat().st_size for p in (cache / "inputs").rglob("*") if p.is_file()) / 2**20}
    n = result["images"]
    print(f"\n[{side}x{side}] input cache, {n} images, best of {rounds} alternated rounds "
          f"(cache {result['cache_mb']:.1f} MB):")
    print(f"  evaluation: cold (empty cache) {best['cold']:.2f}s ({n / best['cold']:.0f} img/s); new model on "
          f"the cached dev set {best['new_model']:.2f}s ({n / best['new_model']:.0f} img/s): "
          f"{result['ratio_new_model']:.1f}x faster (target >= 5: {_ok(result['ratio_new_model'] >= 5)})")
    print(f"  whole pytest processes: cold {best['proc_cold']:.2f}s; new model {best['proc_new_model']:.2f}s "
          f"= {result['ratio_proc_new_model']:.1f}x (target >= 2.5: {_ok(result['ratio_proc_new_model'] >= 2.5)}); "
          f"warm re-run {best['proc_warm']:.2f}s = {result['ratio_proc_warm']:.1f}x "
          f"(target >= 3: {_ok(result['ratio_proc_warm'] >= 3)})")
    print(f"  the same processes in CPU time: cold {best['proc_cold_cpu']:.2f}s, new model "
          f"{best['proc_new_model_cpu']:.2f}s = {result['cpu_ratio_proc_new_model']:.1f}x, warm "
          f"{best['proc_warm_cpu']:.2f}s = {result['cpu_ratio_proc_warm']:.1f}x")
    print(f"  new model's predictions from cached inputs equal an uncached run's: {agree}")
    return result


def _ok(flag: bool) -> str:
    return "ok" if flag else "LOW"


# ---------------------------------------------------------------------------------- large JPEGs

JPEG_SIZES = ((1600, 1200), (2048, 1536), (2592, 1944))  # 1.9, 3.1 and 5.0 MP


def large_jpeg(index: int, path: Path) -> None:
    """A photo-like JPEG: smooth shading, shapes with soft edges, sensor noise; quality 90."""
    rng = np.random.default_rng(50_000 + index)
    width, height = JPEG_SIZES[index % len(JPEG_SIZES)]
    small = Image.new("RGB", (width // 4, height // 4), tuple(int(v) for v in rng.integers(40, 200, 3)))
    draw = ImageDraw.Draw(small)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = int(rng.integers(0, width // 4 - 20)), int(rng.integers(0, height // 4 - 20))
        x1, y1 = x0 + int(rng.integers(10, width // 8)), y0 + int(rng.integers(10, height // 8))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    image = small.filter(ImageFilter.GaussianBlur(2)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(image).astype(np.int16) + rng.normal(0, 4, (height, width, 3)).astype(np.int16)
    partial = path.with_name(path.name + ".part")
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(partial, format="JPEG", quality=90)
    os.replace(partial, path)


def _make_jpegs(job) -> None:
    root, items = job
    for index, name in items:
        if not (root / name).exists():
            large_jpeg(index, root / name)


def large_jpeg_case(root: Path, data_root: Path, count: int, side: int, rounds: int) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    images = data_root / "jpegs"
    images.mkdir(exist_ok=True)
    names = [f"jpegs/photo_{i:04d}.jpg" for i in range(count)]
    started = time.perf_counter()
    workers = tp.cores()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_make_jpegs, [(data_root, [(i, names[i]) for i in range(w, count, workers)])
                                    for w in range(workers)]))
    made = time.perf_counter() - started
    directory = root / "jpeg"
    directory.mkdir()
    manifest = directory / "dev.csv"
    tp.write_manifest(manifest, [(n, os.path.relpath(data_root / n, directory), tp.CLASSES[i % 3])
                                 for i, n in enumerate(names)])
    exact = tp.erran_table(root / f"model{side}.onnx", manifest, directory)
    fast = {**exact, "preprocess": {**exact["preprocess"], "decode": "fast"}}
    tp.write_erran_toml(directory, exact)
    runs: dict[str, list[dict]] = {"exact": [], "fast": []}
    for _ in range(rounds):
        for name, table in (("exact", exact), ("fast", fast)):
            runs[name].append(evaluate_timed(directory, table, None))
    best = {name: min(r["seconds"] for r in values) for name, values in runs.items()}
    same = float(np.mean(np.array(runs["exact"][0]["pred"]) == np.array(runs["fast"][0]["pred"])))
    megapixels = float(np.mean([w * h for w, h in JPEG_SIZES]) / 1e6)
    size_mb = sum((data_root / n).stat().st_size for n in names) / 2**20
    result = {"images": count, "exact_s": best["exact"], "fast_s": best["fast"], "speedup": best["exact"] / best["fast"],
              "unchanged": same, "megapixels": megapixels, "made_s": made, "size_mb": size_mb}
    print(f"\n[{side}x{side}] {count} large JPEGs (1.9/3.1/5.0 MP, {size_mb:.0f} MB, made in {made:.0f}s), "
          f"evaluate() best of {rounds}: decode = \"exact\" {best['exact']:.2f}s ({count / best['exact']:.0f} img/s), "
          f"\"fast\" {best['fast']:.2f}s ({count / best['fast']:.0f} img/s): {result['speedup']:.1f}x faster; "
          f"predictions unchanged on {same:.1%} of the images")
    return result


# ---------------------------------------------------------------------------------- Ray


def ray_case(root: Path, manifest: Path, side: int, rounds: int) -> dict | None:
    """engine = "ray" on a local Ray instance against the local runner on the same images, and
    the costs that predict its throughput on N workers."""
    try:
        import ray
    except ImportError:
        print("\nRay: not installed (pip install 'pytest-erran[ray]'): skipped")
        return None
    import pandas as pd

    from pytest_erran.inference.onnx_model import OnnxModel
    from pytest_erran.inference.ray_engine import BatchPredictor

    directory = root / f"ray{side}"
    directory.mkdir()
    table = tp.erran_table(root / f"model{side}.onnx", manifest, directory)
    cpus = tp.cores()
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - started
    try:
        local, remote, agree = [], [], True
        for _ in range(rounds):
            a = evaluate_timed(directory, table, None)
            b = evaluate_timed(directory, {**table, "engine": "ray", "ray_workers": cpus}, None)
            local.append(a["seconds"]), remote.append(b["seconds"])
            agree &= a["pred"] == b["pred"]
        # Per-image cost in one actor (decode + inference on one core), and a job's fixed cost:
        # the time to a first result of a one-block job.
        model = OnnxModel(root / f"model{side}.onnx")
        prep = model.preprocess(table["preprocess"])
        predictor = BatchPredictor(str(model.path), model.providers, prep, 16)
        paths = pd.read_csv(manifest)["image"].map(lambda p: str((manifest.parent / p).resolve())).tolist()[:256]
        block = {"index": np.arange(len(paths)), "path": np.array(paths, object), "source": np.array(paths, object)}
        started = time.perf_counter()
        predictor(block)
        per_image_ms = (time.perf_counter() - started) / len(paths) * 1e3
        small = {**table, "engine": "ray", "ray_workers": 1}
        tiny = directory / "tiny.csv"
        tp.write_manifest(tiny, [(f"t{i}", os.path.relpath(p, directory), tp.CLASSES[i % 3]) for i, p in
                                 enumerate(paths[:16])])
        fixed = min(evaluate_timed(directory, {**small, "data": tiny.name}, None)["seconds"] for _ in range(rounds))
    finally:
        ray.shutdown()
    n = len(a["pred"])
    result = {"images": n, "local_s": min(local), "ray_s": min(remote), "init_s": init_s, "agree": agree,
              "per_image_ms": per_image_ms, "job_fixed_s": fixed, "workers": cpus,
              "overhead_s": min(remote) - min(local)}
    print(f"\n[{side}x{side}] engine = \"ray\", local Ray instance with {cpus} CPUs (ray.init {init_s:.1f}s, "
          f"once), {n} images, best of {rounds}: local runner {min(local):.2f}s, Ray {min(remote):.2f}s "
          f"({cpus} actors): overhead {result['overhead_s']:+.2f}s; predictions identical: {agree}")
    print(f"  one actor: {per_image_ms:.2f} ms per image (decode + inference, one core); a job's fixed cost "
          f"(16 images, one actor) {fixed:.2f}s; so N workers give about N x {1000 / per_image_ms:.0f} img/s "
          f"after {fixed:.1f}s")
    return result
