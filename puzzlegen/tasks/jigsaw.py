"""Jigsaw (patch ordering): cut an R x C grid, shuffle it, ask for the order that restores the image."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from puzzlegen.verify import PARTIAL

from . import imageops as ops
from .base import Context, Puzzle, Skip, Task, TaskConfig, register


@dataclass(frozen=True)
class JigsawConfig(TaskConfig):
    rows: int = 3
    cols: int = 3
    layout: str = "tiles"  # "tiles": one image per tile; "composite": the shuffled grid as one image
    tile_size: int = 112  # output tile side in pixels; a multiple of 8 keeps JPEG blocks inside tiles
    gap: int = 8  # composite only: blank pixels between tiles, against edge-continuity cues
    jitter: int = 0  # each tile is cut at a random offset of up to this many pixels, dropping seam pixels
    partial: str = "position"  # partial credit for a wrong but valid permutation: see puzzlegen.verify
    class_threshold: float = 0.02  # tiles closer than this are interchangeable (uniform sky, a wall)
    min_tile_source: int = 28  # source pixels per tile below which the image is skipped

    def check(self):
        if not (1 <= self.rows <= 8 and 1 <= self.cols <= 8 and self.rows * self.cols >= 2):
            raise ValueError("rows and cols must be 1..8 with at least two tiles")
        if self.layout not in ("tiles", "composite"):
            raise ValueError("layout must be 'tiles' or 'composite'")
        if self.partial not in PARTIAL:
            raise ValueError(f"partial must be one of {PARTIAL}")
        if self.tile_size < 28 or self.gap < 0 or self.jitter < 0:
            raise ValueError("tile_size must be >= 28 and gap, jitter >= 0")


@register
class Jigsaw(Task):
    name = "jigsaw"
    Config = JigsawConfig
    summary = "Shuffle an R x C grid of tiles; answer the permutation that restores the image."
    shorthand = ("rows", "cols")

    def _cut(self, square: Image.Image, ctx: Context) -> list[Image.Image]:
        cfg = self.config
        tiles = []
        for left, top, right, bottom in ops.grid_boxes(square.size[0], cfg.rows, cfg.cols):
            j = min(cfg.jitter, (right - left) // 4)
            dx, dy = (int(v) for v in ctx.rng.integers(0, 2 * j + 1, size=2)) if j else (0, 0)
            # with jitter, every tile loses 2*j pixels across, placed at random: no two edges meet exactly
            tiles.append(
                ops.resize(
                    square.crop((left + dx, top + dy, right - 2 * j + dx, bottom - 2 * j + dy)), cfg.tile_size
                )
            )
        return tiles

    def _composite(self, tiles: list[Image.Image]) -> Image.Image:
        cfg, t, g = self.config, self.config.tile_size, self.config.gap
        canvas = Image.new(
            "RGB", (cfg.cols * t + (cfg.cols - 1) * g, cfg.rows * t + (cfg.rows - 1) * g), "white"
        )
        for i, tile in enumerate(tiles):
            r, c = divmod(i, cfg.cols)
            canvas.paste(tile, (c * (t + g), r * (t + g)))
        return canvas

    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        cfg = self.config
        n = cfg.rows * cfg.cols
        if min(image.size) < cfg.min_tile_source * max(cfg.rows, cfg.cols):
            raise Skip("too_small")
        square, box = ops.square_crop(image, ctx.rng)
        tiles = self._cut(square, ctx)
        classes = ops.equivalence_classes([ops.thumbnail(t) for t in tiles], cfg.class_threshold)
        if any(len(g) == n for g in classes):
            raise Skip("low_texture")

        order = [int(i) for i in ctx.rng.permutation(n)]  # order[k]: the true cell of the k-th shown tile
        while order == list(range(n)):
            order = [int(i) for i in ctx.rng.permutation(n)]
        shown = [tiles[cell] for cell in order]
        label_of_cell = {cell: k + 1 for k, cell in enumerate(order)}  # 1-based label of each cell's tile
        answer = ",".join(str(label_of_cell[cell]) for cell in range(n))
        label_classes = sorted(sorted(label_of_cell[c] for c in g) for g in classes)

        grid = f"{cfg.rows}x{cfg.cols}"
        rule = (
            "For each position of the original image in reading order (left to right, top to bottom), "
            f"give the number of the piece that belongs there, as {n} comma-separated numbers, e.g. "
            f"{','.join(str(i) for i in range(1, n + 1))}."
        )
        if cfg.layout == "tiles":
            images = shown
            pieces = "\n".join(f"Piece {k + 1}: <image>" for k in range(n))
            prompt = (
                f"{pieces}\nThese {n} pieces were cut from one image along a {grid} grid and shuffled. {rule}"
            )
        else:
            images = [self._composite(shown)]
            prompt = (
                f"<image>\nThis image was cut into a {grid} grid of pieces that were then shuffled. "
                f"Number the pieces as they appear here, 1 to {n} in reading order. {rule}"
            )
        verifier = {"kind": "permutation", "n": n, "rows": cfg.rows, "cols": cfg.cols, "partial": cfg.partial}
        if label_classes:
            verifier["classes"] = label_classes
        meta = {"crop_box": box, "shown_cells": order, "classes": label_classes}
        return Puzzle(images, prompt, answer, verifier, meta)
