"""power_sample.py: the acceptance ratio and the jackknife by hand; the MH chain, Power-SMC and scalable power
sampling against pi_ref^alpha on theory.py's listed language; the language-model roads against teacher forcing and
plain sampling; and theory_family.py's exact checks."""

import math

import pytest
import torch

import rollout as plain_rollout
import theory as T
from conftest import tiny_qwen
from family import theory_family as F
from family.power_sample import acceptance, jackknife, power_rollout, power_sample, scalable_rollout, smc_rollout, splice
from plumbing import fast_rollout
from rollout import left_pad


def test_acceptance_ratio_by_hand():
    # alpha [log p(y') - log p(y)] + log q(y) - log q(y') + log|y| - log|y'|
    # = 2 (-1 + 3) + (-2) - (-0.5) + log 4 - log 2
    got = acceptance(
        2.0, torch.tensor(-1.0), torch.tensor(-3.0), torch.tensor(-0.5), torch.tensor(-2.0), torch.tensor(4), torch.tensor(2)
    )
    assert got.item() == pytest.approx(4.0 - 1.5 + math.log(2.0)), (
        f"log A = {got.item():.4f}, expected {4.0 - 1.5 + math.log(2.0):.4f}: alpha multiplies only the log p difference, "
        "log q enters as old - new, and the length term is log|y| - log|y'| (current minus proposed)"
    )
    # alpha = 1 and q = p: only the length term is left, and equal lengths always accept (log A = 0)
    same = acceptance(
        1.0, torch.tensor(-4.0), torch.tensor(-2.0), torch.tensor(-4.0), torch.tensor(-2.0), torch.tensor(3), torch.tensor(3)
    )
    assert same.item() == 0.0, f"alpha = 1, q = p and equal lengths must accept always (log A = 0), got {same.item()}"


def test_acceptance_is_detailed_balance():
    # Going back from y' to y is accepted with the inverse ratio: log A(y -> y') = -log A(y' -> y), for every alpha,
    # suffix and length (only then is p^alpha stationary); and with alpha = 1 and q = p only the lengths are left.
    g = torch.Generator().manual_seed(0)
    logp, logq = -5 * torch.rand(2, 50, generator=g), -5 * torch.rand(2, 50, generator=g)
    lengths = torch.randint(1, 30, (2, 50), generator=g)
    for alpha in (0.5, 2.0, 4.0):
        forward = acceptance(alpha, logp[0], logp[1], logq[0], logq[1], lengths[1], lengths[0])
        back = acceptance(alpha, logp[1], logp[0], logq[1], logq[0], lengths[0], lengths[1])
        torch.testing.assert_close(
            forward + back,
            torch.zeros(50),
            msg=lambda m: (
                f"alpha {alpha}: log A(y -> y') + log A(y' -> y) must be 0 (detailed balance): each term "
                f"of log A is a (new - old) or (old - new) difference, none may be missing or doubled\n{m}"
            ),
        )
    only_lengths = acceptance(1.0, logp[0], logp[1], logp[0], logp[1], lengths[1], lengths[0])
    torch.testing.assert_close(
        only_lengths,
        lengths[1].float().log() - lengths[0].float().log(),
        msg=lambda m: f"alpha = 1 and q = p: log A must be log|y| - log|y'| (the position's Hastings term)\n{m}",
    )


def test_the_chain_reaches_the_length_of_pi_ref_to_the_alpha():
    """The MH chain on theory.py's language (alpha = 2, 16 steps): its mean length is that of pi_ref^alpha, summed
    exactly over the prefix tree (see.py's power_moments), 2.33; the chain without the length term settles near 2.56."""
    from see import power_moments

    ref, alpha, g = T.reference(), 2.0, torch.Generator().manual_seed(0)
    _, lengths, _, _, _ = power_sample(F.table_extender(ref, alpha, g), 4000, alpha, T.L, T.L, 16, g)
    exact = power_moments(ref, alpha)[1]
    assert abs(lengths.float().mean().item() - exact) < 0.08, (
        f"the chain's mean length is {lengths.float().mean().item():.3f}, pi_ref^{alpha:g}'s is {exact:.3f}: the chain "
        "does not target pi_ref^alpha (is every term of log A there, with its sign?)"
    )


