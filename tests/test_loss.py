"""The shared policy-gradient loss, checked on batches small enough to compute by hand."""

import math

import pytest
import torch

from loss import group_advantages, k3_kl, policy_loss, token_weights


def test_leave_one_out_advantages_by_hand():
    R = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    A = group_advantages(R, group_size=4)
    # group 1: baselines (0+0+1)/3, (1+0+1)/3, (1+0+1)/3, (1+0+0)/3
    expected1 = [1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3]
    # group 2: baselines 9/3, 9/3, 9/3, 6/3
    expected2 = [2 - 3, 2 - 3, 2 - 3, 5 - 2]
    torch.testing.assert_close(A, torch.tensor(expected1 + expected2))


def test_leave_one_out_is_a_rescaled_mean_baseline():
    R = torch.randn(24)
    G = 6
    torch.testing.assert_close(group_advantages(R, G), G / (G - 1) * group_advantages(R, G, baseline="mean"))


def test_grpo_std_normalisation_and_zero_variance_groups():
    R = torch.tensor([3.0, 3.0, 3.0, 0.0, 1.0, 0.0])
    A = group_advantages(R, 3, baseline="mean", std_normalize=True)
    assert torch.equal(A[:3], torch.zeros(3))  # a group whose rewards are all equal teaches nothing
    # [0, 1, 0]: mean 1/3, sample std sqrt(((1/3)^2 + (2/3)^2 + (1/3)^2) / (3 - 1)) = sqrt(1/3)
    std = math.sqrt(1 / 3)
    torch.testing.assert_close(A[3:], torch.tensor([-1 / 3, 2 / 3, -1 / 3]) / (std + 1e-6))
    with pytest.raises(ValueError, match="baseline"):
        group_advantages(R, 3, baseline="median")


# Two responses: lengths 2 and 4, per-token "losses" chosen so each aggregation gives a distinct number.
MASK = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
PER_TOKEN = torch.tensor([[1.0, 3.0, 9.0, 9.0], [2.0, 2.0, 2.0, 6.0]])


@pytest.mark.parametrize(
    "aggregation,expected",
    [
        ("token", (1 + 3 + 2 + 2 + 2 + 6) / 6),  # all valid tokens weigh the same
        ("sequence", ((1 + 3) / 2 + (2 + 2 + 2 + 6) / 4) / 2),  # every response weighs the same
        ("constant", (1 + 3 + 2 + 2 + 2 + 6) / (2 * 8)),  # Dr. GRPO with max_len = 8
    ],
)
def test_aggregations_by_hand(aggregation, expected):
    w = token_weights(MASK, aggregation, total_tokens=6, total_sequences=2, max_len=8)
    assert (w[~MASK] == 0).all()
    assert (w * PER_TOKEN).sum().item() == pytest.approx(expected)


def test_weights_of_micro_batches_add_up_to_the_whole():
    # Global totals make the per-micro-batch losses sum to the full-batch loss.
    for agg in ("token", "sequence", "constant"):
        whole = (token_weights(MASK, agg, 6, 2, 8) * PER_TOKEN).sum()
        parts = sum((token_weights(MASK[i : i + 1], agg, 6, 2, 8) * PER_TOKEN[i : i + 1]).sum() for i in range(2))
        torch.testing.assert_close(whole, parts)


def test_on_policy_gradient_is_minus_advantage_times_weight():
    logp = torch.tensor([[-1.0, -2.0, 0.0, 0.0], [-0.5, -0.5, -0.5, -0.5]], requires_grad=True)
    A = torch.tensor([2.0, -1.0])
    loss = policy_loss(logp, A, token_weights(MASK, "token", 6, 2, 4))
    loss.backward()
    # d/dl_it of -(1/6) sum A_i l_it: -A_i / 6 on the 6 response tokens, 0 on the padding
    torch.testing.assert_close(logp.grad, torch.tensor([[-2 / 6, -2 / 6, 0, 0], [1 / 6, 1 / 6, 1 / 6, 1 / 6]]))
    assert loss.item() == pytest.approx(-(2 * (-3.0) + (-1) * (-2.0)) / 6)


def test_clipped_loss_equals_on_policy_at_ratio_one_and_clips_outside():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    w = torch.full((1, 2), 0.5)
    on = policy_loss(logp, torch.tensor([1.0]), w)
    # -A * logp and -A * ratio differ in value but, at ratio 1, not in gradient
    g_on = torch.autograd.grad(on, logp)[0]
    g_clip = torch.autograd.grad(policy_loss(logp, torch.tensor([1.0]), w, logp.detach(), 0.2), logp)[0]
    torch.testing.assert_close(g_on, g_clip)
    # ratio 1.5 with A > 0 is past 1 + eps: no gradient; with A < 0 the unclipped term is kept.
    old = logp.detach() - torch.log(torch.tensor(1.5))
    g_pos = torch.autograd.grad(policy_loss(logp, torch.tensor([1.0]), w, old, 0.2), logp)[0]
    g_neg = torch.autograd.grad(policy_loss(logp, torch.tensor([-1.0]), w, old, 0.2), logp)[0]
    assert torch.equal(g_pos, torch.zeros_like(g_pos))
    torch.testing.assert_close(g_neg, 1.5 * 0.5 * torch.ones_like(g_neg))


def test_k3_kl_is_nonnegative_and_zero_at_equal_policies():
    logp = torch.randn(1000) - 2
    ref = torch.randn(1000) - 2
    assert (k3_kl(logp, ref) >= 0).all()
    assert torch.equal(k3_kl(logp, logp), torch.zeros(1000))
    # Its expectation under pi is the true KL: check on a small categorical distribution.
    pi = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.2, 0.6])
    exact = (pi * (pi.log() - q.log())).sum()
    torch.testing.assert_close((pi * k3_kl(pi.log(), q.log())).sum(), exact)


def test_kl_penalty_enters_the_loss():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -2.0]])
    w = torch.full((1, 2), 0.5)
    base = policy_loss(logp, torch.tensor([0.0]), w)
    with_kl = policy_loss(logp, torch.tensor([0.0]), w, ref_logp=ref, kl_coef=0.1)
    # q = log pi_ref - log pi = (-0.5, 0): k3 = (e^-0.5 + 0.5 - 1, 0), weighted 0.5 each, times the coefficient 0.1
    assert base.item() == 0 and with_kl.item() == pytest.approx(0.1 * 0.5 * (math.exp(-0.5) + 0.5 - 1))
