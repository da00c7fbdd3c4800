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
    torch.testing.assert_close(
        A,
        torch.tensor(expected1 + expected2),
        msg=lambda m: (
            "leave-one-out advantages are not R_i - (mean of the OTHER G-1 rewards): does your baseline include R_i "
            f"or divide by G? is it R_i minus the baseline? got {A.tolist()}\n{m}"
        ),
    )


def test_leave_one_out_is_a_rescaled_mean_baseline():
    R = torch.randn(24)
    G = 6
    torch.testing.assert_close(
        group_advantages(R, G),
        G / (G - 1) * group_advantages(R, G, baseline="mean"),
        msg=lambda m: (
            "leave-one-out must be G/(G-1) times the group-mean advantages: is one baseline wrong (leave-one-out: "
            f"mean of the others; 'mean': mean of all G), or are the groups not consecutive rows (view(-1, G))?\n{m}"
        ),
    )


def test_grpo_std_normalisation_and_zero_variance_groups():
    R = torch.tensor([3.0, 3.0, 3.0, 0.0, 1.0, 0.0])
    A = group_advantages(R, 3, baseline="mean", std_normalize=True)
    assert torch.equal(A[:3], torch.zeros(3)), (
        f"a group whose rewards are all equal must get A = 0 exactly (it teaches nothing), got {A[:3].tolist()}: "
        "add eps to the std, do not divide by zero"
    )
    std = ((2 * (0 - 1 / 3) ** 2 + (1 - 1 / 3) ** 2) / (3 - 1)) ** 0.5  # the sample std: divided by G - 1, as torch.std
    torch.testing.assert_close(
        A[3:],
        (torch.tensor([0.0, 1.0, 0.0]) - 1 / 3) / (std + 1e-6),
        msg=lambda m: (
            "GRPO's advantage is (R_i - mean) / (std + eps) with the sample std (divided by G - 1, torch's "
            f"default) and eps added to the std: got {A[3:].tolist()}\n{m}"
        ),
    )
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
    assert (w[~MASK] == 0).all(), f"{aggregation}: weights outside the response mask must be 0 (padding is not a token)"
    got = (w * PER_TOKEN).sum().item()
    assert got == pytest.approx(expected), (
        f"{aggregation}: the sum of w * loss is {got:.4f}, expected {expected:.4f}: check the denominator against the "
        "handout, and use the totals passed in, not ones counted from this mask"
    )


def test_weights_of_micro_batches_add_up_to_the_whole():
    # Global totals make the per-micro-batch losses sum to the full-batch loss.
    for agg in ("token", "sequence", "constant"):
        whole = (token_weights(MASK, agg, 6, 2, 8) * PER_TOKEN).sum()
        parts = sum((token_weights(MASK[i : i + 1], agg, 6, 2, 8) * PER_TOKEN[i : i + 1]).sum() for i in range(2))
        torch.testing.assert_close(
            whole,
            parts,
            msg=lambda m: (
                f"{agg}: two one-row micro-batches do not add up to the whole batch: use the global totals passed "
                f"in (total_tokens, total_sequences, max_len), not totals counted from the micro-batch's mask\n{m}"
            ),
        )


def test_on_policy_gradient_is_minus_advantage_times_weight():
    logp = torch.tensor([[-1.0, -2.0, 0.0, 0.0], [-0.5, -0.5, -0.5, -0.5]], requires_grad=True)
    A = torch.tensor([2.0, -1.0])
    w = MASK / 6.0  # "token" aggregation, written out: 1 / (6 tokens in the batch) inside the mask
    loss = policy_loss(logp, A, w)
    loss.backward()
    torch.testing.assert_close(
        logp.grad,
        -A[:, None] * w,
        msg=lambda m: f"d loss / d log pi must be -A * w: REINFORCE minimises -A log pi (check the sign and the weights)\n{m}",
    )
    assert loss.item() == pytest.approx(-(2 * (-3.0) + (-1) * (-2.0)) / 6), (
        f"the loss is the scalar sum_t w_t * (-A log pi_t); got {loss.item():.4f}, expected {4 / 6:.4f}"
    )
    # as the trainers call it: old_logp always passed (the log-probs the batch was sampled with), clip_eps None
    old = logp.detach() - 0.3  # a batch sampled by a slightly different policy: any ratio would show
    try:
        as_trainers = policy_loss(logp, A, w, old, None, torch.zeros_like(logp), 0.0)
    except TypeError as err:
        pytest.fail(
            f"policy_loss(logp, A, w, old_logp, clip_eps=None, ref_logp, 0.0), as the trainers call it on-policy, raised "
            f"TypeError ({err}): with clip_eps None there is no clip, even when old_logp is given"
        )
    (grad,) = torch.autograd.grad(as_trainers, logp)
    torch.testing.assert_close(
        grad,
        -A[:, None] * w,
        msg=lambda m: (
            "called as the trainers call it on-policy, policy_loss(logp, A, w, old_logp, clip_eps=None, ref_logp, 0.0), "
            "the loss must still be -A log pi: clip_eps=None turns the ratio and the clip off, whatever old_logp is\n" + m
        ),
    )
    assert as_trainers.item() == pytest.approx(loss.item()), "clip_eps=None: the on-policy loss, old_logp unused"


