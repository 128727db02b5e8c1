"""A model that fails inside onnxruntime while running stops the run with the images at fault.

onnxruntime says what failed (a Reshape that cannot hold, an index out of range) but not on
which image. The failing batch is run again one image at a time: an image that fails alone is
named; a batch whose images all run alone is a batch-size problem, and the message says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ErranError
from .onnx_model import ModelRunFailed, OnnxModel

SHOWN_IMAGES = 3


def run_or_explain(model: OnnxModel, x: np.ndarray, paths: Sequence[str], sources: Sequence[str]) -> list:
    """model.run(x) for the batch of images `paths`; an ErranError naming them if it fails."""
    try:
        return model.run(x)
    except ModelRunFailed as failed:
        batch_error = failed
    if len(x) > 1:
        shown = ", ".join(paths[:SHOWN_IMAGES]) + (" ..." if len(paths) > SHOWN_IMAGES else "")
        for i in range(len(x)):
            try:
                model.run(x[i:i + 1])
            except ModelRunFailed as alone:
                raise ErranError(f"{model.path}: onnxruntime failed on image {paths[i]} ({sources[i]}), "
                                 f"found by running its batch of {len(x)} ({shown}) one image at a "
                                 f"time: {alone}; fix the model, or the image (remove its row if it "
                                 "does not belong in the dev set)") from None
        raise ErranError(f"{model.path}: onnxruntime failed on a batch of {len(x)} images ({shown}) "
                         f"that each run alone: {batch_error}; the model does not take batches of "
                         f"{len(x)}: set batch_size = 1 in the config (or --erran-batch-size 1), or "
                         "export it with a dynamic batch axis") from None
    raise ErranError(f"{model.path}: onnxruntime failed on image {paths[0]} ({sources[0]}): "
                     f"{batch_error}; fix the model, or the image (remove its row if it does not "
                     "belong in the dev set)") from None
