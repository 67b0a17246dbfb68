"""Correspondence (geometric): image 2 is a warped view of image 1; which lettered point in image 2 is the
ringed point of image 1.

Image 2 samples a random quadrilateral that lies wholly inside image 1 (rotated, scaled, sheared, with
perspective), so it has no empty borders that would show the warp. The matrix is built in closed form
from corners quantised to 1/256 px, with elementwise float arithmetic, so every machine gets the same bytes.
Coordinates are continuous pixels of the output images: origin at the top-left corner, x right, y down.

Each distractor is where the query point would land under another view drawn like the true one, and a
candidate set is kept or dropped by conditions that treat every candidate alike (inside the margin, apart
from the others, on textured ground, not look-alikes). Given the query, the true match is then
exchangeable with the distractors: no rule on positions or texture alone (same place, nearest the centre,
the middle of the group, the busiest spot) beats chance. Rings and labels are drawn after warping, all in
one style.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import imageops as ops
from .base import Context, Puzzle, Skip, Task, TaskConfig, register

LETTERS = "ABCDEFGH"
CELL = 4  # descriptor cell side, in pixels
WINDOW = 8  # descriptor side in cells: 32 px around a point
STEP = 8  # descriptor grid step, in pixels
NORM = WINDOW * WINDOW * 3 * CELL * CELL * 255  # largest descriptor distance
ATTEMPTS = 100  # query points tried at most before the image is skipped
VIEW_BATCH = 128  # views drawn at once for one query point


@dataclass(frozen=True)
class CorrespondenceConfig(TaskConfig):
    size: int = 336  # side of both images in pixels (a multiple of 28 suits Qwen2.5-VL)
    candidates: int = 4  # lettered points in image 2, one of them the true match
    rotation: float = 30.0  # image 2's view is turned by up to this many degrees either way
    scale: tuple[float, float] = (0.55, 0.85)  # side of the region image 2 shows, as a share of image 1
    shear: float = 0.15  # largest shear factor of the view
    perspective: float = 0.08  # largest corner displacement, as a share of the view's side
    marker_radius: int = 9  # ring radius in pixels, the same in both images
    min_separation: int = 32  # pixels between any two candidates in image 2
    similar_sets: int = 2  # valid candidate sets drawn; the one whose surroundings look most alike is kept
    min_distance: float = 0.05  # candidates' surroundings closer than this look the same (ambiguous)
    min_texture: float = 0.03  # every candidate's surroundings must vary at least this much (no plain sky)
    min_side: int = 112  # smaller sources are skipped

    def check(self):
        if not 2 <= self.candidates <= len(LETTERS):
            raise ValueError(f"candidates must be 2..{len(LETTERS)}")
        if not 0 <= self.rotation <= 180:
            raise ValueError("rotation must be in [0, 180] degrees")
        lo, hi = self.scale if len(self.scale) == 2 else (0, -1)
        if not 0.2 <= lo <= hi <= 1:
            raise ValueError(
                "scale must be (lo, hi) with 0.2 <= lo <= hi <= 1 (image 2 shows part of image 1)"
            )
        if not 0 <= self.shear < 1 or not 0 <= self.perspective <= 0.2:
            raise ValueError("shear must be in [0, 1) and perspective in [0, 0.2]")
        if self.size < 112 or self.min_side < 28:
            raise ValueError("size must be at least 112 and min_side at least 28 pixels")
        if not 3 <= self.marker_radius <= self.size // 16:
            raise ValueError(f"marker_radius must be 3..{self.size // 16} pixels")
        if self.min_separation < 3 * self.marker_radius:
            raise ValueError("min_separation must be at least 3 * marker_radius, or rings and labels overlap")
        if self.min_separation * (math.isqrt(self.candidates - 1) + 2) > self.size:
            raise ValueError("min_separation is too large for this many candidates at this size; lower one")
        if self.similar_sets < 1 or self.min_distance < 0 or self.min_texture < 0:
            raise ValueError("similar_sets must be >= 1; min_distance and min_texture >= 0")


def _square_to_quads(qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """(n, 3, 3) maps of the unit square (corners TL, TR, BR, BL) onto n quadrilaterals (Heckbert's closed
    form; it reduces to the affine map for parallelograms). Elementwise IEEE arithmetic only."""
    (x0, x1, x2, x3), (y0, y1, y2, y3) = qx.T, qy.T
    sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
    dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
    den = dx1 * dy2 - dx2 * dy1
    g, h = (sx * dy2 - dx2 * sy) / den, (dx1 * sy - sx * dy1) / den
    one = np.ones_like(g)
    rows = [[x1 - x0 + g * x1, x3 - x0 + h * x3, x0], [y1 - y0 + g * y1, y3 - y0 + h * y3, y0], [g, h, one]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def _inverse(m: np.ndarray) -> np.ndarray:
    """Inverses of (n, 3, 3) homographies by their adjugates, scaled so that the last entry is 1."""
    a, b, c, d, e, f, g, h, i = (m[:, k // 3, k % 3] for k in range(9))
    adj = [
        [e * i - f * h, c * h - b * i, b * f - c * e],
        [f * g - d * i, a * i - c * g, c * d - a * f],
        [d * h - e * g, b * g - a * h, a * e - b * d],
    ]
    return np.stack([np.stack(r, -1) for r in adj], -2) / adj[2][2][:, None, None]


def apply(m, x, y):
    """Map points by a 3x3 homography (nested lists or an array; x, y scalars or arrays)."""
    w = m[2][0] * x + m[2][1] * y + m[2][2]
    return (m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w


def _descriptors(image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points every STEP px and, for the 32 px window around each, an integer descriptor and its texture.

    Integer sums keep rankings identical on every machine. Returns x, y (ints), descriptors (points, 192)
    and texture (the grey-level standard deviation over the window's cells, in [0, 1]).
    """
    a = np.asarray(image, dtype=np.int64)
    n = a.shape[0] // CELL
    cells = a[: n * CELL, : n * CELL].reshape(n, CELL, n, CELL, 3).sum(axis=(1, 3))
    stride = STEP // CELL
    win = np.lib.stride_tricks.sliding_window_view(cells, (WINDOW, WINDOW), axis=(0, 1))[::stride, ::stride]
    rows, cols = win.shape[:2]
    desc = win.transpose(0, 1, 3, 4, 2).reshape(rows * cols, -1)
    grey = win.sum(axis=2).reshape(rows * cols, -1)
    count = WINDOW * WINDOW
    var = count * (grey * grey).sum(-1) - grey.sum(-1) ** 2  # count^2 * variance, exact
    texture = np.sqrt(var) / (count * 3 * CELL * CELL * 255)
    ys, xs = np.divmod(np.arange(rows * cols), cols)
    return xs * STEP + WINDOW * CELL // 2, ys * STEP + WINDOW * CELL // 2, desc, texture


def _draw_ring(draw: ImageDraw.ImageDraw, x: float, y: float, r: int) -> None:
    draw.ellipse((x - r - 1, y - r - 1, x + r + 1, y + r + 1), outline=(0, 0, 0), width=4)
    draw.ellipse((x - r, y - r, x + r, y + r), outline=(255, 255, 255), width=2)


def _draw_label(draw: ImageDraw.ImageDraw, x: float, y: float, r: int, text: str, font, size: int) -> None:
    """A white letter on a black box above and right of the ring, flipped only where the edge requires."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 4
    bx = x + r if x + r + w <= size else x - r - w
    by = y - r - h if y - r - h >= 0 else y + r
    draw.rectangle((bx, by, bx + w, by + h), fill=(0, 0, 0))
    draw.text((bx + 2 - left, by + 2 - top), text, fill=(255, 255, 255), font=font)


@register
class Correspondence(Task):
    name = "correspondence"
    Config = CorrespondenceConfig
    summary = "Warp the image by a known homography; answer which lettered point in image 2 matches the ring."

    def _views(self, ctx: Context, n: int) -> dict[str, np.ndarray]:
        """n random quadrilaterals inside image 1 whose contents image 2 would show, their maps (image 2 ->
        image 1 and back) and the parameters drawn. Corners are quantised to 1/256 px, so the last bits of
        sin and cos on any machine cannot change them."""
        cfg, size = self.config, self.config.size
        theta = np.radians(ctx.rng.uniform(-cfg.rotation, cfg.rotation, n))
        scale = ctx.rng.uniform(*cfg.scale, n)
        shear = ctx.rng.uniform(-cfg.shear, cfg.shear, n)
        jitter = ctx.rng.uniform(-cfg.perspective, cfg.perspective, (n, 4, 2))
        unit = np.array([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])
        u = unit[:, 0] + shear[:, None] * unit[:, 1] + jitter[..., 0]
        v = unit[:, 1] + jitter[..., 1]
        c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
        px, py = c * u - s * v, s * u + c * v
        # shrink a view where the turn would push it out of image 1 (`scale` then records what was used)
        extent = np.maximum(px.max(1) - px.min(1), py.max(1) - py.min(1))
        side = np.minimum(scale * size, 0.98 * size / extent)
        cx = ctx.rng.uniform(-px.min(1) * side, size - px.max(1) * side)
        cy = ctx.rng.uniform(-py.min(1) * side, size - py.max(1) * side)
        qx = np.round((cx[:, None] + px * side[:, None]) * 256) / 256
        qy = np.round((cy[:, None] + py * side[:, None]) * 256) / 256
        to_first = _square_to_quads(qx, qy)
        to_first[:, :, :2] /= size  # image-2 pixels, not the unit square
        return {
            "to_first": to_first,
            "matrix": _inverse(to_first),
            "corners": np.stack([qx, qy], -1),
            "rotation_deg": np.degrees(theta),
            "scale": side / size,
            "shear": shear,
        }

    def _sets(self, ctx: Context, grid: tuple, textured: np.ndarray, margin: int) -> list[dict]:
        """Valid candidate sets around one random query point; every condition treats all candidates alike.

        Views are drawn in a batch; those that show the query inside the margin are taken in order, in
        groups of `candidates`: the first of a group is the true view, and the others place the
        distractors where the query would land under them.
        """
        cfg, size, k = self.config, self.config.size, self.config.candidates
        xs, ys, desc, tex = grid
        cols = int(xs.max() - xs[0]) // STEP + 1
        q = int(textured[int(ctx.rng.integers(len(textured)))])
        query = (float(xs[q]), float(ys[q]))
        views = self._views(ctx, VIEW_BATCH)
        x, y = apply(views["matrix"].transpose(1, 2, 0), *query)
        shown = np.flatnonzero((x >= margin) & (x <= size - margin) & (y >= margin) & (y <= size - margin))
        groups = shown[: len(shown) // k * k].reshape(-1, k)  # groups[:, 0]: the true views
        if not len(groups):
            return []
        px, py = x[groups], y[groups]
        # the grid point of image 1 that each candidate shows in image 2, seen through its group's true view
        cx, cy = apply(views["to_first"][groups[:, 0]][..., None].transpose(1, 2, 0, 3), px, py)
        rows = np.clip(np.round((cy - ys[0]) / STEP), 0, cols - 1).astype(np.int64)
        content = rows * cols + np.clip(np.round((cx - xs[0]) / STEP), 0, cols - 1).astype(np.int64)
        a, b = np.triu_indices(k, 1)
        apart = ((px[:, a] - px[:, b]) ** 2 + (py[:, a] - py[:, b]) ** 2 >= cfg.min_separation**2).all(1)
        dists = np.abs(desc[content[:, a]] - desc[content[:, b]]).sum(-1)
        valid = apart & (tex[content] >= cfg.min_texture).all(1) & (dists >= cfg.min_distance * NORM).all(1)
        found = []
        for g in np.flatnonzero(valid):
            t = int(groups[g, 0])
            view = {
                "rotation_deg": round(float(views["rotation_deg"][t]), 3),
                "scale": round(float(views["scale"][t]), 4),
                "shear": round(float(views["shear"][t]), 4),
                "corners": views["corners"][t].tolist(),
            }
            found.append(
                {
                    "score": float(dists[g].sum()) / (NORM * len(a)),
                    "view": view,
                    "to_first": views["to_first"][t].tolist(),
                    "matrix": views["matrix"][t].tolist(),
                    "query": query,
                    "points": [(float(u), float(v)) for u, v in zip(px[g], py[g], strict=True)],
                }
            )
        return found

    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        cfg, size, r = self.config, self.config.size, self.config.marker_radius
        if min(image.size) < cfg.min_side:
            raise Skip("too_small")
        square, crop_box = ops.square_crop(image, ctx.rng)
        work = ops.resize(square, min(square.size[0], 2 * size))  # image 2 resamples from here
        first = ops.resize(work, size)
        grid = _descriptors(first)
        xs, ys, _, tex = grid
        margin = max(r + 4, WINDOW * CELL // 2)
        inside = (xs >= margin) & (xs <= size - margin) & (ys >= margin) & (ys <= size - margin)
        textured = np.flatnonzero(inside & (tex >= cfg.min_texture))
        if not len(textured):
            raise Skip("low_texture")
        found = []
        for _ in range(ATTEMPTS):
            found += self._sets(ctx, grid, textured, margin)
            if len(found) >= cfg.similar_sets:
                break
        if not found:
            raise Skip("few_candidates")
        best = min(found[: cfg.similar_sets], key=lambda f: f["score"])  # the most alike: the hardest

        k = work.size[0] / size
        (a, b, c), (d, e, f), (g, h, i) = best["to_first"]
        data = (k * a / i, k * b / i, k * c / i, k * d / i, k * e / i, k * f / i, g / i, h / i)
        second = work.transform((size, size), Image.Transform.PERSPECTIVE, data, Image.Resampling.BICUBIC)

        correct = ctx.balanced(cfg.candidates)
        truth, *others = [(round(x, 2), round(y, 2)) for x, y in best["points"]]
        others = [others[int(t)] for t in ctx.rng.permutation(cfg.candidates - 1)]
        points = others[:correct] + [truth] + others[correct:]
        letters = LETTERS[: cfg.candidates]

        font = ImageFont.load_default(size=max(10, round(1.4 * r)))
        draw1, draw2 = ImageDraw.Draw(first), ImageDraw.Draw(second)
        _draw_ring(draw1, *best["query"], r)
        for x, y in points:
            _draw_ring(draw2, x, y, r)
        for letter, (x, y) in zip(letters, points, strict=True):  # labels last: a ring never covers one
            _draw_label(draw2, x, y, r, letter, font, size)

        names = ", ".join(letters[:-1]) + f" and {letters[-1]}"
        prompt = (
            "Image 1: <image>\nImage 2: <image>\n"
            "Image 2 shows part of the scene in image 1 from a different viewpoint: it may be turned, zoomed "
            "in, sheared or seen at a slant. A ring marks one point in image 1. In image 2, rings labelled "
            f"{names} mark candidate points, and exactly one of them sits on the same spot of the scene. "
            "Which labelled point in image 2 corresponds to the ringed point in image 1?"
        )
        meta = {
            "crop_box": crop_box,
            "matrix": best["matrix"],  # image 1 -> image 2, continuous pixel coordinates
            "view": best["view"],
            "query": list(best["query"]),
            "candidates": {letter: list(p) for letter, p in zip(letters, points, strict=True)},
            "sets_compared": min(len(found), cfg.similar_sets),
            "set_distance": round(best["score"], 4),  # mean descriptor distance between candidates
        }
        aliases = {letter: [f"point {letter}", f"candidate {letter}"] for letter in letters}
        verifier = {"kind": "choice", "options": list(letters), "aliases": aliases}
        return Puzzle([first, second], prompt, letters[correct], verifier, meta)
