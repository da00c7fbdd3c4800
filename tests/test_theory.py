"""theory.py: each reward's trained optimum against its closed form, on a language small enough to list."""

import pytest
import torch

import theory as T

REF = T.reference()
R_TABLE = T.score_table(T.correct_long)


def test_listing_sampler_and_log_probs_agree():
    """Both response spaces are listed once each, sum to 1, and are what the sampler actually draws."""
    torch.manual_seed(0)
    random_table = torch.randn(T.N_PREFIXES, T.V) * 2  # any table, not only the reference
    for fixed, count in ((False, 1 + 3 + 9 + 27 + 81 + 243), (True, T.V**T.L)):
        tokens, mask = T.all_responses(fixed)
        assert len(tokens) == count and len(set(T.code(tokens).tolist())) == count, (
            f"fixed_length={fixed}: {len(tokens)} rows, {len(set(T.code(tokens).tolist()))} distinct, expected {count} "
            "responses each spelt once (EOS stops: pad with EOS after the first EOS, and keep only that spelling)"
        )
        for logits in (REF, random_table):
            p = T.token_logp(logits, tokens, mask).sum(-1).exp()
            assert p.sum().item() == pytest.approx(1.0, abs=1e-5), (
                f"the listed responses' probabilities sum to {p.sum().item():.5f}, not 1: is the mask up to and including "
                "the first EOS (all ones when fixed_length)?"
            )
            # samples from the token-by-token sampler land on the listed responses at these frequencies
            n = 200_000
            s_tokens, s_mask = T.sample(logits, n, fixed)
            index = {c: i for i, c in enumerate(T.code(tokens).tolist())}
            hits = torch.tensor([index[c] for c in T.code(s_tokens).tolist()])
            assert torch.equal(s_mask, mask[hits]), (
                "a sampled response's mask differs from your listing's: EOS is inside the mask"
            )
            empirical = torch.bincount(hits, minlength=count).float() / n
            assert ((empirical - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 3 / n).all()  # within 5 sigma


def test_kl_regularised_likelihood_reward_is_a_scaled_tempered_reward():
    # log pi_ref - beta (log pi_theta - log pi_ref), written out, against the regime's reward via sequence_reward
    torch.manual_seed(1)
    ref_logp, logp, r = -5 * torch.rand(16), -5 * torch.rand(16), torch.randint(0, 2, (16,)).float()
    for beta in (0.25, 0.5, 2.0):
        R = T.reward(dict(mode="tempered", beta=beta), r, ref_logp, logp, torch.full((16,), 3))
        torch.testing.assert_close(R, ref_logp - beta * (logp - ref_logp))
    # and its target is the power 1 + 1/beta
    tokens, mask, ref_logp, _, r = T.space(REF, T.correct_long, False)
    goal = T.target(dict(mode="tempered", beta=0.5), ref_logp, r)
    torch.testing.assert_close(goal, (3 * ref_logp).exp() / (3 * ref_logp).exp().sum())


def test_length_normalised_tempered_optimum_is_a_power_that_fades_with_length():
    # R = (alpha - 1) log pi_ref / L + log pi_ref - log pi_theta (the authors' "mean"), so by the same algebra as
    # pi_ref^alpha: pi* ∝ pi_ref^(1 + (alpha - 1) / L), per response. Written out here, not via theory.tilted.
    tokens, mask, ref_logp, length, r = T.space(REF, T.correct_long, False)
    for alpha in (0.5, 2.0, 4.0):
        unnormalised = ref_logp.exp() ** (1 + (alpha - 1) / length)
        goal = T.target(dict(mode="tempered", alpha=alpha, normalization="mean"), ref_logp, r, length)
        torch.testing.assert_close(goal, unnormalised / unnormalised.sum())
    # and it is not pi_ref^alpha: the mean keeps long responses that pi_ref^4 all but removes
    mean4 = T.target(dict(mode="tempered", alpha=4.0, normalization="mean"), ref_logp, r, length)
    assert (mean4 * length).sum() > (T.power(ref_logp, 4.0) * length).sum() + 1.0


@pytest.mark.parametrize("name,label,regime,fixed,steps", T.REGIMES, ids=[r[0] for r in T.REGIMES])
def test_training_reaches_the_closed_form(name, label, regime, fixed, steps):
    tokens, mask, ref_logp, length, r = T.space(REF, T.correct_long, fixed)
    goal = T.target(regime, ref_logp, r, length)
    if name != "tempered a=1":  # that one starts at its optimum; every other one has far to go (TV 0.26 to 0.98)
        assert T.distance(ref_logp.exp(), goal, r) > 0.25
    pi = T.token_logp(T.train(regime, REF, R_TABLE, steps=steps, fixed_length=fixed), tokens, mask).sum(-1).exp()
    assert T.distance(pi, goal, r) < 0.02


def test_power_distribution_gets_shorter_as_alpha_grows():
    # the premise: per-token entropy rises with depth in the reference
    depth, p = T.prefix_depths(), REF.softmax(-1)
    entropy = -(p * p.log()).sum(-1)
    by_depth = [entropy[depth == d].mean().item() for d in range(T.L)]
    assert all(a < b for a, b in zip(by_depth, by_depth[1:]))
    # the claim: E[len] under pi_ref^alpha falls with alpha, down to the length of the mode
    _, _, ref_logp, length, _ = T.space(REF, T.correct_long, False)
    alphas = (0.25, 0.5, 1, 2, 4, 8, 32)
    lengths = [(T.power(ref_logp, a) * length).sum().item() for a in alphas]
    assert all(a > b for a, b in zip(lengths, lengths[1:]))
    assert lengths[0] > 4 and lengths[-1] == pytest.approx(length[ref_logp.argmax()].item(), abs=1e-3)
    assert length[ref_logp.argmax()] == 2  # sharpening's pick: one symbol, then EOS


def test_fixed_length_control_closes_the_length_channel():
    tokens, mask, ref_logp, length, _ = T.space(REF, T.correct_long, True)
    for alpha in (0.25, 0.5, 1, 2, 4, 8):
        q = T.power(ref_logp, alpha)
        assert q.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert (q * length).sum().item() == pytest.approx(T.L, abs=1e-5)
    assert length[ref_logp.argmax()] == T.L
    # training with EOS ignored draws only full-length responses
    _, s_mask = T.sample(REF, 1000, fixed_length=True)
    assert s_mask.all()


@pytest.mark.parametrize("aligned", [True, False])
def test_covariance_condition(aligned):
    tokens, _, ref_logp, _, _ = T.space(REF, T.correct_long, False)
    texts = T.answer(tokens)
    r = T.scores(texts, T.correct_likely(texts, ref_logp) if aligned else T.correct_long)
    p = ref_logp.exp()
    base = (p * r).sum().item()
    assert 0.1 < base < 0.9
    # d/dalpha E_{pi_ref^alpha}[r] = Cov_{pi_ref^alpha}(r, log pi_ref), checked by finite differences
    for alpha in (0.5, 1.0, 2.0):
        h = 1e-3
        slope = ((T.power(ref_logp, alpha + h) * r).sum() - (T.power(ref_logp, alpha - h) * r).sum()).item() / (2 * h)
        assert slope == pytest.approx(T.covariance(T.power(ref_logp, alpha), r, ref_logp), rel=1e-2, abs=1e-4)
    cov = T.covariance(p, r, ref_logp)
    sharpened = (T.point_mass(ref_logp) * r).sum().item()
    if aligned:  # correctness goes with likelihood: sharpening helps
        assert cov > 0 and sharpened > base
    else:  # correct answers are long, hence unlikely: sharpening hurts
        assert cov < 0 and sharpened < base