def test_clipped_loss_equals_on_policy_at_ratio_one_and_clips_outside():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    w = torch.full((1, 2), 0.5)
    on = policy_loss(logp, torch.tensor([1.0]), w)
    # -A * logp and -A * ratio differ in value but, at ratio 1, not in gradient
    g_on = torch.autograd.grad(on, logp)[0]
    g_clip = torch.autograd.grad(policy_loss(logp, torch.tensor([1.0]), w, logp.detach(), 0.2), logp)[0]
    torch.testing.assert_close(
        g_on,
        g_clip,
        msg=lambda m: f"at ratio 1 the clipped loss must have the on-policy gradient: is rho = exp(logp - old_logp)?\n{m}",
    )
    # ratio 1.5 with A > 0 is past 1 + eps: no gradient; with A < 0 the unclipped term is kept.
    old = logp.detach() - torch.log(torch.tensor(1.5))
    g_pos = torch.autograd.grad(policy_loss(logp, torch.tensor([1.0]), w, old, 0.2), logp)[0]
    g_neg = torch.autograd.grad(policy_loss(logp, torch.tensor([-1.0]), w, old, 0.2), logp)[0]
    assert torch.equal(g_pos, torch.zeros_like(g_pos)), (
        f"ratio 1.5 > 1 + eps with A > 0 must get no gradient (the clipped, constant term is the min), got {g_pos.tolist()}"
    )
    torch.testing.assert_close(
        g_neg,
        1.5 * 0.5 * torch.ones_like(g_neg),
        msg=lambda m: (
            "ratio 1.5 with A < 0: the unclipped term rho * A is the min and keeps its gradient -A * rho * w: "
            f"is the loss -min(rho A, clip(rho) A) (not a max, not a clip of A)?\n{m}"
        ),
    )


def test_k3_kl_is_nonnegative_and_zero_at_equal_policies():
    logp = torch.randn(1000) - 2
    ref = torch.randn(1000) - 2
    assert (k3_kl(logp, ref) >= 0).all(), "k3 = exp(q) - q - 1 is >= 0 for every q: a negative value means another formula"
    assert torch.equal(k3_kl(logp, logp), torch.zeros(1000)), "k3 must be exactly 0 where pi = pi_ref (q = 0)"
    # Its expectation under pi is the true KL: check on a small categorical distribution.
    pi = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.2, 0.6])
    exact = (pi * (pi.log() - q.log())).sum()
    torch.testing.assert_close(
        (pi * k3_kl(pi.log(), q.log())).sum(),
        exact,
        msg=lambda m: f"E_pi[k3] must be KL(pi || pi_ref): is q = log pi_ref - log pi (not the reverse)?\n{m}",
    )


def test_k3_kl_clamps_q_so_that_a_far_off_token_stays_finite():
    # q = log pi_ref - log pi = +200 and -200: clamped to [-20, 20], exp(20) - 20 - 1 and exp(-20) + 20 - 1
    got = k3_kl(torch.tensor([-200.0, 0.0]), torch.tensor([0.0, -200.0]))
    expected = [math.exp(20) - 21, math.exp(-20) + 19]
    assert torch.isfinite(got).all() and got.tolist() == pytest.approx(expected, rel=1e-6), (
        f"k3 of q = +200 and -200 is {got.tolist()}, expected {expected}: clamp q to [-20, 20] before exp (one far-off "
        "token must not overflow to inf, nor weigh 200 in the penalty)"
    )


def test_kl_penalty_enters_the_loss():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -2.0]])
    w = torch.full((1, 2), 0.5)
    base = policy_loss(logp, torch.tensor([0.0]), w)
    with_kl = policy_loss(logp, torch.tensor([0.0]), w, ref_logp=ref, kl_coef=0.1)
    q = ref - logp  # the penalty written out: kl_coef * sum_t w_t * (exp(q_t) - q_t - 1)
    penalty = 0.1 * 0.5 * (q.exp() - q - 1).sum().item()
    assert with_kl.item() == pytest.approx(base.item() + penalty), (
        f"with kl_coef the loss must gain kl_coef * sum_t w_t * k3_t = {penalty:.5f}; it gained {with_kl.item() - base.item():.5f}"
    )
