"""
The sharpening family, checked exactly on theory.py's language (every response of at most 5 tokens over
{a, b, c, EOS}: 364 of them, listed), with the same tabular policy and the same sampled RL step.

1. Four roads to pi_ref^alpha. Three at inference, with no training (power_sample.py): Metropolis-Hastings
   with the base model at temperature 1/alpha as proposal (Karan & Du), Power-SMC (Azizi et al.) and scalable
   power sampling (Ji et al.); and tempered RL (R = alpha log pi_ref - log pi_theta). Each is compared with
   pi_ref^alpha by total variation, for alpha = 2 and 4, at growing budgets, with its cost in tokens sampled
   per answer; next to them, the TV an exact sample of the same size would show (the floor), plain sampling
   at temperature 1/alpha (what each road corrects), the MCMC without the Hastings term for the length (the
   authors' ratio), and scalable power sampling with only the top 2 of 4 tokens as candidates: those two
   converge to something else.
2. The self-rewards. Entropy minimisation (token and sequence form) is maximal, R = 0, exactly at
   deterministic policies: any single response. Self-certainty, (1/T) sum_t KL(uniform || pi_t) + log V, has
   no maximum: it grows without bound as any token's probability goes to 0. Majority vote (the answer: a
   response's last symbol) is maximal at any policy whose answer is certain. Sampled training from pi_ref
   picks one of these optima: which one, and how far it gets, is printed.
3. The random reward. For any batch, the expected update over the coins is exactly zero (all 2^G coin
   outcomes of a group, enumerated); trained, the policy drifts only as far as the noise carries it.

    python -m family.theory_family        # about a minute of one CPU core (39 s of CPU time, measured)
"""

import itertools
import time

import torch

import theory as T
from family.power_sample import power_sample, power_smc, scalable_power_sample
from loss import group_advantages, policy_loss, token_weights
from rewards import entropy_reward, logprob_reward, majority_vote, self_certainty_reward
from rollout import self_certainty

# -----------------------------------------------------------------------------
# the proposal of power sampling on the table: continue each prefix from pi_ref at temperature 1/alpha


def table_extender(ref, alpha, generator):
    """extend() of power_sample for the tabular pi_ref: new tokens from q = softmax(alpha z), with log p and
    log q of each, until EOS, the budget, or the language's length L."""

    def extend(chains, tokens, starts, budgets):
        n, w = len(tokens), int(budgets.max())
        prefix = torch.zeros(n, dtype=torch.long)
        for t in range(T.L - 1):  # the prefix tree node of each row's first `start` tokens
            prefix = torch.where(t < starts, T.child(prefix, tokens[:, t]), prefix)
        new = torch.full((n, w), T.EOS)
        mask = torch.zeros((n, w), dtype=torch.bool)
        logp, logq = torch.zeros(n, w), torch.zeros(n, w)
        running = budgets > 0
        for j in range(w):
            z = ref[prefix]
            q = (alpha * z).log_softmax(-1)
            token = torch.multinomial(q.exp(), 1, generator=generator).squeeze(-1)
            active = running & (j < budgets) & (starts + j < T.L)
            new[:, j], mask[:, j] = torch.where(active, token, T.EOS), active
            logp[:, j] = z.log_softmax(-1).gather(-1, token[:, None]).squeeze(-1) * active
            logq[:, j] = q.gather(-1, token[:, None]).squeeze(-1) * active
            running = active & (token != T.EOS)
            deeper = running & (starts + j + 1 < T.L)
            prefix = torch.where(deeper, T.child(prefix, token.clamp(max=T.V - 1)), prefix)
        ended = (new == T.EOS).logical_and(mask).any(-1)
        return new, mask, logp, logq, ended

    return extend


def mcmc_distribution(ref, alpha, chains, mcmc_steps, seed=0, length_correction=True):
    """The empirical distribution over the listed responses of `chains` independent MCMC runs (one token a block),
    and the tokens sampled per answer."""
    gen = torch.Generator().manual_seed(seed)
    extend = table_extender(ref, alpha, gen)
    tokens, lengths, _, _, sampled = power_sample(
        extend, chains, alpha, T.L, T.L, mcmc_steps, gen, length_correction=length_correction
    )
    inside = torch.arange(T.L) < lengths[:, None]
    return histogram(tokens.masked_fill(~inside, T.EOS)), sampled / chains


def table_decoder(ref, n):
    """step() of power_smc and scalable_power_sample for the tabular pi_ref: each row's prefix, its logits row."""
    prefix = torch.zeros(n, dtype=torch.long)

    def step(tokens, ancestors):
        nonlocal prefix
        if ancestors is not None:
            prefix = prefix[ancestors]
        if tokens is not None:
            prefix = T.child(prefix, tokens)
        return ref[prefix]

    return step


