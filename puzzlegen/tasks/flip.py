"""Flip: one tile of an R x C grid was mirrored in place; name the tile (and, optionally, the direction).

Tiles are named like position's cells ("top-left", "center") on grids up to 3 x 3, and numbered 1..n in
reading order on larger ones. Tiles are flipped at source resolution on a grid of 16-pixel multiples, so
that the source's JPEG blocks stay on their grid and block seams cannot point at the flipped tile.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from . import imageops as ops
from .base import Context, Puzzle, Skip, Task, TaskConfig, register
from .cells import cell_aliases, cell_names

_MIRROR = {"horizontal": Image.Transpose.FLIP_LEFT_RIGHT, "vertical": Image.Transpose.FLIP_TOP_BOTTOM}
_SAID = {"horizontal": "mirrored left to right", "vertical": "mirrored top to bottom"}
_MCU = 16  # JPEG's largest block (4:2:0 chroma)


@dataclass(frozen=True)
class FlipConfig(TaskConfig):
    rows: int = 2
    cols: int = 2
    # the flips drawn from: "horizontal" mirrors left to right, "vertical" top to bottom
    axes: tuple[str, ...] = ("horizontal", "vertical")
    ask_axis: bool = False  # also ask which way the tile was flipped ("top-left, horizontal")
    tile_size: int = 224  # output tile side in pixels; 2 x 2 gives a 448-pixel image
    gap: int = 0  # blank pixels between tiles: hides the seams around the flipped tile (harder)
    min_tile_source: int = 48  # source pixels per tile side below which the image is skipped
    # thumbnail distance under which a mirrored tile looks unchanged; a tile with no visible flip (with
    # ask_axis: any invisible flip) skips the whole image
    symmetry_threshold: float = 0.02

    def check(self):
        if not (1 <= self.rows <= 8 and 1 <= self.cols <= 8 and self.rows * self.cols >= 2):
            raise ValueError("rows and cols must be 1..8 with at least two tiles")
        if not self.axes or len(set(self.axes)) != len(self.axes) or set(self.axes) - set(_MIRROR):
            raise ValueError(f"axes must be distinct values from {tuple(_MIRROR)}")
        if self.tile_size < 28 or self.gap < 0 or self.min_tile_source < _MCU:
            raise ValueError(f"tile_size must be >= 28, gap >= 0 and min_tile_source >= {_MCU}")


def _labels(rows: int, cols: int) -> tuple[list[str], dict[str, list[str]]]:
    """Tile names and their aliases: cell names up to 3 x 3, else "1".."n" with "tile 1", "piece 1"."""
    names = cell_names(rows, cols)
    if names:
        return names, cell_aliases(rows, cols, ("", " tile", " cell", " piece"))
    numbers = [str(k) for k in range(1, rows * cols + 1)]
    return numbers, {k: [f"tile {k}", f"piece {k}", f"#{k}"] for k in numbers}


def _pair_aliases(label: str, aliases: list[str], axis: str) -> list[str]:
    """Other spellings of "top-left, horizontal": "upper left horizontally", "top-left horizontal", ...: the
    tile as named or with upper/lower, the direction as adjective or adverb, with or without the comma."""
    plain = label.replace("-", " ")
    bare = [label] + [a for a in aliases if a.replace("upper", "top").replace("lower", "bottom") == plain]
    forms = [f"{s}{sep}{w}" for s in bare for w in (axis, f"{axis}ly") for sep in (", ", " ")]
    return [f for f in forms if f != f"{label}, {axis}"]


@register
class Flip(Task):
    name = "flip"
    Config = FlipConfig
    summary = "Mirror one tile of an R x C grid in place; answer which tile (and optionally which way)."
    shorthand = ("rows", "cols")

    def _region(self, image: Image.Image, ctx: Context) -> tuple[Image.Image, list[int], int]:
        """A cols x rows block of square cells, each a multiple of 16 pixels, at an 8-aligned offset."""
        cfg = self.config
        w, h = image.size
        cell = min(w // cfg.cols, h // cfg.rows) // _MCU * _MCU
        if cell < cfg.min_tile_source:
            raise Skip("too_small")
        rw, rh = cell * cfg.cols, cell * cfg.rows
        left = int(ctx.rng.integers(0, (w - rw) // ops.BLOCK + 1)) * ops.BLOCK
        top = int(ctx.rng.integers(0, (h - rh) // ops.BLOCK + 1)) * ops.BLOCK
        box = [left, top, left + rw, top + rh]
        return image.crop(box), box, cell

    def _composite(self, region: Image.Image, cell: int) -> Image.Image:
        cfg, t, g = self.config, self.config.tile_size, self.config.gap
        if not g:
            return ops.resize(region, (cfg.cols * t, cfg.rows * t))
        canvas = Image.new(
            "RGB", (cfg.cols * t + (cfg.cols - 1) * g, cfg.rows * t + (cfg.rows - 1) * g), "white"
        )
        for r in range(cfg.rows):
            for c in range(cfg.cols):
                tile = region.crop((c * cell, r * cell, (c + 1) * cell, (r + 1) * cell))
                canvas.paste(ops.resize(tile, t), (c * (t + g), r * (t + g)))
        return canvas

    def _visible_axes(self, tile: Image.Image) -> list[str]:
        """The configured flips that change the tile's look by at least symmetry_threshold."""
        thumb = ops.thumbnail(tile)
        return [
            a
            for a in self.config.axes
            if ops.distance(thumb, ops.thumbnail(tile.transpose(_MIRROR[a])))
            >= self.config.symmetry_threshold
        ]

    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        cfg = self.config
        n = cfg.rows * cfg.cols
        region, box, cell = self._region(image, ctx)
        tiles = [
            (c * cell, r * cell, (c + 1) * cell, (r + 1) * cell)
            for r in range(cfg.rows)
            for c in range(cfg.cols)
        ]
        visible = [self._visible_axes(region.crop(t)) for t in tiles]
        # judged for every tile before the answer is drawn, so that skips cannot favour some tiles: a tile
        # that looks the same mirrored (a sky, often, left to right) would make an answer nobody can see
        if any(len(v) < len(cfg.axes) if cfg.ask_axis else not v for v in visible):
            raise Skip("flip_symmetric")

        labels, aliases = _labels(cfg.rows, cfg.cols)
        if cfg.ask_axis:
            pick = ctx.balanced(n * len(cfg.axes))
            index, axis = pick // len(cfg.axes), cfg.axes[pick % len(cfg.axes)]
        else:  # the direction is told, not asked: any visible one will do
            index = ctx.balanced(n)
            axis = visible[index][int(ctx.rng.integers(len(visible[index])))]
        t = tiles[index]
        region.paste(region.crop(t).transpose(_MIRROR[axis]), t[:2])
        composite = self._composite(region, cell)

        grid = f"{cfg.rows}x{cfg.cols}"
        if labels[0].isdigit():
            naming = (
                f"Number the tiles 1 to {n} in reading order "
                "(left to right, top to bottom); answer by number."
            )
        else:
            naming = f"The tiles are named {', '.join(labels)}; answer by name."
        if cfg.ask_axis:
            ways = " or ".join(f"{a}ly ({_SAID[a]})" for a in cfg.axes)
            words = " or ".join(f'"{a}"' for a in cfg.axes)
            prompt = (
                f"<image>\nThis image is a {grid} grid of tiles. One tile has been flipped in place, "
                f"either {ways}; the rest are untouched. {naming} Give the tile, a comma, then {words}. "
                "Which tile was flipped, and which way?"
            )
            options = [f"{label}, {a}" for label in labels for a in cfg.axes]
            extra = {
                f"{label}, {a}": _pair_aliases(label, aliases[label], a) for label in labels for a in cfg.axes
            }
            answer = f"{labels[index]}, {axis}"
            verifier = {"kind": "choice", "options": options, "aliases": extra}
        else:
            prompt = (
                f"<image>\nThis image is a {grid} grid of tiles. One tile has been {_SAID[axis]} in place; "
                f"the rest are untouched. {naming} Which tile was flipped?"
            )
            answer, verifier = labels[index], {"kind": "choice", "options": labels, "aliases": aliases}
        meta = {"crop_box": box, "tile": index, "axis": axis, "tile_box": list(t), "cell_source": cell}
        return Puzzle([composite], prompt, answer, verifier, meta)
