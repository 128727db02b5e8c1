"""Where the model runs: the local pipelined runner (with the input cache), or a Ray Data job.

Both yield the same `Batch`es in image order, so the tasks, matching, buckets, baselines and
reports never know which one ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .batches import Batch, run_batches
from .images import Preprocess
from .input_cache import InputCache
from .onnx_model import OnnxModel

ENGINES = ("local", "ray")


@dataclass
class Engine:
    batch_size: int = 16
    threads: int = 1  # decode threads of the local runner
    inputs: InputCache = field(default_factory=lambda: InputCache(None, 0))
    dataset: str = ""  # names the dev set in the input cache (its path and split)
    kind: str = "local"
    ray_address: str | None = None
    ray_workers: int | None = None

    def batches(self, model: OnnxModel, paths: Sequence[str], sources: Sequence[str],
                prep: Preprocess) -> Iterator[Batch]:
        if self.kind == "ray":
            from .ray_engine import ray_batches

            yield from ray_batches(model, paths, sources, prep, self.batch_size, self.ray_address,
                                   self.ray_workers)
            return
        with self.inputs.rows(self.dataset, prep, paths) as rows:
            yield from run_batches(model, paths, sources, prep, self.batch_size, self.threads, rows)