def smc_distribution(ref, alpha, answers, particles, seed=0):
    """The empirical distribution of `answers` Power-SMC answers, and the tokens sampled per answer."""
    gen = torch.Generator().manual_seed(seed)
    step = table_decoder(ref, answers * particles)
    tokens, inside, _, sampled = power_smc(step, answers, particles, alpha, T.L, torch.tensor([T.EOS]), T.EOS, gen)
    return histogram(tokens.masked_fill(~inside, T.EOS)), sampled / answers


def scalable_distribution(ref, alpha, answers, rollouts, candidates=T.V, seed=0):
    """The empirical distribution of `answers` scalable-power-sampling answers, and the tokens sampled per answer."""
    gen = torch.Generator().manual_seed(seed)
    extend = table_extender(ref, 1.0, gen)  # futures from p itself
    tokens, inside, _, sampled = scalable_power_sample(
        table_decoder(ref, answers), extend, answers, alpha, T.L, candidates, rollouts, torch.tensor([T.EOS]), T.EOS, gen
    )
    return histogram(tokens.masked_fill(~inside, T.EOS)), sampled / answers


def histogram(tokens):
    """Counts of sampled responses [n, L] (EOS-padded) over all_responses()' order, normalised."""
    listed, _ = T.all_responses()
    index = {code: i for i, code in enumerate(T.code(listed).tolist())}
    counts = torch.zeros(len(listed))
    for code, c in zip(*T.code(tokens).unique(return_counts=True)):
        counts[index[int(code)]] += c
    return counts / counts.sum()


def exact_sample_tv(goal, n, seed=0):
    """TV between `goal` and the histogram of n exact draws from it: the floor any sampler of size n sits on."""
    draws = torch.multinomial(goal, n, replacement=True, generator=torch.Generator().manual_seed(seed))
    return T.tv(torch.bincount(draws, minlength=len(goal)).float() / n, goal)


# -----------------------------------------------------------------------------
# the self-rewards on the table: the trainers' functions (rewards.py), with pi_theta's logits z at each prefix


def self_reward(mode, G=8):
    def R(tokens, mask, logits):
        z = logits[T.prefixes(tokens)]  # [N, L, V]
        lengths = mask.sum(-1)
        if mode == "entropy":  # R = -(1/T) sum_t H_t
            return entropy_reward(-(z.softmax(-1) * z.log_softmax(-1)).sum(-1) * mask, lengths)
        if mode == "entropy-seq":  # R = (1/T) sum_t log pi_theta(y_t)
            return logprob_reward(T.token_logp(logits, tokens, mask), lengths)
        if mode == "self-certainty":  # R = (1/T) sum_t [logsumexp(z_t) - mean_j z_tj]
            return self_certainty_reward(self_certainty(z) * mask, lengths)
        if mode == "majority":  # R_i = 1[answer_i = the group's most common answer]
            return majority_vote([last_symbol(text) for text in T.answer(tokens)], G)
        if mode == "random":  # R ~ Bernoulli(0.5)
            return torch.bernoulli(torch.full((len(tokens),), 0.5))
        raise ValueError(mode)

    return R


def last_symbol(text):
    """The toy language's 'final answer': the last symbol before EOS (None for the empty response)."""
    return text[-1] if text else None


def answer_distribution(pi, texts):
    out = {s: 0.0 for s in T.SYMBOLS}
    for p, text in zip(pi.tolist(), texts):
        if text:
            out[text[-1]] += p
    return out


def random_reward_expected_gradient(ref, G=8, seed=0):
    """One group of G samples from pi_ref; the policy gradient for each of the 2^G coin outcomes. Returns the
    norm of their mean (exactly zero up to rounding) and the mean norm of one outcome's gradient."""
    torch.manual_seed(seed)
    tokens, mask = T.sample(ref, G)
    logits = torch.nn.Parameter(ref.clone())
    w = token_weights(mask, "token", mask.sum().item(), G, T.L)
    grads = []
    for coins in itertools.product((0.0, 1.0), repeat=G):
        A = group_advantages(torch.tensor(coins), G)
        (g,) = torch.autograd.grad(policy_loss(T.token_logp(logits, tokens, mask), A, w), logits)
        grads.append(g)
    grads = torch.stack(grads)
    return grads.mean(0).norm().item(), grads.norm(dim=(1, 2)).mean().item()


# -----------------------------------------------------------------------------
# run it all and print


