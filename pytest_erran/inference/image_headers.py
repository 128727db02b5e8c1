"""An image's size and EXIF orientation read from its first bytes, for PNG and JPEG.

Every detection image's header is read to check the sizes a dev set declares. PIL's open costs
100-250 us an image (it parses every chunk or segment, and its PNG getexif() decodes the pixels);
this reads a few hundred bytes in 20-40 us. Anything it is not sure of (another format, an EXIF
or XMP block it does not read, a malformed file) returns None, and the caller asks PIL: the
answer is PIL's own either way (tests/test_image_headers.py compares the two).
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF markers that hold the frame size (not DHT C4, JPG C8, DAC CC)
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
MAX_SEGMENTS = 64


def header_size(path: str) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation) as stored, or None when only PIL can tell."""
    try:
        with open(path, "rb") as f:
            start = f.read(8)
            if start == PNG_SIGNATURE:
                return _png(f)
            if start[:2] == b"\xff\xd8":
                f.seek(2)
                return _jpeg(f)
    except (OSError, struct.error, ValueError):
        return None
    return None


def _png(f) -> tuple[int, int, int] | None:
    length, kind = struct.unpack(">I4s", f.read(8))
    if kind != b"IHDR" or length != 13:
        return None
    width, height = struct.unpack(">II", f.read(8))
    f.seek(length - 8 + 4, 1)  # the rest of IHDR and its CRC
    for _ in range(MAX_SEGMENTS):  # PIL reads up to the first IDAT: an eXIf or XMP chunk there
        head = f.read(8)           # may set the orientation, and then PIL must say
        if len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IDAT":
            return width, height, 1
        if kind == b"eXIf":
            return None
        if kind in (b"tEXt", b"zTXt", b"iTXt"):  # PIL reads an orientation from two keywords
            keyword = f.read(min(length, 80)).split(b"\0", 1)[0]
            if keyword in (b"Raw profile type exif", b"XML:com.adobe.xmp"):
                return None
            f.seek(length - min(length, 80) + 4, 1)
            continue
        f.seek(length + 4, 1)
    return None


def _jpeg(f) -> tuple[int, int, int] | None:
    orientation = None
    for _ in range(MAX_SEGMENTS):
        head = f.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return None
        marker, length = head[1], struct.unpack(">H", head[2:])[0]
        while marker == 0xFF:  # fill bytes before a marker
            head = head[1:] + f.read(1)
            marker, length = head[1], struct.unpack(">H", head[2:])[0]
        if marker in SOF_MARKERS:
            height, width = struct.unpack(">xHH", f.read(5))
            return (width, height, orientation or 1) if width and height else None
        if marker == 0xE1:
            data = f.read(length - 2)
            if data.startswith(b"Exif\0\0"):
                if orientation is not None:
                    return None  # two EXIF blocks: leave it to PIL
                orientation = _exif_orientation(data[6:])
                if orientation is None:
                    return None
            elif b"ns.adobe.com/xap" in data[:40]:
                return None  # XMP may carry an orientation of its own
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan, before any frame size
            return None
        f.seek(length - 2, 1)
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 (1 when absent), or None when the block cannot be read."""
    if tiff[:4] == b"II*\0":
        order = "<"
    elif tiff[:4] == b"MM\0*":
        order = ">"
    else:
        return None
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[offset:offset + 2])
    for i in range(count):
        entry = tiff[offset + 2 + 12 * i: offset + 14 + 12 * i]
        if len(entry) < 12:
            return None
        tag, kind, number = struct.unpack(order + "HHI", entry[:8])
        if tag == 0x0112:
            if kind != 3 or number != 1:
                return None
            value = struct.unpack(order + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else None
    return 1
