"""The gradient points the right way, end to end: GRPO lifts the tiny model from chance to >= 0.9 reward.

The puzzle is two-answer rotation (is this photo upright, 0, or upside down, 180?) on the synthetic corpus,
with one 56x56 image (4 image tokens). The prompt text is identical for every puzzle, so only the image can
tell the answers apart. The format warm-up (train_fixtures.warm_up_format) uses random labels: the policy
starts writing `<answer>0</answer>` or `<answer>180</answer>` about evenly, whatever the image.

The settings were checked over eight seeds, which reached the goal in 29 to 48 steps; the bound is 100.
A small KL term to the warmed-up reference keeps the policy from collapsing onto one answer before it has
learned to look.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from puzzlegen.train.data import open_shards  # noqa: E402
from puzzlegen.train.trainer import Trainer  # noqa: E402
from tests.train_fixtures import rotation_shards, tiny_model, train_config, warm_model  # noqa: E402,F401

MAX_STEPS, GOAL, WINDOW = 100, 0.9, 3


def test_grpo_learns_an_image_dependent_puzzle(tmp_path, warm_model, rotation_shards):  # noqa: F811
    cfg = train_config(
        rotation_shards,
        warm_model,
        tmp_path / "run",
        steps=MAX_STEPS,
        batch_size=16,
        group_size=8,
        lr=1e-3,
        beta=0.05,
        mini_batches=4,
        micro_batch_size=16,
        max_new_tokens=8,
        seed=0,
    )
    trainer = Trainer(cfg)
    rewards = []
    while trainer.step < MAX_STEPS:
        rewards.append(trainer.train_step()["reward/mean"])
        if len(rewards) >= WINDOW and sum(rewards[-WINDOW:]) / WINDOW >= GOAL:
            break
    assert rewards[0] < 0.7, f"the warmed-up policy should start near chance, not at {rewards[0]:.2f}"
    recent = sum(rewards[-WINDOW:]) / WINDOW
    assert recent >= GOAL, f"mean reward {recent:.2f} after {len(rewards)} steps; trajectory {rewards}"
    # it generalises: greedy answers on the held-out test images are mostly right as well
    trainer.eval_shards = open_shards(str(rotation_shards), "test")
    held_out = trainer.evaluate()["eval/accuracy/mean"]
    print(f"steps {len(rewards)}, first {rewards[0]:.3f}, last {rewards[-WINDOW:]}, held out {held_out:.3f}")
    assert held_out >= 0.75
