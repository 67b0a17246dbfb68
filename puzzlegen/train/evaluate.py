"""Accuracy per task on a split, with greedy decoding; shared by `puzzlegen eval` and the trainer's
periodic evaluation. Under torchrun each rank takes every world-th puzzle and the sums are all-reduced."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, islice

from puzzlegen.verify import Tally

from .data import Puzzle
from .distributed import Dist
from .encode import Encoder
from .rewards import score_all
from .rollout import generate


def evaluate(
    policy,
    encoder: Encoder,
    puzzles: Iterable[Puzzle],
    d: Dist,
    batch_size: int,
    max_new_tokens: int,
    synced: bool = False,
) -> dict[str, dict[str, float]]:
    """{task: {n, reward, accuracy, format}} plus an "all" row; skipped (too long) prompts are counted.

    `synced` (FSDP): every rank must run as many `generate` calls as the others, so a rank that has run out
    of puzzles repeats a dummy batch, whose scores are dropped, until all have.
    """
    was_training = policy.training
    policy.eval()
    tally = Tally()
    skipped_before = encoder.skipped_too_long
    puzzles = iter(puzzles)
    first = next(puzzles, None)
    mine = (
        e
        for k, p in enumerate(chain([first] if first else [], puzzles))
        if k % d.world == d.rank
        for e in [encoder.encode(p)]
        if e is not None
    )
    last = None
    while True:
        batch = list(islice(mine, batch_size))
        if not (d.all_max(len(batch)) if synced else batch):
            break
        last = batch[:1] or last or [encoder.encode(first)]
        rollouts = generate(
            policy, batch or last, encoder, 1, max_new_tokens, 1.0, 1.0, d.device, greedy=True, synced=synced
        )
        if not batch:
            continue
        scores = score_all(rollouts.texts, [e.puzzle.verifier for e in batch], [e.puzzle.task for e in batch])
        scores.add_to(tally)
    # every rank must all-reduce the same keys, in the same order
    tasks = sorted({t for part in d.gather(sorted(tally.sums)) for t in part})
    flat = d.all_sum(
        [v for t in tasks for v in tally.sums.get(t, [0.0] * 4)] + [encoder.skipped_too_long - skipped_before]
    )
    everyone = Tally()
    for i, task in enumerate(tasks):
        n, t, a, f = flat[4 * i : 4 * i + 4]
        everyone.add(task, t, a, f, n)
    results = everyone.means()
    results["all"]["skipped_too_long"] = flat[-1]
    policy.train(was_training)
    return results


def run_eval(cfg, split: str, limit: int | None, adapter=None) -> dict[str, dict[str, float]]:
    """`puzzlegen eval`: load the model as training does, then evaluate `split`."""
    from . import distributed
    from .data import iter_puzzles, open_shards
    from .model import (
        attention,
        compute_dtype,
        load_image_processor,
        load_model,
        load_tokenizer,
        quiet_transformers,
        resolve,
    )

    quiet_transformers()
    shards = open_shards(cfg.data, split, cfg.data_format, cfg.revision)
    d = distributed.setup(cfg.device)
    try:
        name = resolve(cfg.model)
        tokenizer = load_tokenizer(name)
        images = load_image_processor(name, cfg.min_pixels, cfg.max_pixels)
        policy = load_model(name, d.device, compute_dtype(cfg), attention(cfg.attention, d.device))
        if adapter is not None:
            from peft import PeftModel

            policy = PeftModel.from_pretrained(policy, str(adapter))
        encoder = Encoder(
            tokenizer,
            images,
            policy.config,
            cfg.max_prompt_tokens,
            cfg.system_prompt,
            cfg.min_pixels,
            cfg.max_pixels,
        )
        return evaluate(
            policy, encoder, iter_puzzles(shards, limit), d, cfg.eval_batch_size, cfg.max_new_tokens
        )
    finally:
        distributed.shutdown()
