"""Position: a patch was cut from one cell of a grid over the image (then augmented); name the cell.

The full image is always shown beside the patch: without it the answer rests on priors (sky is up), not on
finding the patch. The patch keeps the full image's pixel scale, as SSL4RL's crops keep the source's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import augment
from . import imageops as ops
from .base import Context, Puzzle, Skip, Task, TaskConfig, register
from .cells import cell_aliases, cell_names


@dataclass(frozen=True)
class PositionConfig(TaskConfig):
    rows: int = 2
    cols: int = 2
    size: int = 448  # side of the full image shown, in pixels (a multiple of 28 suits Qwen2.5-VL)
    crop_min: float = 0.2  # patch height and width as fractions of the cell's, drawn independently
    crop_max: float = 0.8
    min_crop: int = 28  # patch sides in pixels never go below this
    augment: tuple[str, ...] = ("color_jitter", "grayscale", "blur")  # see augment.MENU
    augment_p: float = 0.5  # each named augmentation is applied with this probability
    min_side: int = 224  # smaller sources are skipped
    min_texture: float = 0.03  # patches flatter than this are redrawn
    copy_error: float = 0.05  # a patch with a copy this close in another cell is redrawn (_closest_elsewhere)
    tries: int = 8  # patch draws per cell before the image is skipped

    def check(self):
        if cell_names(self.rows, self.cols) is None:
            raise ValueError(
                "rows and cols must be 1..3 with at least two cells (cells are named: top-left, ...)"
            )
        if not 0 < self.crop_min <= self.crop_max <= 1:
            raise ValueError("need 0 < crop_min <= crop_max <= 1")
        if self.min_crop < 8:
            raise ValueError("min_crop must be at least 8 pixels (SSL4RL uses 28)")
        if self.size // max(self.rows, self.cols) * self.crop_max < self.min_crop:
            raise ValueError(
                "the largest patch (size / grid * crop_max) is under min_crop; raise size or crop_max"
            )
        if unknown := sorted(set(self.augment) - set(augment.MENU)):
            raise ValueError(f"unknown augment {unknown}; choose from {augment.MENU}")
        if not 0 <= self.augment_p <= 1 or self.copy_error < 0 or self.tries < 1:
            raise ValueError("augment_p must be in [0, 1], copy_error >= 0 and tries >= 1")


def _closest_elsewhere(half: np.ndarray, box: list[int], cells: list[tuple], own: int) -> float:
    """Squared error of the best placement of the patch whose centre lies in another cell, over the patch's
    own variance: near 0 means a near-copy elsewhere (a repeated texture, a horizon line). `half` is the
    full image in grey (the patch may be greyed) at half resolution (enough to tell a copy, 4x cheaper)."""
    import cv2

    left, top, right, bottom = (v // 2 for v in box)
    patch = np.ascontiguousarray(half[top:bottom, left:right])
    energy = patch.var() * patch.size + 1e-6
    errors = cv2.matchTemplate(half, patch, cv2.TM_SQDIFF) / energy
    ys, xs = np.mgrid[0 : errors.shape[0], 0 : errors.shape[1]]
    cx, cy = 2 * xs + (right - left), 2 * ys + (bottom - top)  # placement centres in full pixels
    closest = np.inf
    for k, (cl, ct, cr, cb) in enumerate(cells):
        inside = (cx >= cl) & (cx < cr) & (cy >= ct) & (cy < cb)
        if k != own and inside.any():
            closest = min(closest, float(errors[inside].min()))
    return closest


@register
class Position(Task):
    name = "position"
    Config = PositionConfig
    summary = "Cut a patch from one cell of a grid and augment it; answer the cell's name."
    shorthand = ("rows", "cols")

    def _draw(self, cell: tuple[int, int, int, int], ctx: Context) -> list[int]:
        cfg = self.config
        left, top, right, bottom = cell
        sides = []
        for extent in (right - left, bottom - top):
            low = max(cfg.min_crop, int(np.ceil(cfg.crop_min * extent)))
            sides.append(int(ctx.rng.integers(low, max(low, int(cfg.crop_max * extent)) + 1)))
        x = left + int(ctx.rng.integers(0, right - left - sides[0] + 1))
        y = top + int(ctx.rng.integers(0, bottom - top - sides[1] + 1))
        return [x, y, x + sides[0], y + sides[1]]

    def _findable(
        self, full: Image.Image, half: np.ndarray, cells: list[tuple], k: int, ctx: Context
    ) -> list[int]:
        """A patch box in cell k that is textured and matches no other cell, or Skip."""
        reason = ""
        for _ in range(self.config.tries):
            box = self._draw(cells[k], ctx)
            if ops.texture(full.crop(box)) < self.config.min_texture:
                reason = "low_texture"
            elif _closest_elsewhere(half, box, cells, k) < self.config.copy_error:
                reason = "ambiguous_patch"
            else:
                return box
        raise Skip(reason)

    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        cfg = self.config
        if min(image.size) < cfg.min_side:
            raise Skip("too_small")
        square, source_box = ops.square_crop(image, ctx.rng)
        full = ops.resize(square, cfg.size)
        cells = ops.grid_boxes(cfg.size, cfg.rows, cfg.cols)
        half = np.asarray(ops.resize(full, cfg.size // 2).convert("L"), dtype=np.float32)
        # every cell must offer a findable patch before the answer is drawn: skips then cannot favour cells
        boxes = [self._findable(full, half, cells, k, ctx) for k in range(len(cells))]
        names = cell_names(cfg.rows, cfg.cols)
        index = ctx.balanced(len(names))
        box = boxes[index]
        patch = full.crop(box)

        seed = int(ctx.rng.integers(2**31))
        shown, applied = augment.apply(augment.photometric(cfg.augment, cfg.augment_p), patch, seed)
        done = augment.describe(applied)
        after = f", then {augment.join(done)}" if done else " with no other change"
        grid = f"{cfg.rows}x{cfg.cols}"
        prompt = (
            "Image 1: <image>\nImage 2: <image>\n"
            f"Image 2 is a patch cut out of image 1{after}. Picture image 1 divided into a {grid} grid of "
            f"equal cells ({', '.join(names)}). Which cell of image 1 was the patch cut from?"
        )
        verifier = {"kind": "choice", "options": names, "aliases": cell_aliases(cfg.rows, cfg.cols)}
        meta = {
            "crop_box": source_box,
            "cell": index,
            "cell_box": list(cells[index]),
            "patch_box": box,
            "augment_seed": seed,
            "applied": applied,
        }
        return Puzzle([full, shown], prompt, names[index], verifier, meta)
