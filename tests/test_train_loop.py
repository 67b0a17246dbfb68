"""The GRPO loop end to end on the tiny model: a step from shards, checkpoints, exact resume, metrics."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from puzzlegen.train import checkpoint  # noqa: E402
from puzzlegen.train.metrics import read  # noqa: E402
from puzzlegen.train.trainer import Trainer  # noqa: E402
from tests.train_fixtures import (  # noqa: E402,F401
    mixed_shards,
    rotation_shards,
    tiny_model,
    train_config,
    warm_model,
)


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}


def _run(cfg, until: int | None = None) -> Trainer:
    trainer = Trainer(cfg)
    trainer.run(until)
    return trainer


@pytest.mark.parametrize("data_format", ["parquet", "wds"])
def test_one_step_from_shards(tmp_path, warm_model, rotation_shards, data_format):  # noqa: F811
    cfg = train_config(
        rotation_shards,
        warm_model,
        tmp_path / "run",
        steps=1,
        batch_size=4,
        group_size=4,
        data_format=data_format,
        tensorboard=True,
    )
    trainer = Trainer(cfg)
    before = _params(trainer)
    history = trainer.run()
    after = _params(trainer)
    values = history[0]
    assert values["sequences/trained"] > 0, "every group had equal rewards; the warm-up did not reach chance"
    assert any(not torch.equal(before[n], after[n]) for n in before)
    for key in (
        "reward/mean",
        "reward/rotation",
        "accuracy/rotation",
        "format/rotation",
        "kl",
        "clip/fraction",
        "entropy",
        "length/mean",
        "groups/zero_variance",
        "prompts/skipped_too_long",
        "tokens_per_s/step",
        "tokens_per_s/rollout",
        "tokens_per_s/train",
        "memory/peak_gb",
        "time/rollout",
        "time/logprob",
        "time/update",
    ):
        assert key in values, key
    assert 0 <= values["reward/mean"] <= 1 and values["entropy"] > 0
    logged = read(cfg.out)
    assert len(logged) == 1 and logged[0]["step"] == 1
    assert list((cfg.out / "tb").glob("events.out.tfevents.*"))
    # the final checkpoint: complete, loadable as a model folder, with the data position
    saved = checkpoint.latest(cfg.out)
    assert saved.name == "step-0000001"
    state = json.loads((saved / "state.json").read_text())
    assert state["step"] == 1 and state["data"][0]["drawn"] >= 4
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (saved / "model").iterdir()
    }
    assert not list((cfg.out / "checkpoints").glob(".tmp-*"))


def test_equal_reward_groups_are_skipped_and_counted(tmp_path, tiny_model, rotation_shards):  # noqa: F811
    """The random model never writes the answer tag: every reward is 0, so nothing is trained."""
    cfg = train_config(rotation_shards, tiny_model, tmp_path / "run", steps=1, batch_size=3, group_size=2)
    trainer = Trainer(cfg)
    before = _params(trainer)
    values = trainer.run()[0]
    assert values["groups/zero_variance"] == 3 and values["sequences/trained"] == 0
    assert all(torch.equal(before[n], p) for n, p in _params(trainer).items())


RESUME_CASES = {
    "full-fp32-kl-minibatches": dict(beta=0.05, mini_batches=2, ppo_epochs=2, micro_batch_size=3),
    "full-bf16-master-weights": dict(
        precision="bf16", loss_agg="seq-mean", schedule="cosine", warmup_steps=1
    ),
    "lora-kl": dict(lora=True, lora_r=4, lora_alpha=8, beta=0.1, loss_agg="dr-grpo", adv_scale="batch"),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_matches_an_uninterrupted_run(tmp_path, warm_model, rotation_shards, case):  # noqa: F811
    options = dict(batch_size=2, group_size=4, save_every=2, seed=3, **RESUME_CASES[case])
    straight = _run(train_config(rotation_shards, warm_model, tmp_path / "straight", steps=4, **options))
    _run(
        train_config(rotation_shards, warm_model, tmp_path / "split", steps=4, **options), until=2
    )  # stopped
    resumed = _run(
        train_config(rotation_shards, warm_model, tmp_path / "split", steps=4, resume="auto", **options)
    )
    assert resumed.step == 4
    want, got = _params(straight), _params(resumed)
    assert want.keys() == got.keys()
    different = [n for n in want if not torch.equal(want[n], got[n])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    # the resumed run logged steps 3 and 4 after the kept 1 and 2, and nothing twice
    assert [row["step"] for row in read(tmp_path / "split")] == [1, 2, 3, 4]
    rewards = [row["reward/mean"] for row in read(tmp_path / "straight")]
    assert rewards == [row["reward/mean"] for row in read(tmp_path / "split")]


def test_lora_reference_is_the_adapter_switched_off(tmp_path, warm_model, rotation_shards):  # noqa: F811
    """A fresh adapter (B = 0) changes nothing, so the first step's KL to the reference is exactly 0."""
    cfg = train_config(
        rotation_shards,
        warm_model,
        tmp_path / "run",
        steps=1,
        batch_size=2,
        group_size=4,
        lora=True,
        lora_r=4,
        lora_alpha=8,
        beta=0.1,
    )
    trainer = Trainer(cfg)
    assert trainer.reference is None  # no second model is loaded
    values = trainer.run()[0]
    assert values["sequences/trained"] > 0 and values["kl"] == 0.0


def test_long_prompts_are_skipped_and_counted(tmp_path, warm_model, mixed_shards):  # noqa: F811
    """Jigsaw prompts (four images) exceed a limit that rotation prompts (one image) fit under."""
    cfg = train_config(
        mixed_shards, warm_model, tmp_path / "run", steps=1, batch_size=4, group_size=2, max_prompt_tokens=180
    )  # rotation: 115 tokens, jigsaw2x2: 242
    trainer = Trainer(cfg)
    values = trainer.run()[0]
    assert values["prompts/skipped_too_long"] > 0
    assert set(k for k in values if k.startswith("reward/")) == {"reward/mean", "reward/rotation"}


def test_periodic_evaluation_reports_each_task(tmp_path, warm_model, mixed_shards):  # noqa: F811
    cfg = train_config(
        mixed_shards,
        warm_model,
        tmp_path / "run",
        steps=1,
        batch_size=2,
        group_size=2,
        eval_every=1,
        eval_limit=6,
        eval_batch_size=3,
    )
    values = Trainer(cfg).run()[0]
    for key in (
        "eval/accuracy/mean",
        "eval/accuracy/rotation",
        "eval/accuracy/jigsaw2x2",
        "eval/format/mean",
    ):
        assert 0 <= values[key] <= 1, key