def test_splice_keeps_the_prefix_and_writes_the_new_suffix():
    tokens = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    logp = -tokens.float()
    new = torch.tensor([[7, 8, 9], [9, 0, 0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    out_tokens, out_logp, _, lengths = splice(tokens, logp, logp, torch.tensor([1, 2]), new, mask, -new.float(), -new.float())
    assert out_tokens.tolist() == [[1, 7, 8, 0], [5, 6, 9, 0]]
    assert out_logp.tolist() == [[-1, -7, -8, 0], [-5, -6, -9, 0]]
    assert lengths.tolist() == [3, 3]


@pytest.mark.parametrize("alpha", [2.0, 4.0])
def test_mcmc_reaches_pi_ref_to_the_alpha_on_the_listed_language(alpha):
    ref = T.reference()
    _, _, ref_logp, _, _ = T.space(ref, T.correct_long, False)
    goal = T.power(ref_logp, alpha)
    mcmc, _ = F.mcmc_distribution(ref, alpha, chains=20_000, mcmc_steps=16)
    assert T.tv(mcmc, goal) < 0.03
    assert T.tv(ref_logp.exp(), goal) > 0.4  # it had far to go


def test_without_the_length_term_the_chain_settles_elsewhere():
    ref = T.reference()
    _, _, ref_logp, _, _ = T.space(ref, T.correct_long, False)
    biased, _ = F.mcmc_distribution(ref, 2.0, chains=20_000, mcmc_steps=16, length_correction=False)
    assert T.tv(biased, T.power(ref_logp, 2.0)) > 0.08  # measured 0.12; the corrected chain: 0.005


def test_table_extender_samples_from_q_and_scores_under_p():
    ref = T.reference()
    alpha = 3.0
    extend = F.table_extender(ref, alpha, torch.Generator().manual_seed(0))
    n = 4000
    tokens = torch.full((n, T.L), T.EOS)
    tokens[:, 0] = 1  # every row: the prefix "b"
    new, mask, logp, logq, ended = extend(torch.arange(n), tokens, torch.ones(n, dtype=torch.long), torch.full((n,), 2))
    assert mask.sum(-1).max() <= 2 and (mask[:, 0]).all()
    first = T.child(0, 1)
    q = (alpha * ref[first]).softmax(-1)
    freq = torch.bincount(new[:, 0], minlength=T.V).float() / n
    assert (freq - q).abs().max() < 0.03  # the first new token ~ q
    torch.testing.assert_close(logq[:, 0], q.log()[new[:, 0]])
    torch.testing.assert_close(logp[:, 0], ref[first].log_softmax(-1)[new[:, 0]])
    assert torch.equal(ended, (new == T.EOS).logical_and(mask).any(-1))


@pytest.mark.parametrize("sampler", [plain_rollout.rollout, fast_rollout.rollout], ids=["plain", "fast"])
def test_language_model_proposal_and_power_rollout(sampler):
    model = tiny_qwen()
    # (as built, some chains end in EOS and some run to the 12-token budget)
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13]] * 4
    gen = torch.Generator().manual_seed(0)
    roll, sampled = power_rollout(model, prompts, 12, [1], 0, 2.0, 3, 2, sampler, gen)
    assert roll.response_mask.shape[1] <= 12 and sampled >= roll.lengths.sum()
    # each response's log-probs are p's (temperature 1) under teacher forcing
    from model import response_logprobs

    logp, _ = response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask)
    torch.testing.assert_close(roll.logprobs, logp, atol=1e-5, rtol=0)
    ended = roll.responses.eq(1).logical_and(roll.response_mask).any(-1)
    assert torch.equal(ended, ~roll.truncated) and (roll.lengths[roll.truncated] == 12).all()
    assert 0 < ended.sum() < len(prompts)
    prompt, _ = left_pad(prompts, 0, "cpu")
    assert torch.equal(roll.sequences[:, : prompt.shape[1]], prompt)


def test_jackknife_by_hand():
    # p^alpha of two candidates 1/2 each; futures' x = p(f)^(alpha - 1): (1, 3) and (2, 2). zeta_hat = (2, 2): pi_hat = (1/2, 1/2).
    # Without future 0: zeta = (3, 2), pi = (3/5, 2/5); without future 1: zeta = (1, 2), pi = (1/3, 2/3).
    # pi_JK = 2 pi_hat - (1/2)(pi_(-0) + pi_(-1)) = (1 - 7/15, 1 - 8/15) = (8/15, 7/15)
    head = torch.tensor([[0.5, 0.5]]).log()
    x = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]]).log()
    torch.testing.assert_close(jackknife(head, x), torch.tensor([[8 / 15, 7 / 15]]))
    # one future each: no jackknife, the plain ratio: (1/2 * 1, 1/2 * 2) / 1.5
    torch.testing.assert_close(jackknife(head, x[..., :1]), torch.tensor([[1 / 3, 2 / 3]]))


