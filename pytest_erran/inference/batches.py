"""Run a model over images batch by batch: decode in threads while onnxruntime works on the previous batch."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from .images import NATIVE, Preprocess, decode_into, decode_native
from .onnx_model import OnnxModel
from .run_failures import run_or_explain

if TYPE_CHECKING:
    from .input_cache import InputRows

SLOTS = 3  # batch buffers: one being fed to the model, two being decoded ahead


@dataclass
class Batch:
    start: int
    stop: int
    outputs: list  # the session's outputs, in model output order
    image_sizes: np.ndarray  # [stop - start, 2] each image's own (width, height)


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_batches(model: OnnxModel, paths: Sequence[str], sources: Sequence[str], prep: Preprocess,
                batch_size: int, threads: int, inputs: "InputRows | None" = None,
                progress: Callable[[int, int], None] | None = None,
                observe: Callable[[int, object], None] | None = None) -> Iterator[Batch]:
    """Yield the model's outputs batch by batch. Memory holds SLOTS batches of pixels, whatever
    the number of images; decode threads fill the next batches while the model runs. With
    `inputs` (the input cache), a cached row is copied instead of decoded, and a decoded one
    stored. `progress(done, total)` is called after each batch the model has run;
    `observe(i, image)`, when given, sees each decoded image in its decode thread (to measure
    it from the same decode)."""
    fixed = model.fixed_batch()
    if fixed is not None:  # the model decides: its outputs may not even have a batch axis
        batch_size = fixed
    if prep.per_image:  # images at their own sizes, or a model without a batch axis
        batch_size = 1
    count = len(paths)
    buffers = [prep.buffer(batch_size) for _ in range(SLOTS)]
    sizes = [np.zeros((batch_size, 2), np.int64) for _ in range(SLOTS)]
    starts = range(0, count, batch_size)

    def decode(i: int, slot: int, row: int) -> None:
        seen = None if observe is None else (lambda image: observe(i, image))
        if prep.resize == NATIVE:  # a buffer of the image's own size (batches of one); not cached
            buffers[slot] = decode_native(paths[i], prep, sources[i], seen)[None]
            sizes[slot][row] = buffers[slot].shape[2], buffers[slot].shape[1]
            return
        out = buffers[slot][row]
        size = inputs.get(i, out) if inputs is not None else None
        if size is None:
            size = decode_into(paths[i], out, prep, sources[i], seen)
            if inputs is not None:
                inputs.put(i, out, size)
        sizes[slot][row] = size

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="erran-decode") as pool:
        pending: deque = deque()

        def submit(number: int) -> None:
            start = starts[number]
            stop = min(start + batch_size, count)
            slot = number % SLOTS
            futures = [pool.submit(decode, i, slot, i - start) for i in range(start, stop)]
            pending.append((start, stop, slot, futures))

        if progress is not None:
            progress(0, count)
        ahead = min(SLOTS - 1, len(starts))
        for number in range(ahead):
            submit(number)
        next_number = ahead
        try:
            while pending:
                start, stop, slot, futures = pending.popleft()
                for future in futures:
                    future.result()
                # The slot is refilled only after this batch's model.run returns: SLOTS > batches ahead.
                x = prep.to_input(buffers[slot][: stop - start])
                image_sizes = sizes[slot][: stop - start].copy()
                if next_number < len(starts):
                    submit(next_number)
                    next_number += 1
                outputs = run_or_explain(model, x, paths[start:stop], sources[start:stop])
                if progress is not None:
                    progress(stop, count)
                yield Batch(start, stop, outputs, image_sizes)
        finally:
            for _, _, _, futures in pending:
                for future in futures:
                    future.cancel()
