"""Load Qwen2.5-VL (Hub id or local folder, real or tiny the same way), its tokenizer and image processor,
and make it trainable: full fine-tuning or LoRA, bf16, gradient checkpointing, SDPA or flash attention.

Precision: with --precision bf16 the weights are bf16, so generation and the forward pass run natively.
Full fine-tuning then keeps fp32 master weights in the optimiser (optim.py), because a 1e-6 update vanishes
when added to a bf16 weight. LoRA adapters are fp32 (peft's default) over a frozen bf16 base.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .config import TrainConfig, TrainError

# Language-model linear layers; the vision tower joins only with --lora-vision.
LORA_TEXT = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
LORA_VISION = r".*visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(gate|up|down)_proj)"


def quiet_transformers() -> None:
    """Loading bars and advisory warnings would drown the training display."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def resolve(model: str) -> str:
    """A local folder, or a Hub id left to from_pretrained; a path that is clearly local must exist."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise TrainError(f"{model}: no config.json here; give a Qwen2.5-VL model folder or a Hub id")
        _check_type(model, json.loads((path / "config.json").read_text()).get("model_type"))
        return str(path)
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise TrainError(
            f"model not found: {model} (neither a folder nor a Hub id like Qwen/Qwen2.5-VL-3B-Instruct)"
        )
    return model


def _check_type(model: str, model_type: str | None) -> None:
    if model_type != "qwen2_5_vl":
        raise TrainError(f"{model} is a {model_type} model; the trainer supports Qwen2.5-VL (qwen2_5_vl)")


def _load_error(model: str, error: Exception) -> TrainError:
    reason = str(error).splitlines()[0].split(". If you were trying")[0]
    return TrainError(
        f"cannot load model {model}: {reason} (offline? then only models already in the Hugging Face "
        "cache, or local folders, load)"
    )


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise _load_error(model, error) from None
    tokenizer.padding_side = "left"
    return tokenizer


def load_image_processor(model: str, min_pixels: int, max_pixels: int):
    """The PIL image processor: the fast one and the full processor need torchvision."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        return Qwen2VLImageProcessorPil.from_pretrained(model, min_pixels=min_pixels, max_pixels=max_pixels)
    except (OSError, ValueError) as error:
        raise _load_error(model, error) from None


def attention(requested: str, device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model(model: str, device, dtype, attn: str):
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise _load_error(model, error) from None
    _check_type(model, config.model_type)
    try:
        policy = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            model, dtype=dtype, attn_implementation=attn
        )
    except (OSError, ValueError, ImportError) as error:
        raise _load_error(model, error) from None
    return policy.to(device)


def add_lora(policy, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    target = f"({LORA_TEXT}|{LORA_VISION})" if cfg.lora_vision else LORA_TEXT
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(policy, lora)


def compute_dtype(cfg: TrainConfig):
    import torch

    return torch.bfloat16 if cfg.precision == "bf16" else torch.float32


def load_policy(cfg: TrainConfig, device, weights: str | None = None):
    """The trainable policy. `weights` is a checkpoint's model folder to resume from (full fine-tuning)."""
    dtype = compute_dtype(cfg)
    policy = load_model(weights or resolve(cfg.model), device, dtype, attention(cfg.attention, device))
    if cfg.freeze_vision:
        policy.model.visual.requires_grad_(False)
    if cfg.gradient_checkpointing:
        # non-reentrant: works with frozen inputs (LoRA) without enable_input_require_grads
        kwargs = {"use_reentrant": False}
        if hasattr(policy, "activation_checkpointing_enable"):  # transformers >= 5.2x
            policy.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if cfg.lora:
        policy = add_lora(policy, cfg)
    return policy


def load_reference(cfg: TrainConfig, device):
    """A frozen copy for the KL term; None when beta is 0, or with LoRA (its reference: the adapter off)."""
    if cfg.beta == 0 or cfg.lora:
        return None
    reference = load_model(resolve(cfg.model), device, compute_dtype(cfg), attention(cfg.attention, device))
    reference.requires_grad_(False)
    return reference.eval()


def trainable(policy) -> list:
    return [p for p in policy.parameters() if p.requires_grad]


def count_parameters(policy) -> tuple[int, int]:
    total = sum(p.numel() for p in policy.parameters())
    return total, sum(p.numel() for p in trainable(policy))
