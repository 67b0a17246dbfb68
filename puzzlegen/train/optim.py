"""AdamW, with fp32 master weights when the trained parameters are bf16, and the learning-rate schedule.

A bf16 weight near 0.01 moves in steps of about 6e-5, so an update of lr * 1 = 1e-6 applied to it directly
would round away. With master weights the update lands on an fp32 copy, which is then copied to the bf16
parameter the model computes with.
"""

from __future__ import annotations

import math

import torch


class TrainOptimizer:
    def __init__(self, params: list[torch.nn.Parameter], lr: float, weight_decay: float):
        self.params = params
        self.master = any(p.dtype in (torch.bfloat16, torch.float16) for p in params)
        self.copies = [p.detach().float().clone() for p in params] if self.master else params
        fused = all(p.is_cuda for p in params) and not _is_dtensor(params)
        self.inner = torch.optim.AdamW(
            self.copies, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999), eps=1e-8, fused=fused or None
        )

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
        if self.master:
            for c in self.copies:
                c.grad = None

    def clip_and_step(self, max_norm: float) -> float:
        """Clip the global gradient norm (in fp32), take one AdamW step, return the norm before clipping."""
        if self.master:
            for p, c in zip(self.params, self.copies, strict=True):
                c.grad = None if p.grad is None else p.grad.float()
                # copied: freeing the bf16 gradient now keeps the step's peak lower by its size (7.5 GB
                # for 3B); the trainer zeroes gradients after every step anyway
                p.grad = None
        norm = torch.nn.utils.clip_grad_norm_(self.copies, max_norm if max_norm > 0 else float("inf"))
        self.inner.step()
        if self.master:
            with torch.no_grad():
                for p, c in zip(self.params, self.copies, strict=True):
                    p.copy_(c)
        return float(norm.full_tensor() if _is_dtensor([norm]) else norm)

    def state_dict(self) -> dict:
        state = {"adamw": self.inner.state_dict()}
        if self.master:
            state["master"] = [c.detach().cpu() for c in self.copies]
        return state

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state["adamw"])
        if self.master:
            with torch.no_grad():
                for c, saved in zip(self.copies, state["master"], strict=True):
                    c.copy_(saved)


def state_gb(total: int, trainable: int, precision: str, reference: bool, shards: int = 1) -> float:
    """Weights (and a reference copy), fp32 master copies, AdamW moments and the fp32 gradients at the
    optimiser step, in GB per GPU; activations, rollouts and the CUDA context come on top. Under FSDP
    (`shards` GPUs) the weights are fp32 and everything is sharded."""
    width = 4 if precision == "fp32" or shards > 1 else 2
    master = 4 if width == 2 else 0
    weights = total * width * (2 if reference else 1)
    return (weights + trainable * (master + 8 + 4)) / shards / 1e9


def _is_dtensor(tensors) -> bool:
    return any(type(t).__name__ == "DTensor" for t in tensors)


def schedule(optimizer: TrainOptimizer, kind: str, warmup: int, total: int):
    """Linear warm-up over `warmup` steps, then constant, cosine to 0, or linear to 0 at `total`."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if kind == "linear":
            return 1.0 - progress
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer.inner, factor)
