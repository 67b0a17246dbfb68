"""Seeded albumentations pipelines the tasks share, with a record and a plain-words account of what ran.

albumentations is imported on first use, so importing the task registry stays cheap. Its randomness comes
only from the Compose's own seed (set per puzzle in `apply`); global numpy or random seeds do nothing to it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

# what each transform did, as a participle for "The patch was then ..." (prompts never promise more)
PHRASES = {
    "ColorJitter": "colour-shifted",
    "ToGray": "converted to greyscale",
    "GaussianBlur": "blurred",
    "HorizontalFlip": "mirrored left to right",
    "GaussNoise": "overlaid with noise",
    "ImageCompression": "re-saved as a low-quality JPEG",
    "Solarize": "solarized",
    "Equalize": "histogram-equalized",
}
# photometric augmentations a task may name in its config, for crops whose place must stay findable
MENU = ("color_jitter", "grayscale", "blur", "hflip", "noise", "jpeg", "solarize", "equalize")
STRENGTHS = ("standard", "strong")


def _albumentations():
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check inside build workers
    import albumentations

    return albumentations


@lru_cache(maxsize=32)
def photometric(names: tuple[str, ...], p: float):
    """A pipeline of one transform per name, each applied with probability p."""
    A = _albumentations()
    make = {
        "color_jitter": lambda: A.ColorJitter(0.4, 0.4, 0.4, 0.1, p=p),
        "grayscale": lambda: A.ToGray(p=p),
        "blur": lambda: A.GaussianBlur(sigma_limit=(0.1, 2.0), p=p),
        "hflip": lambda: A.HorizontalFlip(p=p),
        "noise": lambda: A.GaussNoise(std_range=(0.02, 0.08), p=p),
        "jpeg": lambda: A.ImageCompression(quality_range=(30, 70), p=p),
        "solarize": lambda: A.Solarize(threshold_range=(0.5, 0.5), p=p),
        "equalize": lambda: A.Equalize(p=p),
    }
    return A.Compose([make[n]() for n in names], save_applied_params=True)


@lru_cache(maxsize=32)
def simclr(size: int, strength: str = "standard"):
    """SimCLR views as SSL4RL makes them; "strong" narrows the crop and raises most probabilities to 0.8."""
    A = _albumentations()
    strong = strength == "strong"
    q = 0.8 if strong else None
    views = [
        A.RandomResizedCrop(
            (size, size), scale=(0.08, 0.3) if strong else (0.08, 1.0), interpolation=3, p=1.0
        ),
        A.HorizontalFlip(p=q or 0.5),
        A.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8),
        A.ToGray(p=q or 0.2),
        A.GaussianBlur(sigma_limit=(0.1, 2.0), p=q or 0.5),
    ]
    if strong:
        views += [A.Solarize(threshold_range=(0.5, 0.5), p=q), A.Equalize(p=q)]
    return A.Compose(views, save_applied_params=True)


def _plain(value: Any) -> Any:
    """JSON-safe, short and stable: numbers rounded, small arrays as lists, big ones (noise maps) dropped."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist()) if value.size <= 8 else None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value] if len(value) <= 8 else None
    return value if value is None or isinstance(value, str) else None


def apply(pipeline, image: Image.Image, seed: int) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Run a pipeline under the puzzle's seed; return the result and each applied transform's parameters.

    Reseeding resets every random state, exactly as `Compose(seed=...)` does, so the pipelines are built
    once per process (building them costs more than running them on a crop).
    """
    pipeline.set_random_seed(seed)
    out = pipeline(image=np.asarray(image.convert("RGB")))
    applied = []
    for name, params in out["applied_transforms"]:
        kept = {k: _plain(v) for k, v in params.items() if k != "shape"}
        applied.append({"name": name, "params": {k: v for k, v in kept.items() if v is not None}})
    return Image.fromarray(np.ascontiguousarray(out["image"])), applied


def names(pipeline) -> list[str]:
    """The pipeline's transforms by class name, as `applied` records them."""
    return [type(t).__name__ for t in pipeline.transforms]


def describe(applied: list[dict[str, Any]]) -> list[str]:
    """The participles for what was applied, in order, e.g. ["blurred", "converted to greyscale"]."""
    return [PHRASES[a["name"]] for a in applied if a["name"] in PHRASES]


def join(words: list[str], last: str = "and") -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"
