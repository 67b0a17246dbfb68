"""`puzzlegen train` and `puzzlegen eval`. Typer and the standard library at import time (config.py is pure
standard library); torch, transformers and peft load inside the commands, so `puzzlegen --help` stays instant.

Register with `app.command("train")(train)` and `app.command("eval")(evaluate)`.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from .config import (
    ADV_SCALES,
    ATTENTION,
    DATA_FORMATS,
    DEVICES,
    LOSS_AGGS,
    PARALLEL,
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
    TrainError,
)

_DEFAULTS = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items()}


def _d(name: str):
    return _DEFAULTS[name]


def _err(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)


@contextmanager
def _user_errors():
    """Problems the user can fix print one clear line and exit 2; never a traceback."""
    try:
        yield
    except TrainError as error:
        _err(str(error))
        raise typer.Exit(2) from None
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in ("torch", "transformers", "peft", "tensorboard"):
            _err(f"{error.name} is missing: install the train extra, pip install 'puzzlegen[train]'")
            raise typer.Exit(2) from None
        raise
    except KeyboardInterrupt:
        _err("interrupted. Continue from the last checkpoint with --resume auto.")
        raise typer.Exit(130) from None


Data = Annotated[str, typer.Argument(help="a folder made by `puzzlegen build`, or hf:OWNER/NAME@REVISION")]
Model = Annotated[
    str, typer.Option("--model", "-m", help="Hub id (Qwen/Qwen2.5-VL-3B-Instruct) or local folder")
]


def train(
    data: Data,
    model: Model,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="run folder: checkpoints, metrics.jsonl, tb/")
    ] = _d("out"),
    steps: Annotated[int, typer.Option(help="total training steps (a resumed run continues up to it)")] = _d(
        "steps"
    ),
    batch_size: Annotated[int, typer.Option(help="puzzles per step on each GPU")] = _d("batch_size"),
    group_size: Annotated[int, typer.Option("--group-size", "-G", help="completions per puzzle")] = _d(
        "group_size"
    ),
    max_new_tokens: Annotated[int, typer.Option(help="completion length limit")] = _d("max_new_tokens"),
    temperature: Annotated[float, typer.Option(help="sampling temperature")] = _d("temperature"),
    top_p: Annotated[float, typer.Option(help="nucleus sampling")] = _d("top_p"),
    lr: Annotated[float, typer.Option(help="peak learning rate")] = _d("lr"),
    schedule: Annotated[str, typer.Option(help=f"lr schedule after warm-up: {', '.join(SCHEDULES)}")] = _d(
        "schedule"
    ),
    warmup_steps: Annotated[int, typer.Option(help="linear warm-up steps")] = _d("warmup_steps"),
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay")] = _d("weight_decay"),
    max_grad_norm: Annotated[float, typer.Option(help="gradient clipping (0: off)")] = _d("max_grad_norm"),
    beta: Annotated[
        float, typer.Option(help="KL weight to the reference (k3, clamped); 0 loads no reference")
    ] = _d("beta"),
    clip_low: Annotated[float, typer.Option(help="ratio clip below: 1 - eps_low")] = _d("clip_low"),
    clip_high: Annotated[float, typer.Option(help="ratio clip above: 1 + eps_high (clip-higher)")] = _d(
        "clip_high"
    ),
    adv_scale: Annotated[str, typer.Option(help=f"advantage scale: {', '.join(ADV_SCALES)}")] = _d(
        "adv_scale"
    ),
    loss_agg: Annotated[str, typer.Option(help=f"loss aggregation: {', '.join(LOSS_AGGS)}")] = _d("loss_agg"),
    skip_zero_variance: Annotated[bool, typer.Option(help="skip groups whose rewards are all equal")] = _d(
        "skip_zero_variance"
    ),
    ppo_epochs: Annotated[int, typer.Option(help="passes over each rollout batch")] = _d("ppo_epochs"),
    mini_batches: Annotated[int, typer.Option(help="optimiser steps per pass")] = _d("mini_batches"),
    micro_batch_size: Annotated[int, typer.Option(help="sequences per forward/backward")] = _d(
        "micro_batch_size"
    ),
    lora: Annotated[bool, typer.Option("--lora/--full", help="LoRA adapters, or full fine-tuning")] = _d(
        "lora"
    ),
    lora_r: Annotated[int, typer.Option(help="LoRA rank")] = _d("lora_r"),
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha")] = _d("lora_alpha"),
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout")] = _d("lora_dropout"),
    lora_vision: Annotated[bool, typer.Option(help="put LoRA adapters on the vision tower too")] = _d(
        "lora_vision"
    ),
    freeze_vision: Annotated[bool, typer.Option(help="full fine-tuning: keep the vision tower frozen")] = _d(
        "freeze_vision"
    ),
    precision: Annotated[str, typer.Option(help=f"{', '.join(PRECISIONS)}")] = _d("precision"),
    gradient_checkpointing: Annotated[bool, typer.Option(help="recompute activations in backward")] = _d(
        "gradient_checkpointing"
    ),
    rollout_cache: Annotated[
        str, typer.Option(help="dynamic, or static: a fixed-size KV cache that transformers compiles on CUDA")
    ] = _d("rollout_cache"),
    share_images: Annotated[
        bool, typer.Option(help="encode each puzzle's images once per forward, not once per completion")
    ] = _d("share_images"),
    attention: Annotated[
        str, typer.Option(help=f"{', '.join(ATTENTION)} (auto: flash-attn if installed)")
    ] = _d("attention"),
    device: Annotated[str, typer.Option(help=f"{', '.join(DEVICES)}; cpu only for tiny models")] = _d(
        "device"
    ),
    parallel: Annotated[str, typer.Option(help=f"under torchrun: {', '.join(PARALLEL)}")] = _d("parallel"),
    min_pixels: Annotated[int, typer.Option(help="images are resized to at least this many pixels")] = _d(
        "min_pixels"
    ),
    max_pixels: Annotated[int, typer.Option(help="and at most this many (28x28 per image token)")] = _d(
        "max_pixels"
    ),
    max_prompt_tokens: Annotated[int, typer.Option(help="longer prompts are skipped, never truncated")] = _d(
        "max_prompt_tokens"
    ),
    task_mix: Annotated[
        str | None, typer.Option(help="e.g. rotation=1,jigsaw3x3=2 [default: the recipe's tasks, equally]")
    ] = None,
    split: Annotated[str, typer.Option(help="training split")] = _d("split"),
    eval_split: Annotated[str, typer.Option(help="evaluation split")] = _d("eval_split"),
    revision: Annotated[str | None, typer.Option(help="Hub dataset revision (commit or tag)")] = None,
    data_format: Annotated[str, typer.Option(help=f"{', '.join(DATA_FORMATS)}")] = _d("data_format"),
    save_every: Annotated[int, typer.Option(help="checkpoint every N steps (0: only at the end)")] = _d(
        "save_every"
    ),
    keep_checkpoints: Annotated[int, typer.Option(help="checkpoints kept (0: all)")] = _d("keep_checkpoints"),
    eval_every: Annotated[int, typer.Option(help="evaluate on --eval-split every N steps (0: off)")] = _d(
        "eval_every"
    ),
    eval_limit: Annotated[int, typer.Option(help="puzzles per evaluation")] = _d("eval_limit"),
    resume: Annotated[
        str | None, typer.Option(help="a checkpoint folder, or auto (the newest under --out)")
    ] = None,
    seed: Annotated[int, typer.Option(help="data order, sampling and init")] = _d("seed"),
    tensorboard: Annotated[bool, typer.Option(help="write TensorBoard scalars to OUT/tb")] = _d(
        "tensorboard"
    ),
    progress: Annotated[bool, typer.Option(help="live progress display")] = _d("progress"),
):
    """Post-train Qwen2.5-VL with GRPO on puzzle shards, with rewards from puzzlegen.verify."""
    options = {k: v for k, v in locals().items() if k in _DEFAULTS}
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    with _user_errors():
        cfg = TrainConfig(**options)
        from .progress import TrainProgress
        from .trainer import Trainer

        trainer = Trainer(cfg)
        try:
            main = trainer.dist.main
            if main:
                console.print(_header(trainer))
                if warning := _memory_warning(trainer):
                    console.print(f"[yellow]warning:[/] {warning}")
            with TrainProgress(cfg.steps, trainer.step, cfg.progress and main, console) as show:
                trainer.on_step = show
                history = trainer.run()
        finally:
            trainer.close()
    if main and history:
        last = history[-1]
        console.print(
            f"step {trainer.step}: reward {last['reward/mean']:.3f}, accuracy "
            f"{last['accuracy/mean']:.3f}; metrics in {cfg.out / 'metrics.jsonl'}, checkpoints in "
            f"{cfg.out / 'checkpoints'}"
        )


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _header(trainer) -> str:
    cfg, d = trainer.cfg, trainer.dist
    mode = f"LoRA r={cfg.lora_r}" if cfg.lora else "full fine-tuning"
    where = f"{d.world} x {d.device.type}" + (f" ({cfg.parallel})" if d.active else "")
    mix = ", ".join(f"{task} {weight:g}" for task, weight in trainer.mix.items())
    resumed = f", resumed at step {trainer.step}" if trainer.resume_from else ""
    return (
        f"[bold]GRPO[/] {cfg.model}: {_count(trainer.total_params)} parameters, "
        f"{_count(trainer.trainable_params)} trained ({mode}), {cfg.precision}, on {where}; "
        f"tasks {mix}; {cfg.batch_size} puzzles x {cfg.group_size} completions per step{resumed}; "
        f"weights and optimiser state about {_state_gb(trainer):.1f} GB per {d.device.type}"
    )


def _state_gb(trainer) -> float:
    from .optim import state_gb

    cfg = trainer.cfg
    shards = trainer.dist.world if trainer.fsdp else 1
    reference = cfg.beta > 0 and not cfg.lora
    return state_gb(trainer.total_params, trainer.trainable_params, cfg.precision, reference, shards)


def _memory_warning(trainer) -> str | None:
    """Said before the first rollout, not after it, when the optimiser state alone would fill the GPU."""
    import torch

    device = trainer.dist.device
    if device.type != "cuda":
        return None
    have = torch.cuda.get_device_properties(device).total_memory / 1e9
    need = _state_gb(trainer)
    if need < 0.9 * have:
        return None
    return (
        f"weights and optimiser state need about {need:.0f} GB per GPU, and this GPU has {have:.0f} GB; "
        "expect running out of memory: try --lora, or --parallel fsdp over several GPUs"
    )


def evaluate(
    data: Data,
    model: Model,
    split: Annotated[str, typer.Option(help="split to evaluate")] = "test",
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N puzzles")] = None,
    batch_size: Annotated[int, typer.Option(help="puzzles per generate call")] = 16,
    max_new_tokens: Annotated[int, typer.Option(help="completion length limit")] = _d("max_new_tokens"),
    adapter: Annotated[
        Path | None, typer.Option(help="a LoRA adapter folder (a checkpoint's model/) over --model")
    ] = None,
    device: Annotated[str, typer.Option(help=f"{', '.join(DEVICES)}")] = _d("device"),
    precision: Annotated[str, typer.Option(help=f"{', '.join(PRECISIONS)}")] = _d("precision"),
    min_pixels: Annotated[int, typer.Option(help="as in training")] = _d("min_pixels"),
    max_pixels: Annotated[int, typer.Option(help="as in training")] = _d("max_pixels"),
    max_prompt_tokens: Annotated[int, typer.Option(help="longer prompts are skipped and counted")] = _d(
        "max_prompt_tokens"
    ),
    revision: Annotated[str | None, typer.Option(help="Hub dataset revision")] = None,
    data_format: Annotated[str, typer.Option(help=f"{', '.join(DATA_FORMATS)}")] = _d("data_format"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the results as JSON here")
    ] = None,
):
    """Greedy accuracy, reward and format per task of a model on a split of puzzle shards."""
    with _user_errors():
        cfg = TrainConfig(
            data=data,
            model=model,
            device=device,
            precision=precision,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            max_prompt_tokens=max_prompt_tokens,
            revision=revision,
            data_format=data_format,
            max_new_tokens=max_new_tokens,
            eval_batch_size=batch_size,
        )
        from .evaluate import run_eval

        results = run_eval(cfg, split, limit, adapter)
    if json_out:
        json_out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    from rich.console import Console

    Console().print(means_table(f"{model} on {data} ({split})", results, "puzzles"))
    row = results["all"]
    if row["skipped_too_long"]:
        Console(stderr=True).print(
            f"{row['skipped_too_long']:.0f} prompts skipped: longer than --max-prompt-tokens"
        )


def means_table(title: str, results: dict[str, dict[str, float]], counted: str):
    """Accuracy, reward and format per task, then all (`Tally.means()`), as a rich table."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("task", counted, "accuracy", "reward", "format"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task, row in results.items():
        name = "[bold]all" if task == "all" else task
        table.add_row(name, f"{row['n']:.0f}", *(f"{row[k]:.3f}" for k in ("accuracy", "reward", "format")))
    return table
