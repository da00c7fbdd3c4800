"""
The theory, checked exactly: each reward's optimum on a language small enough to list every response.

The language: responses of at most L = 5 tokens over {a, b, c, EOS}. A response ends at its first EOS or
is cut off after L tokens, as `max_new_tokens` cuts a rollout. That gives 1 + 3 + 9 + 27 + 81 = 121
responses that end in EOS and 3^5 = 243 that are cut off, 364 in all. A cut-off response stands for all
of its continuations, so the probabilities of the 364 sum to exactly 1 (checked below). We write
log pi(y) = sum_t log pi(y_t | y_<t), EOS included. len(y) counts the tokens generated, EOS included: it is
the trainers' `lengths`.

The policy is a table of next-token logits with one row per prefix: the tabular version of a language
model. It starts at the reference pi_ref and is trained the way train_sharpen.py and train_task.py train:
 - sample groups of G responses to the one prompt;
 - score them with the repo's `sequence_reward`;
 - turn the scores into leave-one-out advantages;
 - take an Adam step on the token-level `policy_loss`.
No gradient is computed exactly: every step uses samples only. The optimum of each regime is then found
by enumeration (the paper's section 2.3):

    tempered   R = alpha log pi_ref - log pi_theta                pi* ∝ pi_ref^alpha
    tempered, length-normalised ("mean", the authors' transform):
               R = (alpha - 1) log pi_ref / L + log pi_ref - log pi_theta      pi* ∝ pi_ref^(1 + (alpha - 1)/L)
    KL-reg.    R = log pi_ref - beta (log pi_theta - log pi_ref)  pi* ∝ pi_ref^(1 + 1/beta)
    tilted     R = r + (alpha log pi_ref - log pi_theta) / b      pi* ∝ pi_ref^alpha exp(b r)
    sharpen    R = log pi_ref                                     pi* = point mass on argmax_y pi_ref(y)
    task       R = r                                              pi* = any policy with pi*(r = 1) = 1

Each optimum is compared with the trained policy by three measures: total variation
TV(p, q) = 1/2 sum_y |p(y) - q(y)|, expected length, and accuracy. Three exact checks follow, with no
training: the short-response bias of pi_ref^alpha, the fixed-length control (EOS ignored), and the
covariance condition under which sharpening raises accuracy, d/dalpha E_{pi_ref^alpha}[r] = Cov_{pi_ref^alpha}(r,
log pi_ref), checked numerically (a finite difference, and the integral from 1 to alpha by quadrature).

    python theory.py          # about 15 s on one CPU core
"""

import itertools
import time

import numpy as np
import torch

from loss import group_advantages, policy_loss, token_weights
from rewards import normalized_likelihood, sequence_reward

# -----------------------------------------------------------------------------
# the language: every response, and the prefix tree the tabular policy lives on

SYMBOLS, EOS, V, L = "abc", 3, 4, 5  # tokens 0, 1, 2 are a, b, c; token 3 is EOS
N_PREFIXES = (V**L - 1) // (V - 1)  # every token string shorter than L, EOS inside too (fixed length needs them)


def child(prefix, token):
    return V * prefix + token + 1  # prefixes numbered breadth-first; the empty prefix is 0


def prefix_depths():
    depth = torch.zeros(N_PREFIXES, dtype=torch.long)
    for p in range(1, N_PREFIXES):
        depth[p] = depth[(p - 1) // V] + 1
    return depth


def all_responses(fixed_length=False):
    """Every response: tokens [S, L] and the response mask [S, L] (EOS included; padded with EOS)."""
    tokens = torch.tensor(list(itertools.product(range(V), repeat=L)))
    if fixed_length:  # EOS is sampled like any token but does not stop: the paper's `ignore_eos` control
        return tokens, torch.ones_like(tokens, dtype=torch.bool)
    is_eos = tokens == EOS
    mask = (is_eos.long().cumsum(1) - is_eos.long()) == 0  # up to and including the first EOS
    canonical = (is_eos | mask).all(1)  # one spelling per response: only EOS after its end
    return tokens[canonical], mask[canonical]


def prefixes(tokens):
    """The prefix each token of tokens [N, L] is drawn at: [N, L] rows of a logits table."""
    prefix = torch.zeros_like(tokens)
    for t in range(1, L):
        prefix[:, t] = child(prefix[:, t - 1], tokens[:, t - 1])
    return prefix


def token_logp(logits, tokens, mask):
    """log pi(y_t | y_<t) [N, L] under a logits table [N_PREFIXES, V], zero outside the response."""
    return logits[prefixes(tokens)].log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1) * mask


