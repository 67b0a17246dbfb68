"""Per-token log-probabilities (and entropy) of completions under a model.

The sampler drew token t from softmax(z_t / T), so the log-prob of the ratio uses the same temperature:

    logp_t = (z_t / T)[y_t] - logsumexp(z_t / T)
    entropy_t = -sum_v p_v log p_v,  p = softmax(z_t / T)

Only the completion's logits are computed (`logits_to_keep`), and the float32 softmax is taken one row at a
time, so a 152k vocabulary does not hold a (batch, length, vocab) float32 tensor at once for entropy.
"""

from __future__ import annotations

import torch

from .vision import ImageShare, encode_once


def token_logprobs(
    model,
    inputs: dict,
    targets: torch.Tensor,
    temperature: float,
    entropy: bool = False,
    images: ImageShare | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, C) log-probs of `targets`, the last C tokens of `inputs`; with `entropy`, also (B, C) entropies.
    `images`: which distinct images the rows share (`inputs` then hold each one's pixels once)."""
    width = targets.shape[1]
    with encode_once(model, images):
        logits = model(**inputs, logits_to_keep=width + 1, use_cache=False).logits[:, :-1]
    logps, entropies = [], []
    for row, target in zip(logits, targets, strict=True):
        scaled = row.float() / temperature
        logps.append(scaled.gather(-1, target[:, None]).squeeze(-1) - torch.logsumexp(scaled, -1))
        if entropy:
            with torch.no_grad():
                log_p = torch.log_softmax(scaled.detach(), -1)
                entropies.append(-(log_p.exp() * log_p).sum(-1))
    return torch.stack(logps), torch.stack(entropies) if entropy else None