def main():
    t_start = time.time()
    ref, r_table = T.reference(), T.score_table(T.correct_long)
    tokens, mask, ref_logp, length, r = T.space(ref, T.correct_long, False)
    texts = T.answer(tokens)
    answers = 20_000
    print(f"four roads to pi_ref^alpha: TV to pi_ref^alpha of {answers} answers (floor: an exact sample's), cost per answer")
    print(
        "alpha | road                           | budget                    |    TV | floor | E[len] | tokens sampled per answer"
    )
    for alpha in (2.0, 4.0):
        goal = T.power(ref_logp, alpha)
        mh = lambda steps, **kw: mcmc_distribution(ref, alpha, answers, steps, **kw)
        smc = lambda particles: smc_distribution(ref, alpha, answers, particles)
        scalable = lambda rollouts, candidates=T.V: scalable_distribution(ref, alpha, answers, rollouts, candidates)
        exact = lambda pi: (pi, (pi * length).sum().item())  # an exact distribution; one plain response per answer
        trained = T.token_logp(T.train(dict(mode="tempered", alpha=alpha), ref, r_table), tokens, mask).sum(-1).exp()
        rows = [
            ("pi_ref (temperature 1)", "-", exact(ref_logp.exp())),
            ("temperature 1/alpha", "-", exact(T.token_logp(alpha * ref, tokens, mask).sum(-1).exp())),  # zeta dropped
            *(("MH power sampling", f"{s} MH steps a block", mh(s)) for s in (1, 4, 16)),
            ("MH, authors' ratio (no length)", "16 MH steps a block", mh(16, length_correction=False)),
            *(("Power-SMC", f"{n} particles", smc(n)) for n in (1, 4, 16, 64)),
            *(("scalable power sampling", f"4 tokens x {m} futures", scalable(m)) for m in (1, 2, 4, 16)),
            ("scalable power sampling", "top 2 tokens x 16 futures", scalable(16, candidates=2)),
            ("tempered RL (trained)", "200 steps x 1024 samples", exact(trained)),
        ]
        floor = exact_sample_tv(goal, answers)
        for road, budget, (pi, cost) in rows:
            print(
                f"{alpha:5g} | {road:30s} | {budget:25s} | {T.tv(pi, goal):.3f} | {floor:.3f} | {(pi * length).sum():6.3f} | "
                f"{cost:.1f}"
            )
    print(
        f"(target E[len]: {(T.power(ref_logp, 2.0) * length).sum():.3f} at alpha 2, {(T.power(ref_logp, 4.0) * length).sum():.3f} "
        "at alpha 4. MH: 5 blocks of 1 token. Scalable: futures from pi_ref to EOS or L tokens, jackknife-corrected. "
        "Exact rows (pi_ref, temperature 1/alpha, tempered RL) are distributions, not samples: their TV has no floor, "
        "their cost is one response, E[len]; tempered RL's training sampled 204,800 responses besides)"
    )

    p = ref_logp.exp()
    mode = ref_logp.argmax()
    share = answer_distribution(p, texts)
    print(
        f"\nunder pi_ref: top response {texts[mode]!r}+EOS with mass {p[mode]:.3f}, E[len] {(p * length).sum():.3f}, "
        f"acc {(p * r).sum():.3f}; last-symbol shares " + ", ".join(f"{s}: {v:.3f}" for s, v in share.items())
    )
    print(
        "self-reward    | optimum                          | trained: top response, its mass | = pi_ref's mode | "
        "top answer, its mass | TV(trained, pi_ref) | E[len] | acc"
    )
    optima = {
        "entropy": "any point mass (R = 0)",
        "entropy-seq": "any point mass (R = 0)",
        "self-certainty": "none: R -> inf as any p_t -> 0",
        "majority": "any policy with a certain answer",
        "random": "every policy (E[grad] = 0)",
    }
    for mode_name, optimum in optima.items():
        pi = T.token_logp(T.train(self_reward(mode_name), ref, r_table, steps=300), tokens, mask).sum(-1).exp()
        top = pi.argmax()
        answers = answer_distribution(pi, texts)
        best = max(answers, key=answers.get)
        print(
            f"{mode_name:14s} | {optimum:32s} | {texts[top]!r:>24s}  {pi[top]:.3f} | {str(bool(top == mode)):>15s} | "
            f"{best!r} {answers[best]:.3f}{'':11s} | {T.tv(pi, p):19.3f} | {(pi * length).sum():6.3f} | {(pi * r).sum():.3f}"
        )
    mean_norm, one_norm = random_reward_expected_gradient(ref)
    print(
        f"\nrandom reward, one group of 8: |E_coins[gradient]| = {mean_norm:.1e} over all 2^8 coin outcomes "
        f"(one outcome's gradient: {one_norm:.3f})"
    )
    print(f"\n{time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