def answer(tokens):
    """The text a grader reads: the symbols before the first EOS."""
    return ["".join(SYMBOLS[x] for x in itertools.takewhile(lambda x: x != EOS, row)) for row in tokens.tolist()]


def code(tokens):
    """A token string as one integer in base V: the row of r(y) in a score table."""
    return (tokens * V ** torch.arange(L - 1, -1, -1)).sum(-1)


# -----------------------------------------------------------------------------
# the reference (confident early, unsure later) and the correctness sets


def reference(seed=0, sharpness=(3.0, 2.0, 1.0, 0.5, 0.25), p_eos=(0.05, 0.3, 0.3, 0.3, 0.3)):
    """
    At a prefix of depth d: EOS with probability p_eos[d], else a symbol from softmax(sharpness[d] * z),
    with z ~ N(0, 1) drawn per prefix. The falling sharpness makes per-token entropy rise, so each extra
    token costs more log-likelihood the later it comes. That is the setting where the paper's
    short-response bias shows.
    """
    g = torch.Generator().manual_seed(seed)
    depth = prefix_depths()
    symbols = (torch.randn(N_PREFIXES, V - 1, generator=g) * torch.tensor(sharpness)[depth, None]).softmax(-1)
    eos = torch.tensor(p_eos)[depth, None]
    return torch.cat([(1 - eos) * symbols, eos], 1).log()  # log-probs are valid logits


def correct_long(text):
    """The task's 'needs reasoning' set: at least three symbols, ending in 'a'. Likelihood disagrees with it."""
    return len(text) >= 3 and text.endswith("a")


def correct_likely(texts, ref_logp, k=8):
    """The k most likely responses under pi_ref: a set that likelihood agrees with."""
    top = {texts[i] for i in ref_logp.topk(k).indices.tolist()}
    return lambda text: text in top


def scores(texts, rule):
    return torch.tensor([float(rule(t)) for t in texts])


def score_table(rule):
    """r(y) in {0, 1} for all V^L token strings, indexed by `code`, so sampled responses are graded fast."""
    return scores(answer(torch.tensor(list(itertools.product(range(V), repeat=L)))), rule)


# -----------------------------------------------------------------------------
# closed forms, by enumeration


def power(ref_logp, alpha):
    return (alpha * ref_logp).softmax(0)  # pi_ref^alpha / Z_alpha


def tilted(ref_logp, r, alpha, b, norm_ref=None):
    """pi* ∝ pi_ref exp((alpha - 1) norm_ref + b r): the optimum of E_pi[b r + (alpha - 1) norm_ref + log pi_ref
    - log pi], which is b times the tilted reward (tempered: b r = 0). norm_ref = log pi_ref (the default, "sum")
    gives pi_ref^alpha exp(b r); the length-normalised norm_ref = log pi_ref / L gives pi_ref^(1 + (alpha - 1)/L)."""
    norm_ref = ref_logp if norm_ref is None else norm_ref
    return (ref_logp + (alpha - 1) * norm_ref + b * r).softmax(0)


def point_mass(ref_logp):
    return torch.nn.functional.one_hot(ref_logp.argmax(), len(ref_logp)).float()  # y* = argmax_y pi_ref(y)


def tv(p, q):
    return 0.5 * (p - q).abs().sum().item()


def covariance(p, x, y):
    return (p * x * y).sum().item() - (p * x).sum().item() * (p * y).sum().item()  # Cov_p(x, y)


def power_accuracy(ref_logp, r, alpha):
    return (power(ref_logp, alpha) * r).sum().item()  # E_{pi_ref^alpha}[r]


IDENTITY_ALPHAS = (0.5, 1, 1.25, 2, 4, 8)  # the paper grid's tempered alphas, and 8


def covariance_identity(ref_logp, r, alpha, h=1e-4, nodes=32):
    """
    d/dalpha E_{pi_alpha}[r] = Cov_{pi_alpha}(r, log pi_ref), pi_alpha ∝ pi_ref^alpha, checked at one alpha in float64:
    (the central difference [E_{alpha+h}[r] - E_{alpha-h}[r]] / 2h, error O(h^2); the covariance; its integral
    int_1^alpha Cov_{pi_s}(r, log pi_ref) ds by Gauss-Legendre quadrature on `nodes` nodes; the accuracy change
    E_alpha[r] - E_1[r], which the integral must equal).
    """
    ref_logp, r = ref_logp.double(), r.double()
    slope = (power_accuracy(ref_logp, r, alpha + h) - power_accuracy(ref_logp, r, alpha - h)) / (2 * h)
    x, w = np.polynomial.legendre.leggauss(nodes)  # nodes and weights on [-1, 1]
    s = 1 + (alpha - 1) * (x + 1) / 2  # mapped onto [1, alpha]: ds = (alpha - 1) / 2 dx
    integral = (alpha - 1) / 2 * sum(wi * covariance(power(ref_logp, si), r, ref_logp) for si, wi in zip(s, w)) + 0.0  # not -0
    change = power_accuracy(ref_logp, r, alpha) - power_accuracy(ref_logp, r, 1.0)
    return slope, covariance(power(ref_logp, alpha), r, ref_logp), integral, change


