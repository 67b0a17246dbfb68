"""Inpainting (region): cover a square of the image; which of the lettered patches is the missing one.

Image 1 is the masked image; each option follows as its own image at the scale of the hole, so no sheet
layout or drawn label can hint at the answer. Options are resampled from the source square through boxes
in image-1 coordinates, so none is a pixel-aligned copy of image 1 whose JPEG blocks line up with the hole.

The distractors of Spatial-SSRL (the true patch turned, zoomed in, widened) all derive from the truth, so
the truth is the option most like all the others: picking that one, without looking at image 1, is right
62% of the time on the synthetic corpus. Here every puzzle uses one family of options in which the truth
plays no special part:
- region: squares of the picture sharing little area, the most alike of several random sets, the hole
  being a random one of them;
- shift: boxes at the corners of a regular polygon, neighbours a few pixels apart, the hole at one corner;
- zoom: boxes around the hole's centre, each `zoom` times the next, the hole at a random place in the row
  (the hole moves to where the whole row fits);
- flip: the hole as it is, mirrored, upside down, and turned half round (two mirrors for two options);
- rotate: the hole turned by 0, 90, 180 and 270 degrees (0 and 180 for two options).
Every condition (inside the image, textured, not alike) applies to all options of a family alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import imageops as ops
from .base import Context, Puzzle, Skip, Task, TaskConfig, register

KINDS = ("region", "shift", "zoom", "flip", "rotate")
LETTERS = "ABCDEF"
GREY = (128, 128, 128)
T = Image.Transpose
ORBITS = {  # orbits of a group, so that every member relates to the others alike
    "flip": {2: (None, T.FLIP_LEFT_RIGHT), 4: (None, T.FLIP_LEFT_RIGHT, T.FLIP_TOP_BOTTOM, T.ROTATE_180)},
    "rotate": {2: (None, T.ROTATE_180), 4: (None, T.ROTATE_90, T.ROTATE_180, T.ROTATE_270)},
}
REGION_SETS = 8  # random region sets drawn; the most alike is kept


_OTHERS = {  # how each option family's distractors differ, for the prompt: it names only families in use
    "region": "other parts of the picture",
    "shift": "nearby parts shifted a little",
    "zoom": "the same place zoomed in or out",
    "flip": "the hidden content mirrored",
    "rotate": "the hidden content turned",
}


def _others(kinds: tuple[str, ...]) -> str:
    phrases = [_OTHERS[k] for k in kinds]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]


@dataclass(frozen=True)
class InpaintingConfig(TaskConfig):
    size: int = 336  # side of the masked image in pixels (a multiple of 28 suits Qwen2.5-VL)
    mask_fraction: float = 0.5  # hole side / image side (Spatial-SSRL: 1/2); smaller holes are harder
    options: int = 4  # lettered options, one of them the true patch
    # option families to try, in random order. flip and rotate are opt-in: their true patch is often the one
    # that stands upright, which a model can see without looking at the picture (75% for rotate)
    kinds: tuple[str, ...] = ("region", "shift", "zoom")
    fill: str = "grey"  # "grey": (128, 128, 128); "mean": mean colour of the visible pixels
    shift_fraction: tuple[float, float] = (0.1, 0.25)  # shift family: neighbours' distance / hole side
    zoom: float = 0.85  # side ratio of neighbouring boxes in the zoom family
    max_upscale: float = 2.0  # zoomed boxes may be upsampled at most this much (more looks only blurred)
    region_overlap: float = 0.25  # region boxes may share at most this much of their area with each other
    min_distance: float = 0.04  # options whose 16 px thumbnails are closer than this look alike
    min_texture: float = 0.04  # every option must vary at least this much (no plain sky)
    min_side: int = 160  # smaller sources are skipped

    def check(self):
        if not 0.1 <= self.mask_fraction <= 0.75:
            raise ValueError("mask_fraction must be in [0.1, 0.75] (Spatial-SSRL uses 0.5)")
        if not 2 <= self.options <= len(LETTERS):
            raise ValueError(f"options must be 2..{len(LETTERS)}")
        if not self.kinds or not set(self.kinds) <= set(KINDS) or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds must be distinct names from {KINDS}")
        if set(self.kinds) <= {"flip", "rotate"} and self.options not in (2, 4):
            raise ValueError("flip and rotate make 2 or 4 options; add another kind or set options to 2 or 4")
        if self.fill not in ("grey", "mean"):
            raise ValueError("fill must be 'grey' or 'mean'")
        lo, hi = self.shift_fraction if len(self.shift_fraction) == 2 else (0, -1)
        if not 0 < lo <= hi <= 0.5:
            raise ValueError("shift_fraction must be two shares (lo, hi) with 0 < lo <= hi <= 0.5")
        if not 0.5 <= self.zoom < 1 or self.max_upscale < 1:
            raise ValueError("zoom must be in [0.5, 1) and max_upscale >= 1")
        if not 0 <= self.region_overlap < 1 or self.min_distance < 0 or self.min_texture < 0:
            raise ValueError("region_overlap must be in [0, 1); min_distance and min_texture >= 0")
        if self.size < 56 or self.min_side < 28:
            raise ValueError("size must be at least 56 and min_side at least 28 pixels")


def _overlap(a: tuple, b: tuple) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def _centred(hole: tuple, side: float) -> tuple:
    cx, cy = (hole[0] + hole[2]) / 2, (hole[1] + hole[3]) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


@register
class Inpainting(Task):
    name = "inpainting"
    Config = InpaintingConfig
    summary = "Cover a square of the image; answer which lettered patch (among look-alikes) fills it."

    def _side(self) -> int:
        """Hole side in image-1 pixels, on the JPEG block grid so that fill and content share no block."""
        cfg = self.config
        return max(ops.BLOCK, round(cfg.mask_fraction * cfg.size / ops.BLOCK) * ops.BLOCK)

    def _fits(self, box: tuple) -> bool:
        return box[0] >= 0 and box[1] >= 0 and box[2] <= self.config.size and box[3] <= self.config.size

    def _regions(self, ctx: Context, m: int) -> list[tuple] | None:
        """k squares on the block grid, added one at a time where they share little with those before."""
        cfg = self.config
        slots = (cfg.size - m) // ops.BLOCK + 1
        grid = (
            np.stack(np.meshgrid(np.arange(slots), np.arange(slots), indexing="xy"), -1).reshape(-1, 2)
            * ops.BLOCK
        )
        free = np.ones(len(grid), bool)
        boxes = []
        for _ in range(cfg.options):
            if not free.any():
                return None
            x, y = (int(v) for v in grid[np.flatnonzero(free)[int(ctx.rng.integers(free.sum()))]])
            boxes.append((x, y, x + m, y + m))
            shared = np.clip(m - np.abs(grid - (x, y)), 0, None).prod(-1)
            free &= shared <= cfg.region_overlap * m * m
        return boxes

    def _family(
        self, kind: str, hole: tuple, work: Image.Image, ctx: Context
    ) -> tuple[list[dict], tuple] | str:
        """The options of one family as {box, turn}, the truth first, and the hole; or why it cannot be made.

        The truth takes a random place in a family whose members all relate to the rest alike (a group
        orbit, a regular polygon) or, for zoom, only if every place would fit: the family's shape, or
        which member is most like the others, then tells nothing about which member is the truth.
        """
        cfg, k, m = self.config, self.config.options, hole[2] - hole[0]
        if kind in ORBITS:
            if k not in ORBITS[kind]:
                return "needs_2_or_4_options"
            return [{"box": hole, "turn": t} for t in ORBITS[kind][k]], hole
        if kind == "shift":  # the vertices of a regular polygon, neighbours `step` apart
            step = float(ctx.rng.uniform(*cfg.shift_fraction)) * m
            radius, phase = step / (2 * math.sin(math.pi / k)), float(ctx.rng.uniform(0, 2 * math.pi))
            offsets = [
                (
                    round(radius * math.cos(phase + 2 * math.pi * i / k)),
                    round(radius * math.sin(phase + 2 * math.pi * i / k)),
                )
                for i in range(k)
            ]
            fits = []
            for place in range(k):
                shifted = [(dx - offsets[place][0], dy - offsets[place][1]) for dx, dy in offsets]
                boxes = [(hole[0] + dx, hole[1] + dy, hole[2] + dx, hole[3] + dy) for dx, dy in shifted]
                if all(self._fits(b) for b in boxes):
                    fits.append([boxes[place]] + boxes[:place] + boxes[place + 1 :])
            if not fits:
                return "no_room"
            boxes = fits[int(ctx.rng.integers(len(fits)))]
        elif kind == "zoom":  # concentric boxes, each `zoom` times the next, the truth anywhere in the row
            z, scale = cfg.zoom, work.size[0] / cfg.size
            big = m / z ** (k - 1)  # the largest box, when the truth is the smallest
            lo, hi = math.ceil((big - m) / 2 / ops.BLOCK), math.floor((cfg.size - (big + m) / 2) / ops.BLOCK)
            if hi < lo or scale * z ** (k - 1) * cfg.max_upscale < 1:
                return "no_room"
            # the same tests hold for every place, so the place stays uniform; the hole moves where they pass
            x0, y0 = (int(v) * ops.BLOCK for v in ctx.rng.integers(lo, hi + 1, size=2))
            hole = (x0, y0, x0 + m, y0 + m)
            place = int(ctx.rng.integers(k))
            boxes = [_centred(hole, m * z ** (place - i)) for i in range(k)]
            boxes.insert(0, boxes.pop(place))
        else:  # region: squares sharing little; of a few such sets the most alike; the truth a random one
            best = None
            for _ in range(REGION_SETS):
                boxes = self._regions(ctx, m)
                spread = None if boxes is None else self._spread([self._render(work, b, m) for b in boxes])
                if spread is not None and (best is None or spread < best[0]):
                    best = (spread, boxes)
            if best is None:
                return "no_room"
            boxes = best[1]
            truth = int(ctx.rng.integers(k))
            boxes.insert(0, boxes.pop(truth))
            hole = boxes[0]
        return [{"box": tuple(round(v, 2) for v in b), "turn": None} for b in boxes], hole

    def _render(
        self, work: Image.Image, box: tuple, side: int, turn: Image.Transpose | None = None
    ) -> Image.Image:
        """The box (image-1 coordinates, floats allowed) cut from the work square at `side` pixels."""
        k = work.size[0] / self.config.size
        patch = work.resize((side, side), Image.Resampling.BICUBIC, box=tuple(v * k for v in box))
        return patch if turn is None else patch.transpose(turn)

    def _spread(self, patches: list[Image.Image]) -> float | None:
        """Mean pairwise thumbnail distance, or None if two options look alike or one is too plain."""
        if min(ops.texture(p) for p in patches) < self.config.min_texture:
            return None
        thumbs = [ops.thumbnail(p) for p in patches]
        d = [ops.distance(a, b) for i, a in enumerate(thumbs) for b in thumbs[:i]]
        return None if min(d) < self.config.min_distance else sum(d) / len(d)

    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        cfg = self.config
        if min(image.size) < cfg.min_side:
            raise Skip("too_small")
        square, crop_box = ops.square_crop(image, ctx.rng)
        # cap the working resolution: options resample from it, and huge sources would only cost time
        work = ops.resize(square, min(square.size[0], 2 * cfg.size))
        base = ops.resize(work, cfg.size)
        m = self._side()
        slots = (cfg.size - m) // ops.BLOCK + 1
        for _ in range(4):  # a few tries to find a hole over something more than sky
            x0, y0 = (int(v) * ops.BLOCK for v in ctx.rng.integers(0, slots, size=2))
            hole = (x0, y0, x0 + m, y0 + m)
            if ops.texture(self._render(work, hole, m)) >= cfg.min_texture:
                break
        else:
            raise Skip("low_texture")

        rejected = []
        for i in ctx.rng.permutation(len(cfg.kinds)):
            kind = cfg.kinds[i]
            made = self._family(kind, hole, work, ctx)
            if isinstance(made, str):
                rejected.append({"kind": kind, "reason": made})
                continue
            family, hole = made
            patches = [self._render(work, o["box"], m, o["turn"]) for o in family]
            if kind == "region" or self._spread(patches) is not None:  # region sets were checked already
                break
            rejected.append({"kind": kind, "reason": "alike_or_plain"})
        else:
            raise Skip("ambiguous_options")

        correct = ctx.balanced(cfg.options)
        others = [int(i) + 1 for i in ctx.rng.permutation(cfg.options - 1)]
        order = others[:correct] + [0] + others[correct:]  # order[slot]: which family member is shown there
        letters = LETTERS[: cfg.options]

        if cfg.fill == "mean":  # the hole's own pixels stay out of the mean
            visible = base.copy()
            visible.paste((0, 0, 0), hole)
            n = cfg.size * cfg.size - m * m
            fill = tuple(
                round(sum(v * c for v, c in enumerate(band.histogram())) / n) for band in visible.split()
            )
        else:
            fill = GREY
        masked = base.copy()
        masked.paste(fill, hole)

        shown = "\n".join(f"Option {letter}: <image>" for letter in letters)
        colour = "flat grey" if cfg.fill == "grey" else "flat single-colour"
        prompt = (
            f"<image>\nA square part of this picture is hidden under a {colour} square. Below are "
            f"{cfg.options} candidate patches, each shown at the size of the hidden square.\n"
            f"{shown}\n"
            f"Exactly one candidate is the hidden content as it was. The others are {_others(cfg.kinds)}. "
            "Which option fills the hidden square?"
        )
        options = []
        for slot, member in enumerate(order):
            option = {"letter": letters[slot], "box": list(family[member]["box"])}
            if family[member]["turn"] is not None:
                option["turn"] = family[member]["turn"].name.lower()
            options.append(option)
        meta = {
            "crop_box": crop_box,
            "hole": list(hole),
            "fill": list(fill),
            "kind": kind,
            "options": options,
            "rejected": rejected,
        }
        verifier = {"kind": "choice", "options": list(letters)}  # verify.normalize folds "(a)", "Option A"
        return Puzzle([masked] + [patches[k] for k in order], prompt, letters[correct], verifier, meta)
