"""Every training option in one dataclass, checked before anything heavy is imported. Standard library."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADV_SCALES = ("group", "batch", "none")
LOSS_AGGS = ("token-mean", "seq-mean", "dr-grpo")
PRECISIONS = ("bf16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
PARALLEL = ("ddp", "fsdp")
ATTENTION = ("auto", "sdpa", "flash_attention_2", "eager")
SCHEDULES = ("constant", "cosine", "linear")
DATA_FORMATS = ("auto", "parquet", "wds")
ROLLOUT_CACHES = ("dynamic", "static")


class TrainError(Exception):
    """A problem the user can fix (no CUDA, a missing model, empty data): the message says how."""


def derive(*parts: object) -> int:
    """A 63-bit seed from the parts (hashing, never `seed + step`: neighbouring seeds overlap)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@dataclass
class TrainConfig:
    data: str
    model: str
    out: Path = Path("runs/grpo")
    # data
    revision: str | None = None
    data_format: str = "auto"
    split: str = "train"
    eval_split: str = "test"
    task_mix: str | None = None  # "rotation=1,jigsaw3x3=2"; default: the recipe's tasks, equally
    shuffle_window: int = 8  # row groups (Parquet) or tars (WebDataset) shuffled together
    min_pixels: int = 56 * 56
    max_pixels: int = 512 * 28 * 28
    max_prompt_tokens: int = 4096
    system_prompt: str = "You are a helpful assistant."
    # rollouts
    steps: int = 500
    batch_size: int = 8  # puzzles per step on each GPU
    group_size: int = 8
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    # objective
    beta: float = 0.0
    clip_low: float = 0.2
    clip_high: float = 0.28
    adv_scale: str = "group"
    adv_eps: float = 1e-6
    loss_agg: str = "token-mean"
    skip_zero_variance: bool = True
    ppo_epochs: int = 1
    mini_batches: int = 1
    micro_batch_size: int = 4  # sequences per forward/backward
    # optimiser
    lr: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"
    max_grad_norm: float = 1.0
    # model
    lora: bool = False
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.0
    lora_vision: bool = False
    freeze_vision: bool = False
    precision: str = "bf16"
    gradient_checkpointing: bool = True
    # static: a fixed-size KV cache for rollouts, which transformers compiles on CUDA (to measure: gpu_bench)
    rollout_cache: str = "dynamic"
    share_images: bool = True  # a group's images go through the vision tower once per forward (vision.py)
    attention: str = "auto"
    device: str = "auto"
    parallel: str = "ddp"
    # operations
    seed: int = 0
    save_every: int = 100
    keep_checkpoints: int = 2
    eval_every: int = 0
    eval_limit: int = 256
    eval_batch_size: int = 16
    resume: str | None = None  # a checkpoint folder, or "auto" for the newest under OUT/checkpoints
    tensorboard: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.out = Path(self.out)
        self.check()

    def check(self) -> None:
        choices = {
            "adv_scale": ADV_SCALES,
            "loss_agg": LOSS_AGGS,
            "precision": PRECISIONS,
            "device": DEVICES,
            "parallel": PARALLEL,
            "attention": ATTENTION,
            "schedule": SCHEDULES,
            "data_format": DATA_FORMATS,
            "rollout_cache": ROLLOUT_CACHES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise TrainError(
                    f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                    f"not {getattr(self, name)!r}"
                )
        positive = (
            "steps",
            "batch_size",
            "max_new_tokens",
            "max_prompt_tokens",
            "ppo_epochs",
            "mini_batches",
            "micro_batch_size",
            "shuffle_window",
            "lora_r",
            "eval_limit",
            "eval_batch_size",
            "min_pixels",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be at least 1")
        if self.group_size < 2:
            raise TrainError("--group-size must be at least 2: advantages compare completions within a group")
        if self.max_pixels < self.min_pixels or self.min_pixels < 28 * 28:
            raise TrainError(
                "need 28*28 <= --min-pixels <= --max-pixels (one image token covers 28x28 pixels)"
            )
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise TrainError("--temperature must be > 0 and --top-p in (0, 1]")
        if self.clip_low < 0 or self.clip_high < 0 or self.clip_low >= 1:
            raise TrainError("need 0 <= --clip-low < 1 and --clip-high >= 0")
        if self.beta < 0 or self.lr <= 0 or self.adv_eps <= 0:
            raise TrainError("need --beta >= 0, --lr > 0 and --adv-eps > 0")
        if self.batch_size * self.group_size < self.mini_batches:
            raise TrainError("--mini-batches cannot exceed the number of completions per step")
        if self.save_every < 0 or self.eval_every < 0:
            raise TrainError("--save-every and --eval-every must be >= 0 (0 turns them off)")

    @property
    def single_pass(self) -> bool:
        """One optimiser pass per rollout batch: old log-probs equal the current ones, detached."""
        return self.ppo_epochs == 1 and self.mini_batches == 1

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
