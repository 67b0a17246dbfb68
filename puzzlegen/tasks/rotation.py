"""Rotation: which angle was the image turned by (pair form), or which turn makes it upright (single)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from . import imageops as ops
from .base import Context, Puzzle, Skip, Task, TaskConfig, register

_QUARTER_TURNS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class RotationConfig(TaskConfig):
    angles: tuple[int, ...] = (0, 90, 180, 270)  # counter-clockwise, degrees
    form: str = "pair"  # "pair": original then rotated; "single": only the rotated image
    size: int = 336  # output side in pixels (a multiple of 28 suits Qwen2.5-VL)
    min_side: int = 112  # smaller sources are skipped
    symmetry_threshold: float = 0.03  # thumbnails closer than this under a turn make the angle ambiguous
    min_texture: float = 0.04

    def check(self):
        if len(set(self.angles)) < 2 or any(not 0 <= a < 360 for a in self.angles):
            raise ValueError("angles needs two or more distinct values in [0, 360)")
        if self.form not in ("pair", "single"):
            raise ValueError("form must be 'pair' or 'single'")
        if self.size < 28 or self.min_side < 28:
            raise ValueError("size and min_side must be at least 28 pixels")


def _aliases(angle: int) -> list[str]:
    return [f"{angle} degrees", f"{angle} deg", f"{angle} degree", f"{angle}deg"]


@register
class Rotation(Task):
    name = "rotation"
    Config = RotationConfig
    summary = "Rotate a square crop by one of k angles; answer the angle."

    def _turn(self, image: Image.Image, angle: int) -> Image.Image:
        if angle == 0:
            return image
        if angle in _QUARTER_TURNS:  # exact, no resampling
            return image.transpose(_QUARTER_TURNS[angle])
        return image.rotate(angle, Image.Resampling.BICUBIC)

    def _inscribed(self, image: Image.Image) -> Image.Image:
        """For angles off the quarter turns, keep only the square that no rotation leaves black corners
        in, and do the same to every view, so that scale gives nothing away."""
        factor = min(
            1 / (abs(math.cos(math.radians(a))) + abs(math.sin(math.radians(a)))) for a in self.config.angles
        )
        if factor > 0.999:
            return image
        side = image.size[0]
        inner = int(side * factor)
        off = (side - inner) // 2
        return image.crop((off, off, off + inner, off + inner))

    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        cfg = self.config
        if min(image.size) < cfg.min_side:
            raise Skip("too_small")
        square, box = ops.square_crop(image, ctx.rng)
        if ops.texture(square) < cfg.min_texture:
            raise Skip("low_texture")
        small = ops.resize(square, 32)  # turning a thumbnail tells as much as turning the image, cheaply
        thumb = ops.thumbnail(small, 32)
        turns = {b - a for a in cfg.angles for b in cfg.angles if a < b}
        if any(
            ops.distance(ops.thumbnail(self._turn(small, t), 32), thumb) < cfg.symmetry_threshold
            for t in turns
        ):
            raise Skip("rotation_symmetric")

        angle = cfg.angles[ctx.balanced(len(cfg.angles))]
        upright = ops.resize(self._inscribed(square), cfg.size)
        if angle % 90 == 0:  # a quarter turn commutes with the resize: turn the small image
            turned = self._turn(upright, angle)
        else:
            turned = ops.resize(self._inscribed(self._turn(square, angle)), cfg.size)
        choices = ", ".join(str(a) for a in cfg.angles)
        if cfg.form == "pair":
            images = [upright, turned]
            prompt = (
                "Image 1: <image>\nImage 2: <image>\n"
                "Image 2 is image 1 rotated counter-clockwise by some angle. "
                f"Which angle, in degrees? Choose one of: {choices}."
            )
        else:
            images = [turned]
            prompt = (
                "<image>\nThis photo may have been rotated. By how many degrees must it be turned clockwise "
                f"to stand upright? Choose one of: {choices}."
            )
        options = [str(a) for a in cfg.angles]
        verifier = {"kind": "choice", "options": options, "aliases": {o: _aliases(int(o)) for o in options}}
        return Puzzle(images, prompt, str(angle), verifier, {"angle": angle, "crop_box": box})
