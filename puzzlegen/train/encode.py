"""Puzzle -> Qwen2.5-VL prompt tokens and pixels, without the processor (whose video half needs torchvision).

The chat is Qwen's own:

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n

and each `<image>` of the prompt becomes `<|vision_start|>` + N x `<|image_pad|>` + `<|vision_end|>`, with
N = prod(grid_thw) // merge_size**2, the number of merged patches the vision tower returns for that image.
Placeholder ids are spliced in as ids, and the text is tokenised with special tokens split, so a prompt that
happens to contain "<|image_pad|>" cannot change the count. A prompt longer than `max_prompt_tokens` is
rejected whole (never truncated: a cut run of image tokens breaks the model).
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import Puzzle


@dataclass
class Encoded:
    puzzle: Puzzle
    input_ids: list[int]
    pixel_values: object  # torch.Tensor (patches, channels * temporal * patch * patch)
    grid_thw: object  # torch.Tensor (images, 3)


class Encoder:
    """Turns puzzles into prompt ids and pixels for one model; knows its placeholder and stop ids."""

    def __init__(
        self,
        tokenizer,
        image_processor,
        model_config,
        max_prompt_tokens: int,
        system_prompt: str,
        min_pixels: int,
        max_pixels: int,
    ):
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.max_prompt_tokens, self.system_prompt = max_prompt_tokens, system_prompt
        self.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        self.merge = image_processor.merge_size
        ids = tokenizer.convert_tokens_to_ids
        self.im_start, self.im_end = ids("<|im_start|>"), ids("<|im_end|>")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids("<|endoftext|>")
        c = model_config
        self.image_token, self.vision_start, self.vision_end = (
            c.image_token_id,
            c.vision_start_token_id,
            c.vision_end_token_id,
        )
        # what the policy must never feed back as input: these ids make the model look for image features
        self.placeholder_ids = sorted(
            {c.image_token_id, c.video_token_id, c.vision_start_token_id, c.vision_end_token_id}
        )
        eos = tokenizer.eos_token_id
        self.stop_ids = sorted({self.im_end, self.pad_id, *([eos] if eos is not None else [])})
        self.skipped_too_long = 0

    def _text(self, text: str) -> list[int]:
        if not text:
            return []
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def _chat(self, prompt: str, counts: list[int]) -> list[int]:
        """Qwen's chat around the prompt, each <image> expanded; adjacent text is tokenised together, as the
        chat template would tokenise it."""
        system = [self.im_start, f"system\n{self.system_prompt}", self.im_end, "\n", self.im_start, "user\n"]
        parts: list = system
        for k, piece in enumerate(prompt.split("<image>")):
            parts.append(piece)
            if k < len(counts):
                parts += [self.vision_start, *[self.image_token] * counts[k], self.vision_end]
        parts += [self.im_end, "\n", self.im_start, "assistant\n", None]
        ids, text = [], ""
        for part in parts:
            if isinstance(part, str):
                text += part
                continue
            ids += self._text(text)
            text = ""
            if part is not None:
                ids.append(part)
        return ids

    def encode(self, puzzle: Puzzle) -> Encoded | None:
        """The prompt's ids and pixels, or None (counted) when the prompt would exceed the token limit."""
        pixels = self.image_processor(puzzle.pil_images(), size=self.size, return_tensors="pt")
        grid = pixels["image_grid_thw"]
        ids = self._chat(puzzle.prompt, (grid.prod(-1) // self.merge**2).tolist())
        if len(ids) > self.max_prompt_tokens:
            self.skipped_too_long += 1
            return None
        return Encoded(puzzle, ids, pixels["pixel_values"], grid)


def collate_prompts(encoded: list[Encoded], pad_id: int, image_token: int) -> dict:
    """Left-padded prompts with their images: the inputs of `generate`."""
    import torch

    width = max(len(e.input_ids) for e in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        input_ids[i, width - len(e.input_ids) :] = torch.tensor(e.input_ids)
        attention[i, width - len(e.input_ids) :] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "mm_token_type_ids": (input_ids == image_token).int(),  # 1 marks image tokens for the 3-D RoPE
        "pixel_values": torch.cat([e.pixel_values for e in encoded]),
        "image_grid_thw": torch.cat([e.grid_thw for e in encoded]),
    }
