"""Image operations the tasks share: shortcut-free crops, tiles, and ambiguity measures."""

from __future__ import annotations

import numpy as np
from PIL import Image

BLOCK = 8  # JPEG block size: cuts on this grid leave no half-block seams that reveal a tile's offset


def square_crop(
    image: Image.Image, rng: np.random.Generator, side: int | None = None
) -> tuple[Image.Image, list]:
    """A square crop at a random, block-aligned position; a square never gives rotation away by shape.

    Returns the crop and its box [left, top, right, bottom] in source pixels.
    """
    w, h = image.size
    side = min(w, h) if side is None else min(side, w, h)
    side -= side % BLOCK if side >= BLOCK else 0
    left = int(rng.integers(0, (w - side) // BLOCK + 1)) * BLOCK if w - side >= BLOCK else 0
    top = int(rng.integers(0, (h - side) // BLOCK + 1)) * BLOCK if h - side >= BLOCK else 0
    box = [left, top, left + side, top + side]
    return image.crop(box), box


def resize(image: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    size = (size, size) if isinstance(size, int) else size
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def thumbnail(image: Image.Image, side: int = 16) -> np.ndarray:
    """A small float RGB array in [0, 1] for cheap similarity tests."""
    return (
        np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BOX), dtype=np.float32) / 255.0
    )


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in [0, 1]."""
    return float(np.abs(a - b).mean())


def texture(image: Image.Image) -> float:
    """Standard deviation of grey levels in [0, 1]: near 0 for a blank wall or a clear sky."""
    return float(
        np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float32).std() / 255
    )


def equivalence_classes(thumbs: list[np.ndarray], threshold: float) -> list[list[int]]:
    """Groups (0-based, with more than one member) of items closer than `threshold`, joined transitively."""
    parent = list(range(len(thumbs)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(thumbs)):
        for j in range(i + 1, len(thumbs)):
            if distance(thumbs[i], thumbs[j]) < threshold:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(thumbs)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def grid_boxes(side: int, rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """Cell boxes of a square of `side` pixels, in raster order."""
    ch, cw = side // rows, side // cols
    return [(c * cw, r * ch, (c + 1) * cw, (r + 1) * ch) for r in range(rows) for c in range(cols)]
