"""The source contract: a list of stable ids known up front, and each image's bytes read lazily."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from typing import Any

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

    @abstractmethod
    def ids(self) -> list[str]:
        """Stable identifiers, one per image, in a fixed order."""

    @abstractmethod
    def read(self, index: int) -> bytes:
        """The encoded image at `index` of `ids()`. Raise BadImage for an unreadable one."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """kind and location, for the manifest and the dataset card."""


def decode(data: bytes, max_pixels: int = 64_000_000) -> Image.Image:
    """Bytes -> upright RGB image. EXIF orientation is applied first: a label on an unrotated photo lies."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size[0] * image.size[1] > max_pixels:
                raise BadImage("too_large")
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except BadImage:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage("decode_error") from None
