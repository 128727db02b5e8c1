"""engine = "ray": decode and inference as a Ray Data job, for dev sets beyond one machine.

The image paths become a dataset whose blocks hold whole local batches (the boundaries the local
runner uses), `map_batches` sends them to a pool of actors each holding one onnxruntime session,
and each actor hands back one row per local batch: the session's outputs and the images' own
sizes, exactly the `Batch` the local runner yields. The driver puts them back in image order, so
everything after prediction (matching, buckets, baselines, reports) is unchanged.

The images (and the model file) must be readable from every worker at the same path: a shared
file system, or a path Ray's workers mount. Ray is an optional extra: pip install 'pytest-erran[ray]'.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import ErranError
from .batches import Batch
from .images import Preprocess, decode_into
from .onnx_model import OnnxModel

BATCHES_PER_ACTOR = 4  # blocks per actor: enough to balance the load, few enough to amortise a task


class BatchPredictor:
    """A Ray actor: one onnxruntime session; decodes a block's images and runs each local batch."""

    def __init__(self, model_path: str, providers: list[str], prep: Preprocess, batch_size: int):
        self.model = OnnxModel(Path(model_path), providers=providers)
        self.prep, self.batch_size = prep, batch_size
        self.buffer = prep.buffer(batch_size)

    def __call__(self, block: dict) -> dict:
        try:
            return self.predict(block)
        except ErranError as e:  # bad input: handed back as it is, Ray would wrap it beyond recognition
            return {"start": np.array([-1], np.int64), "stop": np.array([-1], np.int64),
                    "sizes": _objects([None]), "outputs": _objects([str(e)])}

    def predict(self, block: dict) -> dict:
        index, paths, sources = block["index"], block["path"], block["source"]
        starts, stops, sizes, outputs = [], [], [], []
        # The local runner's batches: rows of one batch number (a block holds whole ones; should
        # Ray split a block, its part of a batch still runs as one).
        numbers = np.asarray(index) // self.batch_size
        bounds = [0, *(np.flatnonzero(np.diff(numbers)) + 1).tolist(), len(index)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            image_sizes = np.zeros((hi - lo, 2), np.int64)
            for row in range(lo, hi):
                image_sizes[row - lo] = decode_into(str(paths[row]), self.buffer[row - lo], self.prep,
                                                    str(sources[row]))
            outputs.append(self.model.run(self.prep.to_input(self.buffer[: hi - lo])))
            starts.append(int(index[lo]))
            stops.append(int(index[hi - 1]) + 1)
            sizes.append(image_sizes)
        return {"start": np.array(starts, np.int64), "stop": np.array(stops, np.int64),
                "sizes": _objects(sizes), "outputs": _objects(outputs)}


def _predictor(model_path: str, providers: list[str], prep: Preprocess, batch_size: int) -> type:
    """BatchPredictor with its arguments bound: Ray ships the class itself to the workers (no
    constructor arguments left in the object store, which Ray warns about)."""

    class Predictor(BatchPredictor):
        def __init__(self):
            super().__init__(model_path, providers, prep, batch_size)

    return Predictor


def _objects(values: list) -> np.ndarray:
    """A column of Python objects (arrays of any shape, lists of outputs), one per local batch."""
    column = np.empty(len(values), object)
    column[:] = values
    return column


def ray_batches(model: OnnxModel, paths: Sequence[str], sources: Sequence[str], prep: Preprocess,
                batch_size: int, address: str | None, workers: int | None) -> Iterator[Batch]:
    """The model's outputs batch by batch, in image order, computed by Ray actors."""
    try:
        import pandas as pd
        import ray
    except ImportError:
        raise ErranError('engine = "ray" needs Ray: pip install \'pytest-erran[ray]\' (or set '
                         'engine = "local")') from None
    fixed = model.fixed_batch()
    if fixed is not None:  # the model decides, as in the local runner
        batch_size = fixed
    started = _connect(ray, address)
    try:
        count = len(paths)
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        batches = math.ceil(count / batch_size)
        per_block = max(1, math.ceil(batches / (actors * BATCHES_PER_ACTOR))) * batch_size
        frame = pd.DataFrame({"index": np.arange(count), "path": list(paths), "source": list(sources)})
        blocks = [frame.iloc[lo:lo + per_block] for lo in range(0, count, per_block)]
        dataset = ray.data.from_pandas(blocks).map_batches(
            _predictor(str(model.path), model.providers, prep, batch_size), batch_size=None,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(actors, len(blocks))),
            num_cpus=1)
        yield from in_order(_rows(dataset), count)
    finally:
        if started:
            ray.shutdown()


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at `address` (else RAY_ADDRESS, else a new local instance); True when
    this call started Ray, so that it also stops it."""
    import logging

    ray.data.DataContext.get_current().enable_progress_bars = False  # (imports ray.data first)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its progress lines are not ours to print
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, logging_level="ERROR")
    except Exception as e:  # noqa: BLE001 - a cluster that cannot be reached: say which
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ErranError(f'engine = "ray": cannot start or join {where}: {e}; check `ray_address` '
                         "or RAY_ADDRESS") from None
    return True


def _rows(dataset) -> Iterator[dict]:
    """The job's rows as they come (an actor's ErranError comes back as a row, see
    BatchPredictor); any other failure of the job is one line."""
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for k in range(len(batch["start"])):
                yield {name: batch[name][k] for name in ("start", "stop", "sizes", "outputs")}
    except Exception as e:  # noqa: BLE001 - a worker lost, a model that fails in onnxruntime...
        summary = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ErranError(f'engine = "ray": the Ray job failed: {type(e).__name__}: {summary}; '
                         'see the Ray logs, or run with engine = "local"') from None


def in_order(rows: Iterator[dict], count: int) -> Iterator[Batch]:
    """Batches in image order, whatever order the actors finish in."""
    waiting: dict[int, dict] = {}
    following = 0
    for row in rows:
        if row["start"] < 0:
            raise ErranError(str(row["outputs"]))
        waiting[int(row["start"])] = row
        while following in waiting:
            row = waiting.pop(following)
            yield Batch(following, int(row["stop"]), list(row["outputs"]), np.asarray(row["sizes"], np.int64))
            following = int(row["stop"])
    if following != count or waiting:
        raise ErranError(f'engine = "ray": the Ray job returned {following} of {count} images; run again '
                         'or use engine = "local"')
