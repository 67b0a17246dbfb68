"""Randomly initialised Qwen2.5-VL models with a tokenizer built in code: nothing is downloaded.

`save_tiny(path)` writes a model folder laid out like a Hub checkpoint (config, safetensors weights,
tokenizer, image processor), so `--model PATH` loads it with the same code as a real model. The tests
use the tiny size; the GPU benchmark uses the real 3B and 7B architectures with random weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Qwen's special tokens, in Qwen's order, so that the roles match a real checkpoint.
SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# The output-format tags are ordinary added tokens (not special), so decoding keeps them.
TAGS = ("<think>", "</think>", "<answer>", "</answer>")

# What the BPE merges are learned from: the words of puzzlegen's prompts, so prompts stay short.
_CORPUS = (
    "system user assistant You are a helpful assistant. Image 1: Image 2: This photo may have been rotated. "
    "By how many degrees must it be turned clockwise to stand upright? Choose one of: 0, 90, 180, 270. "
    "Image 2 is image 1 rotated counter-clockwise by some angle. Which angle, in degrees? "
    "The image was cut into a grid of tiles and shuffled. For each cell in raster order, give the index of "
    "the tile that belongs there, comma-separated, e.g. 3,2,1,4. Give only the final answer inside "
    "<answer> </answer>. First think it through inside <think> </think>, then give only the final answer "
    "inside \\boxed{}. top-left top-right bottom-left bottom-right positive negative same different option "
    "A B C D yes no 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16"
)

# Real architectures (REFERENCE.md, "Trainer facts"); the vision tower is shared by 3B and 7B.
_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    tokens_per_second=2,
    fullatt_block_indexes=[7, 15, 23, 31],
)
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "3b": dict(
        text=dict(
            vocab_size=151936,
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            max_position_embeddings=128000,
            mrope_section=[16, 24, 24],
        ),
        vision=_VISION,
    ),
    "7b": dict(
        text=dict(
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            tie_word_embeddings=False,
            max_position_embeddings=128000,
            mrope_section=[16, 24, 24],
        ),
        vision=_VISION,
    ),
    "tiny": dict(
        text=dict(
            vocab_size=None,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            max_position_embeddings=4096,
            mrope_section=[2, 3, 3],
        ),
        vision=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            tokens_per_second=2,
            fullatt_block_indexes=[1],
        ),
    ),
}


def build_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer (Qwen's scheme) learned from a fixed corpus, with Qwen's special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([_CORPUS], trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
    )


def build_config(size: str, tokenizer):
    """A Qwen2_5_VLConfig of the named architecture whose placeholder ids match `tokenizer`."""
    from transformers import Qwen2_5_VLConfig

    arch = ARCHITECTURES[size]
    text = dict(arch["text"])
    mrope = text.pop("mrope_section")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    text.update(
        vocab_size=text["vocab_size"] or len(tokenizer),
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
    )
    vision = {**arch["vision"], "out_hidden_size": text["hidden_size"]}
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=text["tie_word_embeddings"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def build_image_processor(min_pixels: int = 28 * 28, max_pixels: int = 28 * 28 * 1280):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


def save_random(
    path: str | Path,
    size: str = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    max_pixels: int = 28 * 28 * 1280,
    device: str = "cpu",
) -> Path:
    """Write a randomly initialised model of `size` with its tokenizer and image processor to `path`.
    Building a 3B or 7B model on the GPU (`device="cuda"`) takes seconds instead of minutes."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from .model import quiet_transformers

    quiet_transformers()
    path = Path(path)
    tokenizer = build_tokenizer()
    config = build_config(size, tokenizer)
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.bos_token_id],
        pad_token_id=config.text_config.pad_token_id,
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    build_image_processor(max_pixels=max_pixels).save_pretrained(path)
    return path


def save_tiny(path: str | Path, seed: int = 0, max_pixels: int = 28 * 28 * 1280) -> Path:
    return save_random(path, "tiny", seed, "float32", max_pixels)
