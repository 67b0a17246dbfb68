"""The GRPO loop: puzzles -> G rollouts each -> rewards -> group advantages -> clipped policy-gradient update.

One step, on each rank:
1. Draw --batch-size puzzles from the stream (prompts longer than --max-prompt-tokens are skipped, counted).
2. Sample G completions per puzzle and score each with its own verifier spec.
3. Advantages per group (objective.py); groups whose rewards are all equal are skipped (counted).
4. Log-prob passes: old log-probs only when a rollout batch is used for more than one optimiser step
   (with one pass they equal the current ones, detached, and the ratio is 1); reference log-probs only
   when beta > 0 (LoRA: the same model with its adapter switched off).
5. --ppo-epochs passes over --mini-batches optimiser steps, each accumulated over micro-batches whose token
   weights are computed for the whole mini-batch on all ranks, so the gradient does not depend on how the
   batch is split or on the number of GPUs.

Randomness is re-seeded from (seed, step, rank) at the start of every step, so a resumed run samples the
same completions as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections import Counter

import torch

from puzzlegen.verify import Tally, flatten

from . import checkpoint, distributed
from .config import TrainConfig, TrainError, derive
from .data import DataError, PuzzleStream, iter_puzzles, open_shards, read_manifest, task_mix
from .encode import Encoded, Encoder
from .evaluate import evaluate
from .logprobs import token_logprobs
from .metrics import MetricsLog
from .model import (
    count_parameters,
    load_image_processor,
    load_policy,
    load_reference,
    load_tokenizer,
    quiet_transformers,
    resolve,
    trainable,
)
from .objective import group_advantages, policy_loss, token_weights, zero_variance_groups
from .optim import TrainOptimizer, schedule
from .rewards import score_all
from .rollout import Rollouts, generate


class Trainer:
    """Set up data, model, optimiser (and restore a checkpoint) in the constructor; `run` trains."""

    def __init__(self, cfg: TrainConfig, on_step=None):
        self.cfg, self.on_step = cfg, on_step
        quiet_transformers()
        self.dist = distributed.setup(cfg.device)
        self.fsdp = cfg.parallel == "fsdp" and self.dist.active
        self.step, self.skipped_groups = 0, 0
        self._data()  # first: its errors are the cheapest to find
        self.resume_from = checkpoint.find(cfg.resume, cfg.out) if cfg.resume else None
        if self.resume_from is None and not cfg.resume and checkpoint.latest(cfg.out) is not None:
            raise TrainError(
                f"{cfg.out} already holds checkpoints: pass --resume auto to continue that run, "
                "or choose another --out"
            )
        self._model()
        if self.resume_from is not None:
            self._restore()
        self.metrics = MetricsLog(
            cfg.out, self.dist.main, cfg.tensorboard, self.step if self.resume_from else None
        )

    def _data(self) -> None:
        cfg, d = self.cfg, self.dist
        self.shards = open_shards(cfg.data, cfg.split, cfg.data_format, cfg.revision)
        self.mix = task_mix(cfg.task_mix, self.shards.tasks(), read_manifest(cfg.data, cfg.revision))
        self.stream = PuzzleStream(self.shards, self.mix, cfg.seed, cfg.shuffle_window, d.rank, d.world)
        self.eval_shards = None
        if cfg.eval_every:
            self.eval_shards = open_shards(cfg.data, cfg.eval_split, cfg.data_format, cfg.revision)

    def _model(self) -> None:
        cfg, d = self.cfg, self.dist
        name = resolve(cfg.model)
        self.tokenizer = load_tokenizer(name)
        self.image_processor = load_image_processor(name, cfg.min_pixels, cfg.max_pixels)
        torch.manual_seed(derive(cfg.seed, "init"))  # LoRA's initial A matrices
        # full fine-tuning resumes from the checkpoint's weights; LoRA loads its adapter over --model
        weights = None
        if self.resume_from is not None and not cfg.lora and not self.fsdp:
            weights = str(self.resume_from / "model")
        # FSDP keeps fp32 shards and computes in bf16 through its mixed-precision policy
        load_cfg = TrainConfig.from_dict({**cfg.to_dict(), "precision": "fp32"}) if self.fsdp else cfg
        self.policy = load_policy(load_cfg, d.device, weights)
        if self.resume_from is not None and cfg.lora:
            checkpoint.load_adapter(self.policy, self.resume_from)
        self.reference = load_reference(cfg, d.device)
        self.model = distributed.wrap(self.policy, d, cfg.parallel, cfg.precision)
        self.optimizer = TrainOptimizer(trainable(self.policy), cfg.lr, cfg.weight_decay)
        self.scheduler = schedule(self.optimizer, cfg.schedule, cfg.warmup_steps, cfg.steps)
        self.encoder = Encoder(
            self.tokenizer,
            self.image_processor,
            self.policy.config,
            cfg.max_prompt_tokens,
            cfg.system_prompt,
            cfg.min_pixels,
            cfg.max_pixels,
        )
        self.total_params, self.trainable_params = count_parameters(self.policy)

    def _restore(self) -> None:
        d = self.dist
        state = checkpoint.load(self.resume_from, self.policy, self.optimizer, self.scheduler, d, self.fsdp)
        positions = state["data"]
        if len(positions) != d.world:
            raise TrainError(
                f"{self.resume_from} was written by {len(positions)} processes; resume with as many"
            )
        self.step = state["step"]
        self.stream.load_state(positions[d.rank])
        self.encoder.skipped_too_long = state.get("skipped_too_long", [0] * d.world)[d.rank]

    # ------------------------------------------------------------------------------------------ data

    def next_batch(self) -> list[Encoded]:
        batch, misses = [], 0
        limit = max(1000, sum(self.shards.tasks().values()))
        while len(batch) < self.cfg.batch_size:
            encoded = self.encoder.encode(self.stream.next())
            if encoded is None:
                misses += 1
                if misses >= limit:
                    raise DataError(
                        f"{misses} prompts in a row exceed --max-prompt-tokens "
                        f"{self.cfg.max_prompt_tokens}; raise it or lower --max-pixels"
                    )
                continue
            batch.append(encoded)
        return batch

    # ------------------------------------------------------------------------------------------ passes

    def _logprobs(self, model, rollouts: Rollouts, rows: list[int], entropy: bool = False):
        inputs, images, targets, mask = rollouts.model_inputs(rows, self.dist.device, self.cfg.share_images)
        logp, ent = token_logprobs(model, inputs, targets, self.cfg.temperature, entropy, images)
        return logp, ent, mask

    @torch.no_grad()
    def _frozen_logprobs(
        self, rollouts: Rollouts, rows: list[int], reference: bool
    ) -> dict[int, torch.Tensor]:
        """Per-row log-probs under the policy as it is now (old) or under the reference, by micro-batch."""
        out = {}
        chunks = _chunks(rows, self.cfg.micro_batch_size)
        # under FSDP every forward gathers weights collectively: ranks with fewer rows make dummy passes
        n = self.dist.all_max(len(chunks)) if self.fsdp else len(chunks)
        for k in range(n):
            chunk = chunks[k] if k < len(chunks) else [0]
            # the unwrapped policy: no gradient, so no DDP bookkeeping (under FSDP it is the sharded module)
            if reference and self.cfg.lora:
                with self.policy.disable_adapter():
                    logp = self._logprobs(self.policy, rollouts, chunk)[0]
            else:
                logp = self._logprobs(self.reference if reference else self.policy, rollouts, chunk)[0]
            if k >= len(chunks):
                continue
            full = rollouts.mask.shape[1]  # micro-batches are trimmed to their own longest completion
            for row, values in zip(chunk, logp, strict=True):
                out[row] = torch.nn.functional.pad(values, (0, full - values.shape[0]))
        return out

    def _stack(self, per_row: dict[int, torch.Tensor], rows: list[int], width: int) -> torch.Tensor:
        return torch.stack([per_row[r][:width] for r in rows])

    # ------------------------------------------------------------------------------------------ step

    def train_step(self) -> dict[str, float]:
        cfg, d = self.cfg, self.dist
        G = cfg.group_size  # noqa: N806 - the paper's name
        torch.manual_seed(derive(cfg.seed, "step", self.step, d.rank))
        start = time.perf_counter()
        distributed.reset_peak_memory(d.device)

        # 1-2. rollouts and rewards
        self.policy.eval()
        batch = self.next_batch()
        rollouts = generate(
            self.policy,
            batch,
            self.encoder,
            G,
            cfg.max_new_tokens,
            cfg.temperature,
            cfg.top_p,
            d.device,
            synced=self.fsdp,
            cache=cfg.rollout_cache,
        )
        specs = [rollouts.puzzle(i).puzzle.verifier for i in range(len(rollouts))]
        tasks = [rollouts.puzzle(i).puzzle.task for i in range(len(rollouts))]
        scores = score_all(rollouts.texts, specs, tasks)
        t_rollout = time.perf_counter() - start

        # 3. advantages; groups with equal rewards teach nothing
        rewards = torch.tensor(scores.total)
        advantages = group_advantages(rewards, G, cfg.adv_scale, cfg.adv_eps)
        flat = zero_variance_groups(rewards, G)
        skip = flat if cfg.skip_zero_variance else torch.zeros_like(flat)
        rows = [i for i in range(len(rollouts)) if not skip[i // G]]

        # 4. frozen log-prob passes
        self.policy.train()
        t0 = time.perf_counter()
        old = None if cfg.single_pass else self._frozen_logprobs(rollouts, rows, reference=False)
        ref = self._frozen_logprobs(rollouts, rows, reference=True) if cfg.beta > 0 else None
        distributed.synchronize(
            d.device
        )  # CUDA runs asynchronously: without it the update would absorb this time
        t_logprob = time.perf_counter() - t0

        # 5. updates
        t0 = time.perf_counter()
        update = self._update(rollouts, rows, advantages, old, ref)
        with warnings.catch_warnings():  # a step whose groups were all skipped takes no optimiser step
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        distributed.synchronize(d.device)
        t_update = time.perf_counter() - t0
        self.step += 1
        self.skipped_groups += int(flat.sum())
        times = {
            "rollout": t_rollout,
            "logprob": t_logprob,
            "update": t_update,
            "step": time.perf_counter() - start,
        }
        return self._step_metrics(rollouts, scores, flat, rows, update, times)

    def _update(self, rollouts: Rollouts, rows: list[int], advantages: torch.Tensor, old, ref) -> Counter:
        cfg, d = self.cfg, self.dist
        sums: Counter = Counter()
        if d.all_max(len(rows)) == 0:  # nothing to learn from on any rank
            return sums
        groups: dict[int, list[int]] = {}
        for row in rows:
            groups.setdefault(row // cfg.group_size, []).append(row)
        for epoch in range(cfg.ppo_epochs):
            # whole groups are shuffled, so a micro-batch holds few puzzles, each of whose images the
            # vision tower then encodes once
            order = list(groups.values())
            random.Random(derive(cfg.seed, "minibatch", self.step, epoch, d.rank)).shuffle(order)
            order = [row for group in order for row in group]
            for mb in _split(order, cfg.mini_batches):
                n_seq, n_tok = d.all_sum([len(mb), float(rollouts.mask[mb].sum()) if mb else 0.0])
                if n_seq == 0:
                    continue
                chunks = _chunks(mb, cfg.micro_batch_size)
                n_micro = d.all_max(len(chunks))
                # a rank with fewer micro-batches repeats a row with zero weight, so that every rank joins
                # every gradient all-reduce
                padded = chunks + [[rows[0] if rows else 0]] * (n_micro - len(chunks))
                for k, chunk in enumerate(padded):
                    with distributed.no_sync(self.model, last=k == n_micro - 1):
                        stats = self._micro_step(
                            rollouts,
                            chunk,
                            advantages,
                            old,
                            ref,
                            (int(n_seq), n_tok),
                            real=k < len(chunks),
                            entropy=epoch == 0,
                        )
                    if k < len(chunks):
                        sums.update(stats)
                sums["grad_norm"] += self.optimizer.clip_and_step(cfg.max_grad_norm)
                sums["optimizer_steps"] += 1
                self.optimizer.zero_grad()
        return sums

    def _micro_step(self, rollouts, chunk, advantages, old, ref, totals, real: bool, entropy: bool) -> dict:
        """Forward and backward of one micro-batch; its token weights use the mini-batch `totals`."""
        cfg = self.cfg
        logp, ent, mask = self._logprobs(self.model, rollouts, chunk, entropy)
        width = logp.shape[1]
        weights = token_weights(mask, cfg.loss_agg, totals[0], totals[1], cfg.max_new_tokens) * float(real)
        old_logp = logp.detach() if old is None else self._stack(old, chunk, width)
        ref_logp = None if ref is None else self._stack(ref, chunk, width)
        adv = advantages[chunk].to(logp.device)
        loss, stats = policy_loss(
            logp, old_logp, adv, weights, mask, cfg.clip_low, cfg.clip_high, cfg.beta, ref_logp
        )
        # DDP and FSDP average gradients over ranks; the weights already normalise over all of them
        (loss * self.dist.world).backward()
        stats["loss"] = float(loss.detach())
        stats["train_tokens"] = float(mask.sum() + rollouts.prompt_mask[chunk].sum())
        if ent is not None:
            stats["entropy"], stats["entropy_tokens"] = float((ent * mask).sum()), float(mask.sum())
        return stats

    # ------------------------------------------------------------------------------------------ metrics

    def _step_metrics(
        self, rollouts, scores, flat, rows, update, times: dict[str, float]
    ) -> dict[str, float]:
        """Sums over all ranks, then means: rewards per task, policy statistics, lengths, speed, memory."""
        d = self.dist
        lengths = rollouts.mask.sum(1)
        local = {
            "gen_tokens": float(lengths.sum()),
            "prompt_tokens": float(rollouts.prompt_mask.sum()),
            "truncated": float(rollouts.truncated.sum()),
            "neutralised": float(rollouts.neutralised),
            "flat_groups": float(flat.sum()),
            "groups": float(flat.numel()),
            "kept": float(len(rows)),
            "sequences": float(len(rollouts)),
            "skipped_groups": float(self.skipped_groups),
            "skipped_prompts": float(self.encoder.skipped_too_long),
            **{
                k: float(update[k])
                for k in (
                    "tokens",
                    "clip_low",
                    "clip_high",
                    "kl",
                    "entropy",
                    "entropy_tokens",
                    "loss",
                    "train_tokens",
                )
            },
        }
        t = dict(zip(local, d.all_sum(list(local.values())), strict=True))
        gathered = d.gather((scores.total, scores.accuracy, scores.format, scores.tasks))
        everyone = type(scores)(*[sum((g[i] for g in gathered), []) for i in range(4)])
        n, tokens, world = t["sequences"], max(t["tokens"], 1.0), d.world
        return {
            **flatten(everyone.add_to(Tally()).means()),
            "loss": t["loss"],
            "kl": t["kl"] / tokens,
            "clip/low": t["clip_low"] / tokens,
            "clip/high": t["clip_high"] / tokens,
            "clip/fraction": (t["clip_low"] + t["clip_high"]) / tokens,
            "entropy": t["entropy"] / max(t["entropy_tokens"], 1.0),
            "grad_norm": update["grad_norm"] / max(update["optimizer_steps"], 1),
            "lr": self.scheduler.get_last_lr()[0],
            "length/mean": t["gen_tokens"] / n,
            "length/max": float(d.all_max(int(lengths.max()))),
            "length/truncated": t["truncated"] / n,
            "neutralised_tokens": t["neutralised"],
            "groups/zero_variance": t["flat_groups"],
            "groups/zero_variance_fraction": t["flat_groups"] / t["groups"],
            "groups/skipped_total": t["skipped_groups"],
            "sequences/trained": t["kept"],
            "prompts/skipped_too_long": t["skipped_prompts"],
            **{f"time/{k}": v for k, v in times.items()},
            "tokens_per_s/rollout": t["gen_tokens"] / world / max(times["rollout"], 1e-9),
            "tokens_per_s/train": t["train_tokens"] / world / max(times["update"], 1e-9),
            "tokens_per_s/step": (t["gen_tokens"] + t["prompt_tokens"]) / world / max(times["step"], 1e-9),
            "memory/peak_gb": d.all_max(int(distributed.peak_memory_gb(d.device) * 1024)) / 1024,
        }

    # ------------------------------------------------------------------------------------------ run

    def evaluate(self) -> dict[str, float]:
        puzzles = iter_puzzles(self.eval_shards, self.cfg.eval_limit)
        results = evaluate(
            self.policy,
            self.encoder,
            puzzles,
            self.dist,
            self.cfg.eval_batch_size,
            self.cfg.max_new_tokens,
            synced=self.fsdp,
        )
        return flatten(results, "eval/")

    def save(self) -> None:
        cfg, d = self.cfg, self.dist
        state = {
            "step": self.step,
            "data": d.gather(self.stream.state()),
            "config": cfg.to_dict(),
            "skipped_too_long": d.gather(self.encoder.skipped_too_long),
        }
        extras = [self.tokenizer, self.image_processor]
        dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
        checkpoint.save(
            cfg.out,
            self.step,
            self.policy,
            self.optimizer,
            self.scheduler,
            state,
            d,
            extras,
            self.fsdp,
            cfg.lora,
            cfg.keep_checkpoints,
            export_dtype=dtype,
        )

    def run(self, until: int | None = None) -> list[dict[str, float]]:
        """Train up to --steps (or only up to step `until`, as if stopped there), checkpointing every
        --save-every steps and at the end."""
        cfg, history, saved = self.cfg, [], -1
        stop = min(cfg.steps, until) if until is not None else cfg.steps
        try:
            while self.step < stop:
                values = self.train_step()
                if not all(math.isfinite(values[k]) for k in ("loss", "grad_norm")):
                    raise TrainError(
                        f"step {self.step}: the loss is not finite; lower --lr or check the data"
                    )
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    values.update(self.evaluate())
                self.metrics.log(self.step, values)
                history.append(values)
                if self.on_step:
                    self.on_step(self.step, values)
                if cfg.save_every and self.step % cfg.save_every == 0:
                    self.save()
                    saved = self.step
            if saved != self.step and self.step > 0:
                self.save()
        finally:
            self.metrics.close()
        return history

    def close(self) -> None:
        distributed.shutdown()


def _chunks(rows: list[int], size: int) -> list[list[int]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _split(rows: list[int], parts: int) -> list[list[int]]:
    """`parts` nearly equal consecutive slices (some may be empty on a rank that skipped groups)."""
    bounds = [round(i * len(rows) / parts) for i in range(parts + 1)]
    return [rows[bounds[i] : bounds[i + 1]] for i in range(parts)]
