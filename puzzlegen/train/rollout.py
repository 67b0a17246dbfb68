"""Rollouts: G sampled completions per puzzle in one batched `generate`, cut at the stop token, decoded.

The images of a batch are encoded once; `generate` repeats the encoder outputs for the G copies of a
prompt (num_return_sequences), so the rows come out group by group: row i belongs to puzzle i // G.

Placeholder ids (<|image_pad|>, <|video_pad|>, <|vision_start|>, <|vision_end|>) that the policy generates
are neutralised before any training forward pass: the *input* copy of the completion has them replaced by
the pad id, so the model does not look for image features that do not exist ("Image features and image
tokens do not match"). The *target* keeps the generated id, so the loss still pushes its probability down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .encode import Encoded, Encoder, collate_prompts
from .vision import ImageShare


@dataclass
class Rollouts:
    encoded: list[Encoded]  # one per puzzle
    group_size: int
    prompt_ids: torch.Tensor  # (N, P) left-padded, each prompt repeated G times
    prompt_mask: torch.Tensor  # (N, P)
    prompt_types: torch.Tensor  # (N, P) 1 on image tokens
    completion_ids: torch.Tensor  # (N, C) as generated; pad after the stop token (the targets)
    input_ids: torch.Tensor  # (N, C) the same with placeholder ids neutralised (the inputs)
    mask: torch.Tensor  # (N, C) 1.0 on completion tokens, the stop token included
    truncated: torch.Tensor  # (N,) no stop token within --max-new-tokens
    texts: list[str]
    neutralised: int

    def __len__(self) -> int:
        return self.completion_ids.shape[0]

    def puzzle(self, row: int) -> Encoded:
        return self.encoded[row // self.group_size]

    def model_inputs(
        self, rows: list[int], device, share: bool = True
    ) -> tuple[dict, ImageShare | None, torch.Tensor, torch.Tensor]:
        """Inputs of a forward pass over prompt + completion for `rows`, with the targets and mask trimmed to
        the longest completion among them. With `share`, the pixels are each puzzle's once, and the pass
        must run under `encode_once` with the returned ImageShare; without, every row has its own copy."""
        width = max(1, int(self.mask[rows].sum(1).max()))
        prompt_mask = self.prompt_mask[rows]
        start = int((prompt_mask.sum(0) == 0).sum())  # drop columns that are padding in every row
        prompt_ids, types = self.prompt_ids[rows, start:], self.prompt_types[rows, start:]
        completion = self.input_ids[rows, :width]
        inputs = {
            "input_ids": torch.cat([prompt_ids, completion], 1),
            "attention_mask": torch.cat([prompt_mask[:, start:], torch.ones_like(completion)], 1),
            "mm_token_type_ids": torch.cat([types, torch.zeros_like(completion, dtype=types.dtype)], 1),
            "image_grid_thw": torch.cat([self.puzzle(r).grid_thw for r in rows]),  # per row: positions
        }
        images = None
        if share:
            puzzles = list(dict.fromkeys(r // self.group_size for r in rows))  # distinct, in order
            first, offset = {}, 0
            for p in puzzles:
                first[p], offset = offset, offset + len(self.encoded[p].grid_thw)
            images = ImageShare(
                torch.cat([self.encoded[p].grid_thw for p in puzzles]),
                tuple(
                    first[r // self.group_size] + k for r in rows for k in range(len(self.puzzle(r).grid_thw))
                ),
            )
            inputs["pixel_values"] = torch.cat([self.encoded[p].pixel_values for p in puzzles])
        else:
            inputs["pixel_values"] = torch.cat([self.puzzle(r).pixel_values for r in rows])
        inputs = {k: v.to(device) for k, v in inputs.items()}
        targets = self.completion_ids[rows, :width].to(device)
        return inputs, images, targets, self.mask[rows, :width].to(device)


def _cut(
    completion: torch.Tensor, stop_ids: list[int], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask everything after the first stop token; pad it. Returns ids, mask and truncated."""
    stops = torch.isin(completion, torch.tensor(stop_ids, device=completion.device))
    has_stop = stops.any(1)
    first = torch.where(has_stop, stops.int().argmax(1), completion.shape[1])
    positions = torch.arange(completion.shape[1], device=completion.device)
    mask = positions[None, :] <= first[:, None]
    return completion.masked_fill(~mask, pad_id), mask.float(), ~has_stop


def neutralise(ids: torch.Tensor, placeholder_ids: list[int], pad_id: int) -> tuple[torch.Tensor, int]:
    bad = torch.isin(ids, torch.tensor(placeholder_ids, device=ids.device))
    return ids.masked_fill(bad, pad_id), int(bad.sum())


def decode(tokenizer, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Completion texts, special tokens dropped. Ids beyond the tokenizer (a random model with a larger
    embedding than its tokenizer, as in the benchmark) are dropped too."""
    vocab = len(tokenizer)
    rows = [[t for t in row[: int(m.sum())].tolist() if t < vocab] for row, m in zip(ids, mask, strict=True)]
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


@torch.no_grad()
def generate(
    policy,
    encoded: list[Encoded],
    encoder: Encoder,
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    device,
    greedy: bool = False,
    synced: bool = False,
    cache: str = "dynamic",
) -> Rollouts:
    """`synced`: keep running forward passes until every rank has finished (FSDP gathers weights with
    collectives in each forward, so all ranks must make the same number of them). `cache`: "static" sizes
    the KV cache up front, which lets transformers compile the decoding step on CUDA."""
    from transformers import GenerationConfig

    prompts = collate_prompts(encoded, encoder.pad_id, encoder.image_token)
    inputs = {k: v.to(device) for k, v in prompts.items()}
    # every sampling setting spelled out: a checkpoint's generation_config (top_k, repetition_penalty...)
    # would otherwise change the sampler, and the log-prob ratio assumes we sample from the policy itself
    settings = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p)
    config = GenerationConfig(
        **settings,
        top_k=0,
        repetition_penalty=1.0,
        max_new_tokens=max_new_tokens,
        num_return_sequences=group_size,
        eos_token_id=encoder.stop_ids,
        pad_token_id=encoder.pad_id,
        use_cache=True,
        cache_implementation=None if cache == "dynamic" else cache,
    )
    out = policy.generate(**inputs, generation_config=config, synced_gpus=synced)
    width = prompts["input_ids"].shape[1]
    completion, mask, truncated = _cut(out[:, width:], encoder.stop_ids, encoder.pad_id)
    completion, mask, truncated = completion.cpu(), mask.cpu(), truncated.cpu()
    inputs_ids, count = neutralise(completion, encoder.placeholder_ids, encoder.pad_id)
    repeat = lambda t: t.repeat_interleave(group_size, 0)  # noqa: E731
    return Rollouts(
        encoded=encoded,
        group_size=group_size,
        prompt_ids=repeat(prompts["input_ids"]),
        prompt_mask=repeat(prompts["attention_mask"]),
        prompt_types=repeat(prompts["mm_token_type_ids"]),
        completion_ids=completion,
        input_ids=inputs_ids,
        mask=mask,
        truncated=truncated,
        texts=decode(encoder.tokenizer, completion, mask),
        neutralised=count,
    )