# -----------------------------------------------------------------------------
# training: sampled groups through the repo's reward and loss, like the trainers


def sample(logits, n, fixed_length=False):
    """Draw n responses token by token from the table, as rollout.py does (EOS stops unless fixed_length)."""
    tokens = torch.full((n, L), EOS)
    mask = torch.zeros((n, L), dtype=torch.bool)
    prefix, done = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.bool)
    for t in range(L):
        token = torch.multinomial(logits[prefix].softmax(-1), 1).squeeze(1)
        tokens[:, t], mask[:, t] = token.masked_fill(done, EOS), ~done
        done = done | ((token == EOS) & (not fixed_length))
        if t < L - 1:
            prefix = child(prefix, tokens[:, t])
    return tokens, mask


def reward(regime, r, ref_logp, logp, lengths):
    """A regime's per-sequence reward, built with rewards.sequence_reward."""
    if "beta" in regime:
        # KL-regularised RL on the reward log pi_ref, with coefficient beta and reference pi_ref:
        #   R = log pi_ref - beta (log pi_theta - log pi_ref) = beta ((1 + 1/beta) log pi_ref - log pi_theta).
        # That is beta times the tempered reward with alpha' = 1 + 1/beta. A positive factor on the
        # reward does not move the optimum: pi* ∝ pi_ref exp(log pi_ref / beta) = pi_ref^(1 + 1/beta).
        beta = regime["beta"]
        return beta * sequence_reward("tempered", r, ref_logp, logp, lengths, alpha=1 + 1 / beta)
    alpha, b, normalization = regime.get("alpha", 1.0), regime.get("b", 1.0), regime.get("normalization", "sum")
    return sequence_reward(regime["mode"], r, ref_logp, logp, lengths, alpha, b, normalization)