def listed(alpha):
    ref = T.reference()
    tokens, mask, ref_logp, _, _ = T.space(ref, T.correct_long, False)
    low = T.token_logp(alpha * ref, tokens, mask).sum(-1).exp()  # each token from softmax(alpha z): temperature 1/alpha
    return ref, T.power(ref_logp, alpha), low


ANSWERS = 5000


def test_smc_converges_to_pi_ref_to_the_alpha_as_particles_grow():
    ref, goal, low = listed(2.0)
    floor = F.exact_sample_tv(goal, ANSWERS)  # 0.016
    one, cost_one = F.smc_distribution(ref, 2.0, ANSWERS, particles=1)
    assert T.tv(one, low) < 2 * F.exact_sample_tv(low, ANSWERS)  # one particle: temperature 1/alpha
    assert T.tv(one, goal) > 0.45  # which is far from p^alpha (exactly: 0.494)
    many, cost_many = F.smc_distribution(ref, 2.0, ANSWERS, particles=64)
    assert T.tv(many, goal) < 1.5 * floor
    assert 60 * cost_one < cost_many < 64 * cost_one  # the particles' tokens; resampled ones end at other lengths


def test_scalable_power_sampling_converges_to_pi_ref_to_the_alpha_as_futures_grow():
    ref, goal, low = listed(2.0)
    floor = F.exact_sample_tv(goal, ANSWERS)
    one, _ = F.scalable_distribution(ref, 2.0, ANSWERS, rollouts=1)
    assert T.tv(one, goal) > 0.1  # one future: zeta_hat is a single p(f)^(alpha - 1) (measured 0.13)
    many, _ = F.scalable_distribution(ref, 2.0, ANSWERS, rollouts=16)
    assert T.tv(many, goal) < 1.5 * floor
    top2, _ = F.scalable_distribution(ref, 2.0, ANSWERS, rollouts=16, candidates=2)
    assert T.tv(top2, goal) > 0.5  # two candidates of four: the others are never drawn


def test_smc_with_one_particle_is_plain_sampling_at_temperature_one_over_alpha():
    model, prompts = tiny_qwen(), [[5, 6, 7], [8, 9], [10, 11, 12, 13]] * 2
    roll, sampled = smc_rollout(model, prompts, 12, [1], 0, 2.0, 1, torch.Generator().manual_seed(3))
    plain = plain_rollout.rollout(model, prompts, 12, [1], 0, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(roll.sequences, plain.sequences) and sampled == int(plain.lengths.sum())
    # the log-probs it reports are p's, not q's
    from model import response_logprobs

    torch.testing.assert_close(
        roll.logprobs, response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask)[0]
    )


@pytest.mark.parametrize("road", ["smc", "scalable"])
def test_language_model_roads_report_p_and_their_cost(road):
    from model import response_logprobs

    model, prompts = tiny_qwen(), [[5, 6, 7], [8, 9], [10, 11, 12, 13]] * 2
    gen = torch.Generator().manual_seed(0)
    if road == "smc":
        roll, sampled = smc_rollout(model, prompts, 10, [1], 0, 4.0, 6, gen)
        most = 6 * 10 * len(prompts)  # six particles per answer, each at most 10 tokens
    else:
        roll, sampled = scalable_rollout(model, prompts, 10, [1], 0, 4.0, 3, 2, fast_rollout.rollout, gen)
        # at token t of an answer: 3 candidates x 2 futures of at most 10 - t - 1 tokens, then the token itself
        most = sum(sum(1 + 3 * 2 * (10 - t - 1) for t in range(n)) for n in roll.lengths.tolist())
    assert roll.lengths.sum() < sampled <= most
    logp, _ = response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask)
    torch.testing.assert_close(roll.logprobs, logp, atol=1e-5, rtol=0)
    ended = roll.responses.eq(1).logical_and(roll.response_mask).any(-1)
    assert torch.equal(ended, ~roll.truncated) and (roll.lengths[roll.truncated] == 10).all()


def test_self_rewards_reach_their_optima_on_the_table():
    ref, r_table = T.reference(), T.score_table(T.correct_long)
    tokens, mask, _, _, _ = T.space(ref, T.correct_long, False)
    texts = T.answer(tokens)
    for mode in ("entropy-seq", "majority"):
        pi = T.token_logp(T.train(F.self_reward(mode), ref, r_table, steps=300), tokens, mask).sum(-1).exp()
        if mode == "majority":  # a certain answer
            assert max(F.answer_distribution(pi, texts).values()) > 0.95
        else:  # a point mass
            assert pi.max() > 0.95


def test_random_reward_has_zero_expected_gradient():
    mean_norm, one_norm = F.random_reward_expected_gradient(T.reference())
    assert mean_norm < 1e-6 < 1e-2 < one_norm
