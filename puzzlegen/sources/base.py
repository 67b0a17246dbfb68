"""The source contract: a list of stable ids known up front, and each image's bytes read lazily."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class SourceError(Exception):
    """The source as a whole is unusable (wrong path, missing files): a message for the user."""


class BadImage(Exception):  # noqa: N818 - a counted skip, not a crash
    """One input could not become an image; `reason` is counted in the manifest."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Source(ABC):
    """An image corpus. `ids()` must be cheap, stable and sorted; `read` may be slow (it runs in workers).

    Instances are pickled into worker processes, so they hold paths and options, never open handles.
    """

    kind: str
    # a build reads every image once before planning, to drop byte-identical copies; a source whose
    # images differ by construction sets this and saves that read
    distinct_by_construction: bool = False

    @abstractmethod
    def ids(self) -> list[str]:
        """Stable identifiers, one per image, in a fixed order."""

    @abstractmethod
    def read(self, index: int) -> bytes:
        """The encoded image at `index` of `ids()`. Raise BadImage for an unreadable one."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """kind and location, for the manifest and the dataset card."""


def cell_bytes(value: Any) -> bytes:
    """An image cell of an HF or Parquet table: `{"bytes", "path"}` (the `datasets` Image feature, which
    keeps only a path for images stored on disk) or plain binary."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        try:
            return Path(value["path"]).read_bytes()
        except (OSError, TypeError, KeyError):
            raise BadImage("read_error") from None
    if not value:
        raise BadImage("missing_image")
    return value


ORIENTATION = 0x0112  # the EXIF tag
DRAFT_SIDE = 1024  # JPEGs are decoded at a reduced scale while the short side stays at least this


WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 16-bit, 32-bit and float greys


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. Pillow's own conversion clips wide greys at 255: a 16-bit PNG would come out white and a
    float TIFF in [0, 1] black. Those are stretched from their own range to 0-255 instead."""
    if image.mode not in WIDE_MODES:
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.round(scaled).astype(np.uint8), "L").convert("RGB")


def decode(data: bytes, max_pixels: int = 64_000_000, draft_side: int = DRAFT_SIDE) -> Image.Image:
    """Bytes -> upright RGB image. EXIF orientation is applied first: a label on an unrotated photo lies.

    Large JPEGs are decoded with `draft`, libjpeg's DCT scaling (1/2, 1/4, 1/8): several times faster,
    deterministic, and every task output is far smaller than `draft_side`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size[0] * image.size[1] > max_pixels:
                raise BadImage("too_large")
            width, height = image.size
            if image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8):  # stored sideways
                width, height = height, width
            if image.format == "JPEG" and min(image.size) >= 2 * draft_side:
                image.draft("RGB", (draft_side, draft_side))
            upright = _to_rgb(ImageOps.exif_transpose(image))
            upright.info["original_size"] = (width, height)
            return upright
    except BadImage:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage("decode_error") from None
