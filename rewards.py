"""
Rewards: the task check r(x, y) in {0, 1}, and the paper's four per-sequence rewards built from it.

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

The trainers write these formulas as code, in the lines where they differ (`diff train_sharpen.py
train_task.py`); `sequence_reward` is the paper's four in one function, for theory.py and the tests.

Length normalisation of the likelihood term (the authors' `normalization`, one named call:
`normalized_likelihood`): "sum" is the paper's default and the one that prefers short responses (every
token adds a negative log-prob); "mean" divides by the length L; "power" divides by L^w. Only the
alpha-scaled log pi_ref term is normalised (the authors' choice); -log pi_theta never is.
"""

from collections import Counter

import torch

import toytask
from options import is_toy

MODES = ("task", "sharpen", "tempered", "tilted")
NORMALIZATIONS = ("sum", "mean", "power")


def normalized_likelihood(logp_ref, lengths, normalization="sum", length_power=0.5):
    if normalization == "sum":
        return logp_ref  # log pi_ref(y|x)
    if normalization == "mean":
        return logp_ref / lengths  # log pi_ref(y|x) / L
    if normalization == "power":
        return logp_ref / lengths**length_power  # log pi_ref(y|x) / L^w
    raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")


def sequence_reward(mode, r, logp_ref, logp_pi, lengths, alpha=1.0, b=1.0, normalization="sum", length_power=0.5):
    """All arguments are per-sequence tensors [N] (logp_* summed over the response). Returns R [N]."""
    ref = normalized_likelihood(logp_ref, lengths.float(), normalization, length_power)
    if mode == "task":
        return r  # R = r
    if mode == "sharpen":
        return alpha * ref  # R = alpha * log pi_ref
    if mode == "tempered":
        return alpha * ref - logp_pi  # R = alpha * log pi_ref - log pi_theta
    if mode == "tilted":
        return r + (alpha * ref - logp_pi) / b  # R = r + (alpha * log pi_ref - log pi_theta) / b
    raise ValueError(f"unknown reward mode {mode!r}; expected one of {MODES}")


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
            import grader  # sympy is imported only when real math is graded

            if backend not in grader.GRADERS:
                raise SystemExit(f"unknown grader {backend!r}; expected one of {grader.GRADERS}")
            self.math, self.backend = grader, backend

    def check(self, response, gold):
        if self.toy:
            return toytask.grade(response, gold), toytask.extract_answer(response)
        return self.math.grade_and_answer(response, gold, backend=self.backend)
