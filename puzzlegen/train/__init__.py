"""GRPO post-training of Qwen2.5-VL on puzzle shards (the `train` extra: torch, transformers, peft).

Importing this package loads nothing heavy; torch is imported by the modules that need it:

    config.py       options and their checks (standard library)     data.py       shards -> seeded stream
    encode.py       puzzle -> prompt ids and pixels                 rollout.py    G completions per puzzle
    rewards.py      scores from puzzlegen.verify                    objective.py  the GRPO loss math
    logprobs.py     per-token log-probs and entropy                 optim.py      AdamW, master weights
    model.py        loading, LoRA, attention, precision             tiny.py       random models, no download
    distributed.py  torchrun, DDP / FSDP2                           checkpoint.py atomic save and resume
    metrics.py      JSONL + TensorBoard                             progress.py   rich display
    evaluate.py     accuracy per task                               trainer.py    the loop
    commands.py     `puzzlegen train` / `puzzlegen eval`
"""

from .config import TrainConfig, TrainError

__all__ = ["TrainConfig", "TrainError"]
