"""Shared builders for the training tests: shards, a tiny random Qwen2.5-VL, and a format warm-up.

Import the fixtures into a test module (`from tests.train_fixtures import tiny_model, rotation_shards`).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from puzzlegen.build import BuildOptions, build
from puzzlegen.build.recipe import OutputFormat, Recipe, TaskEntry, from_tasks
from puzzlegen.sources import open_source
from puzzlegen.tasks import parse_task

# small images keep the tiny model fast: 56x56 pixels is a 4x4 patch grid, 4 image tokens
PIXELS = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}


def rotation_recipe(size: int = 56) -> Recipe:
    """Two-answer rotation (0 or 180 degrees, one image) with the answer tag and no reasoning block."""
    fmt = OutputFormat(style="answer_tag", think="none")
    _, task = parse_task("rotation", {"angles": [0, 180], "form": "single", "size": size, "min_side": 56})
    return Recipe("rotation2", "two-answer rotation", (TaskEntry("rotation", task, fmt),))


def build_shards(out: Path, recipe: Recipe | None = None, images: int = 64, shard_size: int = 32) -> Path:
    recipe = recipe or from_tasks("rotation,jigsaw2x2", OutputFormat(style="answer_tag", think="none"))
    build(
        open_source(f"synthetic:{images}"),
        recipe,
        BuildOptions(out=out, shard_size=shard_size, workers=1, test_fraction=0.2),
    )
    return out


def train_config(data: Path, model: Path, out: Path, **overrides):
    from puzzlegen.train.config import TrainConfig

    base = dict(
        data=str(data),
        model=str(model),
        out=out,
        steps=2,
        batch_size=2,
        group_size=4,
        max_new_tokens=8,
        lr=1e-3,
        device="cpu",
        precision="fp32",
        save_every=0,
        progress=False,
        tensorboard=False,
        micro_batch_size=4,
        **PIXELS,
    )
    return TrainConfig(**{**base, **overrides})


def _left_pad(rows: list[list[int]], value: int):
    import torch

    width = max(map(len, rows))
    return torch.tensor([[value] * (width - len(r)) + r for r in rows])


def warm_up_format(
    model_dir: Path, data: Path, out: Path, steps: int = 40, batch: int = 16, lr: float = 3e-3, seed: int = 0
) -> Path:
    """Supervised warm-up on the output format with *random* labels: afterwards the policy writes
    `<answer>X</answer>` with X drawn about evenly from the options, whatever the image, so its reward starts
    at chance and only GRPO can tie the answer to the image."""
    import json

    import torch

    from puzzlegen.train.data import PuzzleStream, open_shards
    from puzzlegen.train.encode import Encoder
    from puzzlegen.train.model import load_image_processor, load_model, load_tokenizer, quiet_transformers

    quiet_transformers()
    tokenizer = load_tokenizer(str(model_dir))
    images = load_image_processor(str(model_dir), **PIXELS)
    model = load_model(str(model_dir), torch.device("cpu"), torch.float32, "sdpa")
    encoder = Encoder(tokenizer, images, model.config, 4096, "You are a helpful assistant.", **PIXELS)
    shards = open_shards(str(data), "train")
    stream = PuzzleStream(shards, dict.fromkeys(shards.tasks(), 1.0), seed)
    encoded = [encoder.encode(stream.next()) for _ in range(sum(shards.tasks().values()))]
    picker = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        rows = picker.sample(encoded, batch)
        seqs, labels = [], []
        for e in rows:
            options = json.loads(e.puzzle.verifier)["options"]
            target = tokenizer(f"<answer>{picker.choice(options)}</answer>", add_special_tokens=False)[
                "input_ids"
            ]
            target += [encoder.im_end]
            seqs.append(e.input_ids + target)
            labels.append([-100] * len(e.input_ids) + target)
        input_ids, label_ids = _left_pad(seqs, encoder.pad_id), _left_pad(labels, -100)
        attention = _left_pad([[1] * len(s) for s in seqs], 0)
        out_ = model(
            input_ids=input_ids,
            attention_mask=attention,
            labels=label_ids,
            mm_token_type_ids=(input_ids == encoder.image_token).int(),
            pixel_values=torch.cat([e.pixel_values for e in rows]),
            image_grid_thw=torch.cat([e.grid_thw for e in rows]),
        )
        out_.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    images.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from puzzlegen.train.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def mixed_shards(tmp_path_factory) -> Path:
    """rotation + jigsaw2x2, Parquet and WebDataset."""
    return build_shards(tmp_path_factory.mktemp("mixed") / "shards", images=24, shard_size=8)


@pytest.fixture(scope="session")
def rotation_shards(tmp_path_factory) -> Path:
    return build_shards(
        tmp_path_factory.mktemp("rot") / "shards", rotation_recipe(), images=48, shard_size=16
    )


@pytest.fixture(scope="session")
def warm_model(tmp_path_factory, tiny_model, rotation_shards) -> Path:
    """The tiny model after the format warm-up: answers in the tagged format, at chance."""
    return warm_up_format(tiny_model, rotation_shards, tmp_path_factory.mktemp("warm") / "model")
