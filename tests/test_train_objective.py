"""The GRPO loss math against a direct, slow reference written with Python floats, on random tensors."""

from __future__ import annotations

import math
import statistics

import pytest

torch = pytest.importorskip("torch")

from puzzlegen.train.objective import (  # noqa: E402
    group_advantages,
    k3_kl,
    policy_loss,
    token_weights,
    zero_variance_groups,
)


def ref_advantages(rewards: list[float], g: int, scale: str, eps: float) -> list[float]:
    out = []
    batch_std = statistics.stdev(rewards)
    for start in range(0, len(rewards), g):
        group = rewards[start : start + g]
        mean, std = sum(group) / g, statistics.stdev(group)
        for r in group:
            a = r - mean
            out.append(
                a / (std + eps) if scale == "group" else a / (batch_std + eps) if scale == "batch" else a
            )
    return out


def ref_k3(logp: float, ref: float) -> float:
    d = min(max(ref - logp, -20.0), 20.0)
    return min(max(math.exp(d) - d - 1, -10.0), 10.0)


def ref_loss(logp, old, ref, adv, mask, mode, max_len, clip_low, clip_high, beta) -> float:
    """sum_it w_it * (-min(rho A, clip(rho) A) + beta k3), one token at a time."""
    n = len(logp)
    total_tokens = sum(sum(row) for row in mask)
    loss = 0.0
    for i in range(n):
        length = sum(mask[i])
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            rho = math.exp(logp[i][t] - old[i][t])
            clipped = min(max(rho, 1 - clip_low), 1 + clip_high)
            term = -min(rho * adv[i], clipped * adv[i])
            if beta:
                term += beta * ref_k3(logp[i][t], ref[i][t])
            weight = {
                "token-mean": 1 / total_tokens,
                "seq-mean": 1 / (n * length),
                "dr-grpo": 1 / (n * max_len),
            }[mode]
            loss += weight * term
    return loss


def random_batch(seed: int, n: int = 6, t: int = 7):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, t, generator=gen, dtype=torch.float64) * 3
    old = (
        logp + torch.randn(n, t, generator=gen, dtype=torch.float64) * 0.3
    )  # ratios on both sides of the clip
    ref = logp + torch.randn(n, t, generator=gen, dtype=torch.float64) * 2
    lengths = torch.randint(1, t + 1, (n,), generator=gen)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).double()
    adv = torch.randn(n, generator=gen, dtype=torch.float64)
    return logp, old, ref, mask, adv


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("seed", range(3))
def test_advantages_match_reference(scale, seed):
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.rand(4 * 5, generator=gen, dtype=torch.float64)
    got = group_advantages(rewards, 5, scale, 1e-6)
    want = ref_advantages(rewards.tolist(), 5, scale, 1e-6)
    assert got.tolist() == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_advantages_sum_to_zero_per_group_and_equal_groups_are_flagged():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0])
    adv = group_advantages(rewards, 4, "group")
    assert adv.view(3, 4).sum(1).abs().max() < 1e-5
    assert adv[4:8].abs().max() == 0  # an all-equal group has zero advantage
    assert zero_variance_groups(rewards, 4).tolist() == [False, True, False]


def test_k3_matches_reference_and_never_overflows():
    logp = torch.tensor([-1.0, -50.0, 0.0, -3.0, -1e4])
    ref = torch.tensor([-1.2, 0.0, -80.0, -3.0, 0.0])
    got = k3_kl(logp, ref)
    assert torch.isfinite(got).all()
    assert got.tolist() == pytest.approx(
        [ref_k3(a, b) for a, b in zip(logp.tolist(), ref.tolist(), strict=True)]
    )
    assert got[3] == 0  # same log-prob: no divergence
    assert got.max() == 10.0  # clamped


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean", "dr-grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("seed", range(4))
def test_policy_loss_matches_reference(mode, beta, seed):
    logp, old, ref, mask, adv = random_batch(seed)
    weights = token_weights(mask, mode, len(mask), float(mask.sum()), max_len=10)
    loss, stats = policy_loss(logp, old, adv, weights, mask, 0.2, 0.28, beta, ref if beta else None)
    want = ref_loss(
        logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), mode, 10, 0.2, 0.28, beta
    )
    assert float(loss) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert stats["tokens"] == float(mask.sum())


def test_gradient_matches_reference_by_finite_difference():
    """d loss / d logp: compare autograd with central differences of the float reference."""
    logp, old, ref, mask, adv = random_batch(7, n=3, t=4)
    logp.requires_grad_(True)
    weights = token_weights(mask, "token-mean", 3, float(mask.sum()), 4)
    loss, _ = policy_loss(logp, old, adv, weights, mask, 0.2, 0.28, 0.1, ref)
    loss.backward()
    h = 1e-6
    for i, t in [(0, 0), (1, 1), (2, 0)]:
        bumped = [logp.detach().clone() for _ in range(2)]
        bumped[0][i, t] += h
        bumped[1][i, t] -= h
        args = (old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), "token-mean", 4, 0.2, 0.28, 0.1)
        numeric = (ref_loss(bumped[0].tolist(), *args) - ref_loss(bumped[1].tolist(), *args)) / (2 * h)
        assert float(logp.grad[i, t]) == pytest.approx(numeric, rel=1e-4, abs=1e-8)


def test_clip_higher_bounds_are_separate():
    """A ratio of 1.25 is inside [0.8, 1.28]: it still has a gradient for a positive advantage; 1.3 is not."""
    old = torch.zeros(2, 1, dtype=torch.float64)
    logp = torch.tensor([[math.log(1.25)], [math.log(1.3)]], dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 1, dtype=torch.float64)
    loss, stats = policy_loss(logp, old, torch.tensor([1.0, 1.0]), mask / 2, mask, 0.2, 0.28)
    loss.backward()
    assert logp.grad[0, 0] != 0 and logp.grad[1, 0] == 0
    assert stats["clip_high"] == 1 and stats["clip_low"] == 0


def test_first_pass_ratio_is_one_and_gradient_is_advantage_weighted():
    """With old = logp detached, the loss gradient is -w_it * A_i per token (the clip is inert)."""
    logp, _, _, mask, adv = random_batch(3)
    logp.requires_grad_(True)
    weights = token_weights(mask, "seq-mean", len(mask), float(mask.sum()), 7)
    loss, stats = policy_loss(logp, logp.detach(), adv, weights, mask, 0.2, 0.28)
    loss.backward()
    assert torch.allclose(logp.grad, -weights * adv[:, None])
    assert stats["clip_low"] == stats["clip_high"] == 0


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean", "dr-grpo"])
def test_micro_batches_sum_to_the_full_batch(mode):
    """Weights use the whole batch's counts, so micro-batch losses add up to the full-batch loss."""
    logp, old, ref, mask, adv = random_batch(11, n=8)
    n, tokens = len(mask), float(mask.sum())
    full, _ = policy_loss(logp, old, adv, token_weights(mask, mode, n, tokens, 7), mask, 0.2, 0.28, 0.05, ref)
    parts = 0.0
    for rows in ([0, 1, 2], [3, 4], [5, 6, 7]):
        w = token_weights(mask[rows], mode, n, tokens, 7)
        part, _ = policy_loss(logp[rows], old[rows], adv[rows], w, mask[rows], 0.2, 0.28, 0.05, ref[rows])
        parts += float(part)
    assert parts == pytest.approx(float(full), rel=1e-12)