def train(regime, ref, r_table, steps=200, groups=128, G=8, lr=0.1, seed=0, fixed_length=False):
    """Start at pi_ref. Each step: one batch of `groups` groups of G samples, then one Adam step. `regime` is a
    dict of sequence_reward settings, or a function (tokens, mask, logits table) -> R."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small: extra threads only add waiting (10x slower on a busy CPU)
    torch.manual_seed(seed)
    logits = torch.nn.Parameter(ref.clone())
    opt = torch.optim.Adam([logits], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)  # linear decay to 0
    for _ in range(steps):
        tokens, mask = sample(logits.detach(), groups * G, fixed_length)
        logp = token_logp(logits, tokens, mask)  # [N, L], with grad
        with torch.no_grad():
            ref_logp = token_logp(ref, tokens, mask).sum(-1)  # log pi_ref(y), EOS included
            r = r_table[code(tokens)]  # r(y) in {0, 1}
            if callable(regime):  # theory_family.py's self-rewards read the samples and the policy's table
                R = regime(tokens, mask, logits.detach())
            else:
                R = reward(regime, r, ref_logp, logp.detach().sum(-1), mask.sum(-1))  # log pi_theta(y) detached
        # At the tempered or tilted optimum, every response gets the same R (log Z, or log Z / b). At the
        # point mass, every sample is the same response. Either way the advantages vanish, so the optimum
        # is a fixed point of the sampled update itself, whatever the batch size or aggregation.
        A = group_advantages(R, G)  # A_i = R_i - mean_{j != i} R_j
        w = token_weights(mask, "token", mask.sum().item(), len(mask), L)  # 1 / (tokens in the batch)
        loss = policy_loss(logp, A, w)  # -sum_it w_it A_i log pi_theta(y_it)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    torch.set_num_threads(threads)
    return logits.detach()


# -----------------------------------------------------------------------------
# the regimes: (name, target label, reward settings, EOS ignored?, training steps)

BETA = 0.5  # the KL regime's coefficient: its optimum is pi_ref^(1 + 1/0.5) = pi_ref^3
REGIMES = [
    ("tempered a=0.5", "pi_ref^0.5", dict(mode="tempered", alpha=0.5), False, 200),
    ("tempered a=1", "pi_ref", dict(mode="tempered", alpha=1.0), False, 50),  # starts at its optimum
    ("tempered a=2", "pi_ref^2", dict(mode="tempered", alpha=2.0), False, 200),
    ("tempered a=4", "pi_ref^4", dict(mode="tempered", alpha=4.0), False, 200),
    ("tempered a=4 mean", "pi_ref^(1+3/L)", dict(mode="tempered", alpha=4.0, normalization="mean"), False, 200),
    ("KL beta=0.5", "pi_ref^3", dict(mode="tempered", beta=BETA), False, 200),
    ("tilted a=1 b=2", "pi_ref e^(2r)", dict(mode="tilted", alpha=1.0, b=2.0), False, 200),
    ("tilted a=4 b=2 mean", "pi_ref^(1+3/L) e^2r", dict(mode="tilted", alpha=4.0, b=2.0, normalization="mean"), False, 200),
    ("sharpen", "argmax pi_ref", dict(mode="sharpen", alpha=1.0), False, 300),  # a point mass: slower to reach
    ("sharpen, fixed L", "argmax pi_ref", dict(mode="sharpen", alpha=1.0), True, 300),  # EOS ignored
    ("task", "r = 1", dict(mode="task"), False, 200),
]


def target(regime, ref_logp, r, length=None):
    """The closed-form optimum over the listed responses; None for the task reward, whose optimum is a set.
    `length` (len(y), EOS included) is needed only under a length normalisation."""
    if regime["mode"] == "task":
        return None
    norm_ref = normalized_likelihood(ref_logp, length, regime.get("normalization", "sum"))
    if regime["mode"] == "sharpen":
        return point_mass(norm_ref)
    alpha = 1 + 1 / regime["beta"] if "beta" in regime else regime["alpha"]
    return tilted(ref_logp, r, alpha, regime["b"] if regime["mode"] == "tilted" else 0.0, norm_ref)


def distance(pi, goal, r):
    """TV(pi, goal). For a set {r = 1}, TV to the nearest policy on it: the mass outside it, 1 - accuracy."""
    return (pi * (1 - r)).sum().item() if goal is None else tv(pi, goal)


def space(ref, rule, fixed_length):
    """Responses, log pi_ref, len and r over one response space (EOS stops, or EOS ignored)."""
    tokens, mask = all_responses(fixed_length)
    return tokens, mask, token_logp(ref, tokens, mask).sum(-1), mask.sum(-1).float(), scores(answer(tokens), rule)


# -----------------------------------------------------------------------------
# run it all and print


def main():
    t_start = time.time()
    ref, r_table = reference(), score_table(correct_long)
    tokens, mask, ref_logp, length, r = space(ref, correct_long, False)
    p = ref_logp.exp()
    print(
        f"{len(p)} responses, sum of pi_ref = {p.sum():.6f}; under pi_ref: E[len] = {(p * length).sum():.3f}, "
        f"accuracy = {(p * r).sum():.3f}; mode {answer(tokens)[ref_logp.argmax()]!r}+EOS"
    )

    print(
        "\nregime              | target              | TV(ref, target) | TV(trained, target) | E[len] target | E[len] trained "
        "| acc target | acc trained"
    )
    for name, label, regime, fixed, steps in REGIMES:
        tok, msk, lp, ln, rr = space(ref, correct_long, fixed)
        goal = target(regime, lp, rr, ln)
        pi = token_logp(train(regime, ref, r_table, steps=steps, fixed_length=fixed), tok, msk).sum(-1).exp()
        goal_len, goal_acc = ("any", "1.000") if goal is None else (f"{(goal * ln).sum():.3f}", f"{(goal * rr).sum():.3f}")
        print(
            f"{name:19s} | {label:19s} | {distance(lp.exp(), goal, rr):15.3f} | {distance(pi, goal, rr):19.4f} | "
            f"{goal_len:>13s} | {(pi * ln).sum():14.3f} | {goal_acc:>10s} | {(pi * rr).sum():11.3f}"
        )

    # --- the short-response bias: pi_ref^a(y1) / pi_ref^a(y2) = exp(a (log pi_ref(y1) - log pi_ref(y2))).
    # Every token adds a negative log-prob, so a larger alpha favours shorter responses more and more.
    # With EOS ignored, every response has L tokens, so that channel is closed.
    _, _, fref_logp, flength, _ = space(ref, correct_long, True)
    print("\nalpha | E[len] under pi_ref^alpha, EOS stops | E[len] under pi_ref^alpha, EOS ignored (fixed length)")
    for alpha in (0.25, 0.5, 1, 2, 4, 8):
        print(f"{alpha:5g} | {(power(ref_logp, alpha) * length).sum():36.3f} | {(power(fref_logp, alpha) * flength).sum():.3f}")
    ftokens, _ = all_responses(fixed_length=True)
    m, fm = ref_logp.argmax(), fref_logp.argmax()
    spelled = "".join((SYMBOLS + "_")[x] for x in ftokens[fm].tolist())
    print(
        f"sharpening's pick, EOS stops:   {answer(tokens)[m]!r}+EOS: len {length[m]:.0f} (E[len] under pi_ref: {(p * length).sum():.3f}), "
        f"pi_ref(y*) = {p[m]:.3f}"
    )
    # With EOS ignored, the mode is the string whose tokens are jointly most confident. Whether its answer
    # (the text before the first EOS) is correct depends on this reference, not on anything general.
    print(
        f"sharpening's pick, EOS ignored: {spelled!r} (_ = EOS): len {flength[fm]:.0f}, answer {answer(ftokens)[fm]!r}, "
        f"pi_ref(y*) = {fref_logp[fm].exp():.3f}"
    )

    # --- what a length normalisation trains toward. The authors normalise only the extra power: R = (alpha - 1)
    # norm_ref + log pi_ref - log pi_theta, so the optimum is pi_ref^(1 + (alpha - 1)/L) under "mean" (and
    # pi_ref^(1 + (alpha - 1)/L^w) under "power"): a power that fades with length. Sharpening's bias toward short
    # responses shrinks; with EOS ignored (every L equal) "mean" is pi_ref^alpha again, at a rescaled power.
    print("\nthe tempered optimum under each --normalization (power: w = 0.5)")
    print("alpha | E[len]: sum   mean  power | accuracy: sum   mean  power")
    for alpha in (0.5, 2, 4, 8):
        goals = [
            target(dict(mode="tempered", alpha=alpha, normalization=n), ref_logp, r, length) for n in ("sum", "mean", "power")
        ]
        lens, accs = [f"{(q * length).sum():6.3f}" for q in goals], [f"{(q * r).sum():6.3f}" for q in goals]
        print(f"{alpha:5g} | {' '.join(lens):>25s} | {' '.join(accs):>26s}")

    # --- the covariance condition: d/dalpha E_{pi_ref^alpha}[r] = Cov_{pi_ref^alpha}(r, log pi_ref).
    # (Differentiate pi_alpha(y) = exp(alpha log pi_ref(y)) / Z_alpha: d log pi_alpha(y) / dalpha =
    # log pi_ref(y) - E_alpha[log pi_ref], since d log Z_alpha / dalpha = E_alpha[log pi_ref].)
    # Sharpening (alpha -> infinity) helps when correctness and likelihood go together (Cov > 0) and hurts
    # when they go against each other (Cov < 0).
    print("\ncorrect set     | Cov_ref(r, log pi_ref) | acc pi_ref | acc pi_ref^2 | acc pi_ref^4 | acc sharpened")
    for name, rule in (("likely (top 8)", correct_likely(answer(tokens), ref_logp)), ("long, ends in a", correct_long)):
        rr = scores(answer(tokens), rule)
        accs = [(q * rr).sum().item() for q in (p, power(ref_logp, 2), power(ref_logp, 4), point_mass(ref_logp))]
        print(
            f"{name:15s} | {covariance(p, rr, ref_logp):22.3f} | {accs[0]:10.3f} | {accs[1]:12.3f} | {accs[2]:12.3f} | "
            f"{accs[3]:13.3f}"
        )
    # The identity, numerically: the slope against the covariance, and its integral against the accuracy change.
    # At alpha = 1 the covariance is evaluate.py's cov_r_logp, measured on a model's own samples.
    print(
        "\ncorrect set     | alpha | dE/dalpha (finite diff.) | Cov_alpha(r, log pi_ref) | int_1^alpha Cov ds | E_alpha[r] - E_1[r]"
    )
    for name, rule in (("likely (top 8)", correct_likely(answer(tokens), ref_logp)), ("long, ends in a", correct_long)):
        rr = scores(answer(tokens), rule)
        for alpha in IDENTITY_ALPHAS:
            slope, cov, integral, change = covariance_identity(ref_logp, rr, alpha)
            print(f"{name:15s} | {alpha:5g} | {slope:24.9f} | {cov:24.9f} | {integral:18.12f} | {change:19.12f}")
    print(f"\n{time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
