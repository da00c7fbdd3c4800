"""
Rewards: the task check r(x, y) in {0, 1}, the paper's four per-sequence rewards (task and tilted read r;
sharpening and tempered only log-likelihoods), and the sharpening family's self-rewards.

With y a whole response (EOS included), log pi(y|x) = sum_t log pi(y_t | x, y_<t), pi_ref the frozen base
model, alpha the power and b = 1/beta the inverse KL strength:

    task        R = r                                        optimum: any policy that is always right
    sharpen     R = alpha * log pi_ref(y|x)                   optimum: the base model's mode, argmax_y pi_ref
    tempered    R = alpha * log pi_ref - log pi_theta         optimum: pi ∝ pi_ref^alpha
    tilted      R = r + (alpha * log pi_ref - log pi_theta)/b optimum: pi ∝ pi_ref^alpha * exp(b * r)

Why the last two have those optima: E_pi[alpha log pi_ref - log pi] = -KL(pi || pi_ref^alpha / Z) + log Z,
which is maximal exactly at pi = pi_ref^alpha / Z. The log pi_theta term is the (sequence-level, k1) KL or
entropy term inside the reward; it is treated as a constant reward (detached), like the authors' code.

The rest of the sharpening family, other self-rewards that read no gold answer (train_sharpen.py), and the
control everyone runs (train_task.py). T is the response length, H_t the entropy of pi_theta at step t, z_t
its logits over a vocabulary of V tokens:

    entropy         R = -(1/T) sum_t H_t                          entropy minimisation, token form (RENT, EM-RL)
    entropy-seq     R = (1/T) sum_t log pi_theta(y_t)             entropy minimisation, sequence form (EM-RL)
    self-certainty  R = (1/T) sum_t [logsumexp(z_t) - mean_j z_tj]  INTUITOR: KL(uniform || pi_theta) + log V
    majority        R_i = 1[answer_i = the group's most common answer]  TTRL: a vote stands in for the gold
    random          R ~ Bernoulli(0.5)                            the spurious-reward control (train_task.py)

Every formula lives here once, one small function each (but the random reward's coin flip, one line of
train_task.py), and the trainers call them in their reward lines (`diff train_sharpen.py train_task.py` shows
which); theory.py and the tests call the same functions.

Length normalisation, exactly as the authors' `DistSharpeningReward` does it. With ref_sum = log pi_ref(y|x)
and L = len(y), norm_ref is ref_sum ("sum", the paper's default and every run it reports), ref_sum / L
("mean") or ref_sum / L^w ("power"; the authors' `weighted_mean`). Only the *extra* power is normalised:

    sharpen     R = alpha * norm_ref
    tempered    R = (alpha - 1) * norm_ref + (ref_sum - log pi_theta)
    tilted      R = r + ((alpha - 1) * norm_ref + (ref_sum - log pi_theta)) / b

Under "sum" these are the formulas above. Under "mean" the tempered optimum is no longer pi_ref^alpha but
pi* ∝ pi_ref(y)^(1 + (alpha - 1)/L(y)): a power that fades with length (theory.py enumerates it).
"""

from collections import Counter

import torch

from tasks import toytask
from tasks.toytask import is_toy

MODES = ("task", "sharpen", "tempered", "tilted")
NORMALIZATIONS = ("sum", "mean", "power")


def normalized_likelihood(ref_sum, lengths, normalization="sum", length_power=0.5):
    """norm_ref: log pi_ref(y|x) [N] as the sum, or divided by the length L [N] or by L^w."""
    if normalization == "sum":
        return ref_sum  # log pi_ref(y|x)
    if normalization == "mean":
        return ref_sum / lengths  # log pi_ref(y|x) / L
    if normalization == "power":
        return ref_sum / lengths**length_power  # log pi_ref(y|x) / L^w
    raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")


# -----------------------------------------------------------------------------
# the paper's rewards: per-sequence tensors [N]; policy_sum = log pi_theta(y|x), detached (a constant reward)


