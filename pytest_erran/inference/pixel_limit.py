"""How many pixels an image may have: one rule whatever the run's warning filters.

Pillow guards against decompression bombs with a warning above Image.MAX_IMAGE_PIXELS and an
error above twice that; under `-W error` the warning becomes an exception in a decode thread.
While the pipeline reads images, the limit is `max_image_pixels` and the warning is always an
error, which open_image turns into one line naming the image and the setting.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

from PIL import Image


@contextmanager
def pixel_limit(max_pixels: int):
    """Refuse images of more than `max_pixels` pixels (0: no limit) inside the block. Entered on
    the main thread around the decode threads: they read the same global filter list."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels or None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved
