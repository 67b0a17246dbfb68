"""A built-in procedural corpus that works offline.

Each image is an outdoor scene with an unmistakable up: a sky gradient with a sun and clouds above, hills
on the horizon, textured ground below, and trees, houses and posts standing on the ground with their
shadows cast away from the sun. Fractal noise textures every region, so no two jigsaw tiles look alike.
Image `i` depends only on `i` (and the corpus seed), so every id is a distinct, reproducible image.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .base import Source

SIZES = ((512, 384), (448, 448), (576, 384), (384, 512), (640, 480))


def _noise(rng: np.random.Generator, w: int, h: int, octaves: int = 4) -> np.ndarray:
    """Fractal value noise in about [-1, 1], shape (h, w): octaves summed at quarter size, upsampled once."""
    small = np.zeros((h // 4, w // 4), np.float32)
    for o in range(octaves):
        cells = 4 * 2**o
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        small += np.asarray(Image.fromarray(grid).resize((w // 4, h // 4), Image.Resampling.BICUBIC)) / 2**o
    return np.asarray(Image.fromarray(small / 2).resize((w, h), Image.Resampling.BILINEAR))


def _jitter(rng: np.random.Generator, rgb, spread: int = 30) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in rgb)


def render(index: int, seed: int = 0) -> Image.Image:
    digest = hashlib.sha256(f"puzzlegen-synthetic|{seed}|{index}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    w, h = SIZES[int(rng.integers(len(SIZES)))]
    horizon = int(h * rng.uniform(0.42, 0.62))

    # sky: darker at the top, pale at the horizon
    top, low = np.array(_jitter(rng, (40, 90, 190))), np.array(_jitter(rng, (190, 215, 240)))
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top * (1 - t) + low * t, (horizon, w, 3))
    # ground: lighter and finer near the horizon, darker and coarser near the viewer
    soil = np.array(
        _jitter(rng, [(70, 130, 50), (150, 120, 70), (200, 180, 120), (90, 110, 60)][int(rng.integers(4))])
    )
    g = np.linspace(0, 1, h - horizon, dtype=np.float32)[:, None, None]
    ground = np.broadcast_to(soil * (1.1 - 0.45 * g), (h - horizon, w, 3))
    pixels = np.concatenate([sky, ground]).astype(np.float32)
    texture = _noise(rng, w, h)
    pixels[:horizon] += 16 * texture[:horizon, :, None]
    # a glow around the sun makes the sky differ from left to right as well as top to bottom
    sun_x, sun_y = float(rng.uniform(0.1, 0.9)) * w, float(rng.uniform(0.1, 0.25)) * h
    yy, xx = np.mgrid[0:horizon, 0:w].astype(np.float32)
    pixels[:horizon] += 70 * np.exp(-np.hypot(xx - sun_x, yy - sun_y) / (0.3 * w))[:, :, None]
    pixels[horizon:] += 38 * texture[horizon:, :, None] + 14 * _noise(rng, w, h, 6)[horizon:, :, None]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image, "RGBA")

    sun_r = float(rng.uniform(0.04, 0.08)) * h
    draw.ellipse([sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r], fill=(255, 240, 170, 255))
    for _ in range(int(rng.integers(1, 5))):  # clouds: flat bottoms, puffy tops
        cx, cy, cw = rng.uniform(0, w), rng.uniform(0.05, 0.3) * h, rng.uniform(0.08, 0.2) * w
        for k in range(4):
            ox, r = cx + (k - 1.5) * cw / 3, cw / 4 * (1.3 if k in (1, 2) else 1)
            draw.ellipse([ox - r, cy - r, ox + r, cy + r * 0.4], fill=(255, 255, 255, 200))
    # hills on the horizon
    xs = np.linspace(0, w, 9)
    peaks = horizon - rng.uniform(0.03, 0.15, 9) * h
    hill = _jitter(rng, (90, 110, 130))
    draw.polygon(
        [(0, horizon)] + list(zip(xs.tolist(), peaks.tolist(), strict=True)) + [(w, horizon)],
        fill=hill + (255,),
    )

    # objects standing on the ground, nearer ones lower and larger; shadows fall away from the sun
    shadow_dir = 1.0 if sun_x < w / 2 else -1.0
    things = sorted(
        (float(rng.uniform(horizon + 8, h - 4)), float(rng.uniform(0, w)), int(rng.integers(3)))
        for _ in range(int(rng.integers(3, 8)))
    )
    for base_y, x, kind in things:
        scale = 0.25 + 1.6 * (base_y - horizon) / (h - horizon)
        height = scale * float(rng.uniform(0.12, 0.22)) * h
        width = height * (0.45 if kind == 0 else 0.8 if kind == 1 else 0.12)
        draw.polygon(
            [
                (x - width / 2, base_y),
                (x + width / 2, base_y),
                (x + width / 2 + shadow_dir * height * 0.9, base_y + height * 0.12),
                (x - width / 2 + shadow_dir * height * 0.9, base_y + height * 0.12),
            ],
            fill=(0, 0, 0, 90),
        )
        if kind == 0:  # tree: trunk and a canopy above it
            draw.rectangle(
                [x - width * 0.12, base_y - height * 0.5, x + width * 0.12, base_y],
                fill=_jitter(rng, (90, 60, 35)),
            )
            draw.ellipse(
                [x - width / 2, base_y - height, x + width / 2, base_y - height * 0.4],
                fill=_jitter(rng, (40, 110, 40)),
            )
        elif kind == 1:  # house: walls, a door, a pointed roof
            wall_top = base_y - height * 0.6
            draw.rectangle(
                [x - width / 2, wall_top, x + width / 2, base_y], fill=_jitter(rng, (200, 170, 140), 50)
            )
            draw.rectangle(
                [x - width * 0.1, base_y - height * 0.3, x + width * 0.1, base_y],
                fill=_jitter(rng, (80, 50, 30)),
            )
            draw.polygon(
                [(x - width * 0.6, wall_top), (x + width * 0.6, wall_top), (x, base_y - height)],
                fill=_jitter(rng, (150, 40, 30)),
            )
        else:  # post with a lamp on top
            draw.rectangle(
                [x - width / 2, base_y - height, x + width / 2, base_y], fill=_jitter(rng, (60, 60, 70))
            )
            draw.ellipse(
                [x - width * 1.5, base_y - height - width * 2, x + width * 1.5, base_y - height + width],
                fill=(255, 220, 120, 255),
            )
    return image.filter(ImageFilter.SMOOTH) if rng.random() < 0.3 else image


class SyntheticSource(Source):
    kind = "synthetic"

    def __init__(self, count: int = 1000, seed: int = 0):
        self.count, self.seed = count, seed

    def ids(self) -> list[str]:
        return [f"synthetic-{self.seed}-{i:07d}" for i in range(self.count)]

    def read(self, index: int) -> bytes:
        buffer = io.BytesIO()
        render(index, self.seed).save(buffer, format="JPEG", quality=92)
        return buffer.getvalue()

    def describe(self) -> dict:
        return {"kind": self.kind, "name": "synthetic", "uri": f"synthetic:{self.count}", "seed": self.seed}
