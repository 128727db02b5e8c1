"""Decode images into preallocated uint8 batch buffers and turn a batch into model input."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ErranError

LETTERBOX_FILL = 114  # the gray Ultralytics exports are trained with


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes one row of the model's input."""

    width: int
    height: int
    channels: int  # 1 (grayscale) or 3 (RGB)
    layout: str  # "NCHW" or "NHWC"
    dtype: str  # "float32", "float16" or "uint8"
    resize: str = "stretch"  # or "letterbox"
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def key(self) -> str:
        """Identifies the preprocessing in the prediction cache key."""
        return repr(self)

    def buffer(self, batch_size: int) -> np.ndarray:
        return np.empty((batch_size, self.height, self.width, self.channels), np.uint8)

    def to_input(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 NHWC pixels -> the model's input array, normalised in one pass into a new array
        (so the pixel buffer is free again)."""
        nchw = self.layout == "NCHW"
        if self.dtype == "uint8":
            return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2) if nchw else pixels)
        std = np.asarray(self.std, np.float32)
        gain = np.float32(self.scale) / std
        offset = -np.asarray(self.mean, np.float32) / std
        n, h, w, c = pixels.shape
        if nchw:
            # Per-channel constants broadcast over H and W keep numpy's inner loop along W;
            # broadcast along a last axis of 3 it would run 3 elements at a time (7x slower).
            source = pixels.transpose(0, 3, 1, 2)
            gain, offset = gain.reshape(-1, 1, 1), offset.reshape(-1, 1, 1)
        else:
            source = pixels.reshape(n, h, w * c)  # rows of W*C values: constants tiled W times
            gain = np.tile(np.broadcast_to(gain, (c,)), w)
            offset = np.tile(np.broadcast_to(offset, (c,)), w)
        x = np.empty(source.shape, np.float32)
        np.multiply(source, gain, out=x)
        x += offset
        if not nchw:
            x = x.reshape(n, h, w, c)
        return x.astype(np.float16) if self.dtype == "float16" else x


@contextmanager
def open_image(path: str, source: str):
    """The image at `path`; any failure to read it, then or while decoding it in the `with`
    block, is an error naming it and its row: never an image skipped silently."""
    try:
        with Image.open(path) as image:
            yield eight_bit(image)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        # PIL's "cannot identify image file '<path>'" would name the path a second time
        reason = "not an image format PIL can read" if isinstance(e, UnidentifiedImageError) else e
        if Path(source).resolve() == Path(path):  # an ImageFolder image is its own source
            raise ErranError(f"{source}: cannot read the image: {reason}; fix, replace or remove "
                             "the file") from None
        raise ErranError(f"{source}: cannot read image {path}: {reason}; fix or replace the file, "
                         "or remove its row") from None


def eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit gray images scaled to 8 bits: PIL's convert() would clip them at 255,
    turning most of a 16-bit inspection image white."""
    if image.mode.startswith("I;16") or image.mode == "I":
        pixels = np.asarray(image).astype(np.int64)
        if image.mode == "I" and pixels.max(initial=0) <= 255:
            return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "L")
        return Image.fromarray((pixels.clip(0, 65535) >> 8).astype(np.uint8), "L")
    return image


def decode_into(path: str, out: np.ndarray, prep: Preprocess, source: str,
                observe: Callable[[Image.Image], None] | None = None) -> tuple[int, int]:
    """Decode `path` into `out` ([H, W, C] uint8) resized for the model; return the image's own
    (width, height). `observe`, when given, sees the decoded image first (as RGB, full size), so
    that measuring it costs no second decode."""
    with open_image(path, source) as image:
        if observe is not None:
            if image.mode != "RGB":
                image = image.convert("RGB")
            observe(image)
        mode = "L" if prep.channels == 1 else "RGB"
        if image.mode != mode:
            image = image.convert(mode)
        size = image.size
        target = (prep.width, prep.height)
        if prep.resize == "letterbox":
            _letterbox(image, out, target)
        else:
            if size != target:
                image = image.resize(target, Image.BILINEAR)
            out[...] = np.asarray(image).reshape(out.shape)
        return size


def _letterbox(image: Image.Image, out: np.ndarray, target: tuple[int, int]) -> None:
    _, new_w, new_h, left, top = letterbox_geometry(image.size, target)
    out[...] = LETTERBOX_FILL
    if image.size != (new_w, new_h):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    out[top:top + new_h, left:left + new_w] = np.asarray(image).reshape(new_h, new_w, out.shape[2])


def letterbox_geometry(
    image_size: tuple[int, int], input_size: tuple[int, int]
) -> tuple[float, int, int, int, int]:
    """(scale, new_w, new_h, left, top) of an Ultralytics-style centred letterbox.

    The image (W, H) is resized by scale = min(w / W, h / H) to (round(W * scale),
    round(H * scale)) and pasted into the (w, h) input at (left, top), the rest gray 114.
    Rounding follows Ultralytics' LetterBox (Python round, pad split with a -0.1 nudge).
    """
    (width, height), (in_w, in_h) = check_size(image_size, "image_size"), check_size(input_size, "input_size")
    scale = min(in_w / width, in_h / height)
    new_w, new_h = int(round(width * scale)), int(round(height * scale))
    left = int(round((in_w - new_w) / 2 - 0.1))
    top = int(round((in_h - new_h) / 2 - 0.1))
    return scale, new_w, new_h, left, top


def check_size(size, what: str) -> tuple[float, float]:
    values = tuple(size)
    if len(values) != 2 or min(values) <= 0:
        raise ValueError(f"{what} must be (width, height) with both positive, got {size!r}")
    return values
