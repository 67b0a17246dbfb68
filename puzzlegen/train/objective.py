"""The GRPO objective on plain tensors. No model here: tests check every formula against a slow reference.

Notation. A step holds P puzzles with G completions each, N = P*G sequences. Completion i of group g has
the reward r_i, and for each of its tokens t the log-probability logp_it under the policy being trained,
logp^old_it under the policy that sampled it, logp^ref_it under the reference, and the mask m_it (1 for a
real completion token, the stop token included; 0 for padding). L is --max-new-tokens.

Advantages (one per completion, shared by its tokens):

    A_i = r_i - mean_{j in g} r_j                      scale "none"   (Dr. GRPO: no std)
    A_i = (r_i - mean_{j in g} r_j) / (std_g + eps)    scale "group"  (GRPO)
    A_i = (r_i - mean_{j in g} r_j) / (std_B + eps)    scale "batch"  (std over the whole batch)

std is the unbiased sample standard deviation (torch.std), as TRL and verl use.

Clipped surrogate with separate bounds (clip-higher, DAPO):

    rho_it = exp(logp_it - logp^old_it)
    l^clip_it = -min(rho_it * A_i, clip(rho_it, 1 - eps_low, 1 + eps_high) * A_i)

KL to the reference by the k3 estimator, clamped against overflow (verl's bounds):

    d_it = clamp(logp^ref_it - logp_it, -20, 20)
    k3_it = clamp(exp(d_it) - d_it - 1, -10, 10)

Per-token loss l_it = l^clip_it + beta * k3_it, aggregated as loss = sum_it w_it * l_it with

    token-mean:  w_it = m_it / sum_jt m_jt                  (every token weighs the same)
    seq-mean:    w_it = m_it / (N * sum_t m_it)             (every sequence weighs the same)
    dr-grpo:     w_it = m_it / (N * L)                      (constant normaliser, no length bias)

The weights are computed for the whole (mini-)batch first, so splitting it into micro-batches and summing
their losses gives the same gradient as one big batch.
"""

from __future__ import annotations

import torch

LOG_RATIO_CLAMP = 20.0
KL_CLAMP = 10.0


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-6
) -> torch.Tensor:
    """rewards (N,) ordered group by group -> advantages (N,)."""
    grouped = rewards.view(-1, group_size).float()
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centred = centred / (rewards.float().std() + eps)
    elif scale != "none":
        raise ValueError(f"unknown advantage scale {scale!r}")
    return centred.reshape(-1)


def zero_variance_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(P,) bool: groups whose rewards are all equal carry no learning signal."""
    grouped = rewards.view(-1, group_size)
    return grouped.max(dim=1).values == grouped.min(dim=1).values


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = exp(d) - d - 1 with d = ref - logp, clamped (an unclamped k3 overflows to inf, then NaN)."""
    d = (ref_logp - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (torch.exp(d) - d - 1).clamp(-KL_CLAMP, KL_CLAMP)


def token_weights(
    mask: torch.Tensor, mode: str, n_sequences: int, n_tokens: float, max_len: int
) -> torch.Tensor:
    """w_it for `mask` (B, T), a slice of a batch of `n_sequences` sequences holding `n_tokens` tokens."""
    mask = mask if mask.is_floating_point() else mask.float()
    if mode == "token-mean":
        return mask / max(n_tokens, 1.0)
    if mode == "seq-mean":
        return mask / (n_sequences * mask.sum(dim=1, keepdim=True).clamp(min=1.0))
    if mode == "dr-grpo":
        return mask / (n_sequences * max_len)
    raise ValueError(f"unknown loss aggregation {mode!r}")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """sum_it w_it * (l^clip_it + beta * k3_it) for (B, T) token tensors and (B,) advantages.

    Also returns token sums for the logs: tokens, clipped below (A < 0, rho < 1 - eps_low), clipped above
    (A > 0, rho > 1 + eps_high), and the k3 sum.
    """
    adv = advantages.unsqueeze(1).to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl = None
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs reference log-probs")
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl
    loss = (weights * per_token).sum()
    with torch.no_grad():
        m = mask.bool()
        stats = {
            "tokens": float(m.sum()),
            "clip_low": float(((ratio < 1 - clip_low) & (adv < 0) & m).sum()),
            "clip_high": float(((ratio > 1 + clip_high) & (adv > 0) & m).sum()),
            "kl": float((kl * m).sum()) if kl is not None else 0.0,
        }
    return loss, stats
