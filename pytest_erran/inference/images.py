"""Decode images into preallocated uint8 batch buffers and turn a batch into model input."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ErranError
from .image_headers import header_size

LETTERBOX_FILL = 114  # the gray Ultralytics exports are trained with
# How an image is brought to the model's input size.
STRETCH, LETTERBOX, CENTER_CROP, NATIVE = "stretch", "letterbox", "center_crop", "native"
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
EXIF_MODES = ("apply", "ignore")
# Where PIL finds an orientation (a TIFF keeps it among its own tags instead)
ORIENTATION_SOURCES = {"exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif"}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes one row of the model's input."""

    width: int  # 0 with resize "native": each image keeps its own size
    height: int
    channels: int  # 1 (grayscale) or 3 (RGB)
    layout: str  # "NCHW", "NHWC", or "flat" (one row of H*W*C values per image, row-major HWC)
    dtype: str  # "float32", "float16" or "uint8"
    resize: str = STRETCH  # or LETTERBOX, CENTER_CROP, NATIVE
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    unbatched: bool = False  # the model takes one image [C, H, W] with no batch axis
    exif: str = "apply"  # "apply": rotate by the EXIF orientation first; "ignore": pixels as stored
    decode: str = "exact"  # or "fast": JPEGs decoded at 1/2, 1/4 or 1/8 scale (draft) before the resize

    @property
    def per_image(self) -> bool:
        """Images go to the model one at a time: they have no common size, or no batch axis."""
        return self.unbatched or self.resize == NATIVE

    def key(self) -> str:
        """Identifies the preprocessing in the prediction cache key."""
        return repr(self)

    def buffer(self, batch_size: int) -> np.ndarray:
        """Pixels of one batch; with resize "native" each image brings its own (decode_native)."""
        return np.empty((batch_size, self.height, self.width, self.channels), np.uint8)

    def to_input(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 NHWC pixels -> the model's input array, normalised in one pass into a new array
        (so the pixel buffer is free again)."""
        if self.layout == "flat":  # row-major over (row, column, channel), as numpy flattens an image
            return self._normalised(pixels, nchw=False).reshape(len(pixels), -1)
        return self._normalised(pixels, nchw=self.layout == "NCHW")

    def _normalised(self, pixels: np.ndarray, nchw: bool) -> np.ndarray:
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
def open_image(path: str, source: str, exif: str = "apply"):
    """The image at `path`, upright by its EXIF orientation when `exif` is "apply"; any failure
    to read it, then or while decoding it in the `with` block, is an error naming it and its
    row: never an image skipped silently."""
    try:
        with Image.open(path) as image:
            turn = UPRIGHT.get(orientation(image)) if exif == "apply" else None
            image = eight_bit(image)
            yield image.transpose(turn) if turn is not None else image
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # PIL's "cannot identify image file '<path>'" would name the path a second time
        reason = "not an image format PIL can read" if isinstance(e, UnidentifiedImageError) else e
        if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            reason = _too_many_pixels(e)
        if Path(source).resolve() == Path(path):  # an ImageFolder image is its own source
            raise ErranError(f"{source}: cannot read the image: {reason}; fix, replace or remove "
                             "the file") from None
        raise ErranError(f"{source}: cannot read image {path}: {reason}; fix or replace the file, "
                         "or remove its row") from None


def orientation(image: Image.Image) -> int:
    """The image's EXIF orientation (1 = upright; 2-8 flip and/or turn it), read from its header."""
    if image.format != "TIFF" and not ORIENTATION_SOURCES & image.info.keys():
        return 1  # cheap: PIL's getexif() costs ~80 us, and for a PNG decodes every pixel
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block is not worth failing the image for
        return 1
    return value if isinstance(value, int) and value in UPRIGHT else 1


def image_size(path: str, source: str, exif: str = "apply") -> tuple[int, int]:
    """(width, height) of the image as it is decoded (turned by its EXIF orientation when
    `exif` is "apply"), read from its header alone: its first bytes for PNG and JPEG
    (image_headers.py), else PIL. Refused, as PIL refuses, above Image.MAX_IMAGE_PIXELS."""
    found = header_size(path)
    if found is None:
        with open_image_header(path, source) as image:
            (width, height), turn = image.size, orientation(image)
    else:
        width, height, turn = found
        limit = Image.MAX_IMAGE_PIXELS
        if limit and width * height > limit:
            raise ErranError(f"{source}: cannot read the size of {path}: {_too_many(width * height)}; "
                             "fix or replace the file")
    if exif == "apply" and turn in (5, 6, 7, 8):  # a quarter turn
        width, height = height, width
    return width, height


@contextmanager
def open_image_header(path: str, source: str):
    """The image at `path`, opened (its header read) but not decoded."""
    try:
        with Image.open(path) as image:
            yield image
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        reason = "not an image format PIL can read" if isinstance(e, UnidentifiedImageError) else e
        if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            reason = _too_many_pixels(e)
        raise ErranError(f"{source}: cannot read the size of {path}: {reason}; fix or replace the "
                         "file") from None


def _too_many_pixels(error: Exception) -> str:
    """Pillow's decompression-bomb message, said in terms of the setting that decides it."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return _too_many(int(found.group(1)) if found else None)


def _too_many(pixels: int | None) -> str:
    shown = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
    return (f"{shown}, more than max_image_pixels = {Image.MAX_IMAGE_PIXELS} (a guard against "
            "decompression bombs); if the image is genuine, raise max_image_pixels in the config "
            "(0: no limit)")


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
    (width, height). `observe`, when given, sees the decoded image first (as RGB, full size, before
    any reduced-scale decode), so that measuring it costs no second decode."""
    with open_image(path, source, prep.exif) as image:
        if observe is not None:
            if image.mode != "RGB":
                image = image.convert("RGB")
            observe(image)
        size = image.size  # the image's own, even when decoded at a reduced scale
        target = (prep.width, prep.height)
        mode = "L" if prep.channels == 1 else "RGB"
        if prep.decode == "fast":
            draft_to(image, mode, _resized_size(prep.resize, size, target))
        image = image.convert(mode)
        if prep.resize == LETTERBOX:
            _letterbox(image, out, target, size)
        elif prep.resize == CENTER_CROP:
            _center_crop(image, out, target, size)
        else:
            if image.size != target:
                image = image.resize(target, Image.BILINEAR)
            out[...] = np.asarray(image).reshape(out.shape)
        return size


def draft_to(image: Image.Image, mode: str, size: tuple[int, int]) -> None:
    """Let libjpeg decode a JPEG at the smallest of 1/2, 1/4, 1/8 scale that still covers `size`
    (in the DCT domain: most of a large image's decode time is spent on pixels the resize throws
    away). Other formats ignore it."""
    if image.format == "JPEG":
        image.draft(mode, size)


def _letterbox(image: Image.Image, out: np.ndarray, target: tuple[int, int], size: tuple[int, int]) -> None:
    """`size`: the image's own (width, height), which a reduced-scale decode no longer shows."""
    _, new_w, new_h, left, top = letterbox_geometry(size, target)
    out[...] = LETTERBOX_FILL
    if image.size != (new_w, new_h):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    out[top:top + new_h, left:left + new_w] = np.asarray(image).reshape(new_h, new_w, out.shape[2])


def decode_native(path: str, prep: Preprocess, source: str, observe=None) -> np.ndarray:
    """`path` decoded at its own size, [H, W, C] uint8: for models that resize inside the graph.
    `observe`, when given, sees the decoded image first (RGB), as for decode_into."""
    with open_image(path, source, prep.exif) as image:
        if observe is not None:
            image = image.convert("RGB")
            observe(image)
        image = image.convert("L" if prep.channels == 1 else "RGB")
        return np.asarray(image).reshape(image.size[1], image.size[0], prep.channels)


def _resized_size(resize: str, size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The size the image is resized to before it is padded or cropped into the input."""
    if resize == LETTERBOX:
        return letterbox_geometry(size, target)[1:3]
    if resize == CENTER_CROP:
        return center_crop_geometry(size, target)[1:3]
    return target


def _center_crop(image: Image.Image, out: np.ndarray, target: tuple[int, int], size: tuple[int, int]) -> None:
    """`size`: the image's own (width, height), which a reduced-scale decode no longer shows."""
    scale, new_w, new_h, left, top = center_crop_geometry(size, target)
    if image.size != (new_w, new_h):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    pixels = np.asarray(image).reshape(new_h, new_w, out.shape[2])
    out[...] = pixels[top:top + target[1], left:left + target[0]]


def center_crop_geometry(
    image_size: tuple[int, int], input_size: tuple[int, int]
) -> tuple[float, int, int, int, int]:
    """(scale, new_w, new_h, left, top) of a resize that covers the input, then a centred crop.

    The image (W, H) is resized by scale = max(w / W, h / H), so that one side fits the input
    exactly and the other (truncated to whole pixels, as torchvision's Resize(size) does)
    overflows it, then cropped at (left, top) = the overflow halved and rounded. For a square
    input this is torchvision's Resize(s) + CenterCrop(s): Ultralytics' classify preprocessing.
    """
    (width, height), (in_w, in_h) = check_size(image_size, "image_size"), check_size(input_size, "input_size")
    if in_w / width >= in_h / height:
        scale, new_w, new_h = in_w / width, int(in_w), max(int(in_h), int(height * in_w / width))
    else:
        scale, new_w, new_h = in_h / height, max(int(in_w), int(width * in_h / height)), int(in_h)
    left, top = int(round((new_w - in_w) / 2)), int(round((new_h - in_h) / 2))
    return scale, new_w, new_h, left, top


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
