"""Where the model runs: the local pipelined runner (with the input cache), or a Ray Data job.

Both yield the same `Batch`es in image order, so the tasks, matching, buckets, baselines and
reports never know which one ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

from .batches import Batch, run_batches
from ..errors import ErranError
from .images import NATIVE, Preprocess
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

    def batches(self, model: OnnxModel, paths: Sequence[str], sources: Sequence[str], prep: Preprocess,
                progress: Callable[[int, int], None] | None = None,
                observe: Callable[[int, object], None] | None = None) -> Iterator[Batch]:
        """`progress(done, total)` after each batch; `observe(i, image)` sees each image the local
        runner decodes (Ray's workers decode remotely, and cached inputs are not decoded)."""
        if self.kind == "ray":
            from .ray_engine import ray_batches

            if prep.per_image:
                raise ErranError(f"{model.path}: engine = \"ray\" runs batches of one common input size; "
                                 "this model takes each image at its own size or without a batch "
                                 "axis: use engine = \"local\"")

            for batch in ray_batches(model, paths, sources, prep, self.batch_size, self.ray_address,
                                     self.ray_workers):
                if progress is not None:
                    progress(batch.stop, len(paths))
                yield batch
            return
        # images fed at their own sizes have no common row size to cache
        cached = nullcontext(None) if prep.resize == NATIVE else self.inputs.rows(self.dataset, prep, paths)
        with cached as rows:
            yield from run_batches(model, paths, sources, prep, self.batch_size, self.threads, rows,
                                   progress, observe)
