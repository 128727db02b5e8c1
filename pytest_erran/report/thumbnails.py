"""Thumbnails for the HTML gallery: an image with boxes drawn on it, as a small JPEG data URI.

At most MAX_SIDE pixels on the longer side and about MAX_BYTES encoded, so the file size has a
bound; deterministic (same image, same marks, same Pillow: same bytes). A box too small to see
in a thumbnail of the whole image gets a zoomed crop around it instead.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from ..inference.images import open_image

MAX_SIDE = 256
MAX_BYTES = 40_000  # before base64; a larger JPEG is encoded again at a lower quality
QUALITIES = (85, 60, 40)
MIN_BOX = 14  # thumbnail pixels: a smaller box is shown in a zoomed crop
ZOOM_CONTEXT = 4  # a crop spans this many times the marked boxes
GROUND_TRUTH = "#ff3b30"
PREDICTION = "#0a84ff"


@dataclass(frozen=True)
class Mark:
    """A box to draw, in the image's pixels, with a short label above it (or below: `below`,
    so that two marks on the same spot keep their labels apart)."""

    box: tuple[float, float, float, float]
    colour: str
    text: str = ""
    below: bool = False


@dataclass(frozen=True)
class Thumbnail:
    uri: str  # data:image/jpeg;base64,...
    width: int
    height: int
    zoomed: bool  # a crop around the marks, not the whole image


def thumbnail(path: str, source: str, marks: tuple[Mark, ...] = (), exif: str = "apply") -> Thumbnail:
    with open_image(path, source, exif) as image:
        image = image.convert("RGB")
        image.load()
    region = _region(image.size, marks)
    zoomed = region != (0, 0, *image.size)
    if zoomed:
        image = image.crop(region)
    scale = _scale(image.size, bool(marks))
    if scale != 1:
        size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        image = image.resize(size, Image.NEAREST if scale > 1 else Image.BILINEAR)
    if marks:
        _draw(image, marks, region[:2], scale)
    return Thumbnail(_encode(image, bool(marks)), image.size[0], image.size[1], zoomed)


def _scale(size: tuple[int, int], marked: bool) -> float:
    longer = max(size)
    if longer > MAX_SIDE:
        return MAX_SIDE / longer
    if marked and longer * 2 <= MAX_SIDE:  # room to draw boxes and labels legibly: blow up
        return float(MAX_SIDE // longer)
    return 1.0


def _region(size: tuple[int, int], marks: tuple[Mark, ...]) -> tuple[int, int, int, int]:
    """The whole image, or a crop around the marks when they would be too small to see."""
    width, height = size
    if not marks:
        return 0, 0, width, height
    x1 = min(m.box[0] for m in marks)
    y1 = min(m.box[1] for m in marks)
    x2 = max(m.box[2] for m in marks)
    y2 = max(m.box[3] for m in marks)
    whole = min(1.0, MAX_SIDE / max(width, height))
    if max(x2 - x1, y2 - y1) * whole >= MIN_BOX:
        return 0, 0, width, height
    side = max(ZOOM_CONTEXT * max(x2 - x1, y2 - y1), MAX_SIDE / 2)
    side = min(side, width, height)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + int(round(side)), top + int(round(side))


def _font():
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def _draw(image: Image.Image, marks: tuple[Mark, ...], origin: tuple[int, int], scale: float) -> None:
    draw = ImageDraw.Draw(image)
    font = _font()
    width, height = image.size
    for mark in marks:
        x1, y1, x2, y2 = ((mark.box[0] - origin[0]) * scale, (mark.box[1] - origin[1]) * scale,
                          (mark.box[2] - origin[0]) * scale, (mark.box[3] - origin[1]) * scale)
        x1, y1 = max(0.0, x1), max(0.0, y1)
        x2, y2 = min(width - 1.0, max(x2, x1 + 1)), min(height - 1.0, max(y2, y1 + 1))
        draw.rectangle((x1, y1, x2, y2), outline=mark.colour, width=2)
        if mark.text:
            left, top, right, bottom = draw.textbbox((0, 0), mark.text, font=font)
            w, h = right - left + 4, bottom - top + 2
            tx = min(max(0.0, x1), max(0.0, width - w))
            above, under = y1 - h, y2 + 1
            if mark.below:
                ty = under if under + h <= height else max(0.0, above)
            else:
                ty = above if above >= 0 else min(under, height - h)
            draw.rectangle((tx, ty, tx + w, ty + h), fill=mark.colour)
            draw.text((tx + 2 - left, ty + 1 - top), mark.text, fill="#ffffff", font=font)


def _encode(image: Image.Image, marked: bool) -> str:
    for quality in QUALITIES:
        buffer = io.BytesIO()
        # 4:4:4 keeps thin coloured lines coloured; a plain image can halve its colour detail
        image.save(buffer, "JPEG", quality=quality, subsampling=0 if marked else 2)
        if buffer.tell() <= MAX_BYTES:
            break
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
