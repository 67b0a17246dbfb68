"""Each distinct image of a forward pass is encoded once.

The G completions of a puzzle repeat its prompt, images included. A training forward over them would run
the vision tower G times on the same pixels; under `encode_once` the model receives the pixels of each
distinct image once, and the features are repeated for the rows that share them. Gradients of the shared
features sum over those rows, exactly as if each row had encoded its own copy.

It works by giving the model's `get_image_features` (called inside `forward`, so DDP and FSDP hooks run as
usual) the distinct images' grid and expanding its per-image output to the rows' order. Qwen2.5-VL calls
it as `get_image_features(pixel_values, image_grid_thw, ...)` and concatenates `.pooler_output`, a tuple
with one tensor per image, in transformers 5.17 to 5.23 at least; the tests compare log-probs with and
without it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageShare:
    grid_thw: torch.Tensor  # (distinct images, 3), in the order of the pixel values given to the model
    expand: tuple[int, ...]  # for each image of the batch, rows in order: its index among the distinct


def _vision_language_model(model):
    """The Qwen2_5_VLModel inside any wrapper (PEFT, DDP, FSDP)."""
    from transformers import Qwen2_5_VLModel

    found = next((m for m in model.modules() if isinstance(m, Qwen2_5_VLModel)), None)
    if found is None:
        raise TypeError(f"{type(model).__name__} holds no Qwen2_5_VLModel")
    return found


@contextmanager
def encode_once(model, share: ImageShare | None):
    if share is None:
        yield
        return
    core = _vision_language_model(model)
    encode = core.get_image_features  # the class's method, bound

    def features(pixel_values, image_grid_thw=None, **kwargs):
        out = encode(pixel_values, share.grid_thw.to(pixel_values.device), **kwargs)
        distinct = out.pooler_output
        out.pooler_output = tuple(distinct[i] for i in share.expand)
        return out

    core.get_image_features = features
    try:
        yield
    finally:
        del core.get_image_features
