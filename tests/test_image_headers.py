"""The fast header reader gives PIL's own answer (size and EXIF orientation) or none at all."""

import struct

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pytest_erran.inference.image_headers import header_size
from pytest_erran.inference.images import image_size


def pil_answer(path):
    """PIL's reading, pixels loaded if it needs them: the reference."""
    with Image.open(path) as image:
        image.load()
        value = image.getexif().get(0x0112, 1)
        return image.size + (value if value in range(1, 9) else 1,)


def exif(orientation):
    tags = Image.Exif()
    tags[0x0112] = orientation
    tags[0x010F] = "a camera maker"
    return tags


PIXELS = np.random.default_rng(0).integers(0, 256, (37, 53, 3), np.uint8)
RGB = Image.fromarray(PIXELS)


def text_chunk(key, value):
    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


CASES = {  # name: (how to save it, whether the fast reader must answer)
    "png-rgb": (lambda p: RGB.save(p), True),
    "png-gray": (lambda p: RGB.convert("L").save(p), True),
    "png-rgba": (lambda p: RGB.convert("RGBA").save(p), True),
    "png-palette": (lambda p: RGB.convert("P").save(p), True),
    "png-16-bit": (lambda p: Image.fromarray((PIXELS[..., 0].astype(np.uint16) * 257)).save(p), True),
    "png-1-bit": (lambda p: RGB.convert("1").save(p), True),
    "png-software-text": (lambda p: RGB.save(p, pnginfo=text_chunk("Software", "a tool")), True),
    "png-exif-orientation": (lambda p: RGB.save(p, exif=exif(6)), False),
    "png-xmp-text": (lambda p: RGB.save(p, pnginfo=text_chunk("XML:com.adobe.xmp", "<x/>")), False),
    "jpeg": (lambda p: RGB.save(p, "JPEG"), True),
    "jpeg-progressive": (lambda p: RGB.save(p, "JPEG", progressive=True), True),
    "jpeg-gray": (lambda p: RGB.convert("L").save(p, "JPEG"), True),
    "jpeg-cmyk": (lambda p: RGB.convert("CMYK").save(p, "JPEG"), True),
    "jpeg-exif-without-orientation": (lambda p: RGB.save(p, "JPEG", exif=Image.Exif()), True),
    **{f"jpeg-orientation-{o}": (lambda p, o=o: RGB.save(p, "JPEG", exif=exif(o)), True) for o in range(1, 9)},
    "jpeg-xmp": (lambda p: RGB.save(p, "JPEG", xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"), False),
    "bmp": (lambda p: RGB.save(p, "BMP"), False),
    "tiff": (lambda p: RGB.save(p, "TIFF"), False),
    "gif": (lambda p: RGB.save(p, "GIF"), False),
    "webp": (lambda p: RGB.save(p, "WEBP"), False),
}


@pytest.mark.parametrize("case", CASES)
def test_the_fast_reader_agrees_with_pil_or_leaves_it_to_pil(tmp_path, case):
    save, answers = CASES[case]
    kind = case.split("-")[0]
    path = tmp_path / f"{case}.{ {'jpeg': 'jpg', 'tiff': 'tif'}.get(kind, kind) }"
    save(path)
    found = header_size(str(path))
    if answers:
        assert found == pil_answer(path)
    else:
        assert found is None or found == pil_answer(path)
    width, height, turn = pil_answer(path)
    upright = (height, width) if turn in (5, 6, 7, 8) else (width, height)
    assert image_size(str(path), "x", "apply") == upright
    assert image_size(str(path), "x", "ignore") == (width, height)


def test_big_endian_exif_is_read(tmp_path):
    """Pillow writes little-endian EXIF; cameras also write big-endian ("MM")."""
    tiff = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + \
        struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0) + struct.pack(">I", 0)
    app1 = b"Exif\0\0" + tiff
    RGB.save(tmp_path / "plain.jpg", "JPEG")
    data = (tmp_path / "plain.jpg").read_bytes()
    path = tmp_path / "mm.jpg"
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
    assert header_size(str(path)) == pil_answer(path) == (53, 37, 8)


@pytest.mark.parametrize("cut", [3, 9, 20, 30, 200])
def test_truncated_files_give_no_answer_or_pils(tmp_path, cut):
    for name, fmt in (("t.png", "PNG"), ("t.jpg", "JPEG")):
        path = tmp_path / name
        RGB.save(path, fmt, exif=exif(3))
        path.write_bytes(path.read_bytes()[:cut])
        found = header_size(str(path))
        if found is not None:
            with Image.open(path) as image:
                assert found[:2] == image.size