def sharpening_reward(norm_ref, alpha):
    return alpha * norm_ref  # R = alpha * log pi_ref(y|x)


def tempered_reward(norm_ref, ref_sum, policy_sum, alpha):
    return (alpha - 1) * norm_ref + (ref_sum - policy_sum)  # R = alpha * log pi_ref - log pi_theta (under "sum")


def tilted_reward(r, norm_ref, ref_sum, policy_sum, alpha, b):
    return r + tempered_reward(norm_ref, ref_sum, policy_sum, alpha) / b  # R = r + (alpha log pi_ref - log pi_theta) / b


def sequence_reward(mode, r, ref_sum, policy_sum, lengths, alpha=1.0, b=1.0, normalization="sum", length_power=0.5):
    """The paper's four regimes by name (theory.py's switch): the functions above, from ref_sum and L."""
    norm_ref = normalized_likelihood(ref_sum, lengths.float(), normalization, length_power)
    if mode == "task":
        return r  # R = r
    if mode == "sharpen":
        return sharpening_reward(norm_ref, alpha)
    if mode == "tempered":
        return tempered_reward(norm_ref, ref_sum, policy_sum, alpha)
    if mode == "tilted":
        return tilted_reward(r, norm_ref, ref_sum, policy_sum, alpha, b)
    raise ValueError(f"unknown reward mode {mode!r}; expected one of {MODES}")


# -----------------------------------------------------------------------------
# the family's self-rewards, per sequence [N]: three from per-token tensors [N, T] (zero past each response of
# length T = lengths [N]), the majority vote from the group's answers


def entropy_reward(entropy, lengths):
    return -entropy.sum(-1) / lengths  # R = -(1/T) sum_t H_t


def logprob_reward(logp, lengths):
    return logp.sum(-1) / lengths  # R = (1/T) sum_t log pi_theta(y_t)


def self_certainty_reward(certainty, lengths):
    return certainty.sum(-1) / lengths  # R = (1/T) sum_t [logsumexp(z_t) - mean_j z_tj]


def majority_vote(answers, group_size):
    """R_i = 1[answer_i = the most common answer of its group] (TTRL), as a float tensor [N] for answers listed
    group by group. No gold answer is read. A response without an answer (None) casts no vote and gets 0; a
    tie goes to the answer given first, so the reward never depends on anything but the group's answers."""
    R = []
    for g in range(0, len(answers), group_size):
        group = answers[g : g + group_size]
        votes = Counter(a for a in group if a is not None)
        top = max(votes.values(), default=0)
        winner = next((a for a in group if a is not None and votes[a] == top), None)
        R += [float(a is not None and a == winner) for a in group]
    return torch.tensor(R)


# -----------------------------------------------------------------------------
# the task check: one grader per dataset, shared by training and evaluation


class TaskGrader:
    """check(response, gold) -> (r in {0, 1}, the answer the response commits to, canonicalised so that equal
    answers share it (for majority voting), or None when it gives none)."""

    def __init__(self, dataset, backend="builtin"):
        self.toy = is_toy(dataset)
        if not self.toy:
            from tasks import grader  # sympy is imported only when real math is graded

            if backend not in grader.GRADERS:
                raise SystemExit(f"unknown grader {backend!r}; expected one of {grader.GRADERS}")
            self.math, self.backend = grader, backend

    def check(self, response, gold):
        if self.toy:
            return toytask.grade(response, gold), toytask.extract_answer(response)
        return self.math.grade_and_answer(response, gold, backend=self.backend)

    def grade(self, responses, golds, device=None):
        """r [N] in {0, 1} (a tensor on `device`) and the answers, for N responses against their golds."""
        checks = [self.check(response, gold) for response, gold in zip(responses, golds, strict=True)]
        return torch.tensor([r for r, _ in checks], device=device), [answer for _, answer in checks]
