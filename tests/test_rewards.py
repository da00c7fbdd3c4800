"""The paper's four rewards against the authors' own transform, through the lines the trainers run.

The reference is `DistSharpeningReward` in the authors' NeMo-RL fork (nemo_rl/algorithms/rloo.py), written out
below element by element in plain Python, as it computes: knobs alpha, beta_inv = b and mode in
{optimization, sampling}; ref_sum = log pi_ref(y|x), policy_sum = log pi_theta(y|x), L = len(y); norm_ref =
ref_sum, ref_sum / L or ref_sum / L^w. The repo's regimes are its flags (paper-notes §2.3): task = optimization
alpha 0 b 1, sharpen = optimization b 0, tempered = sampling b 0, tilted = sampling b > 0. Nothing here calls
the repo's formulas to get an expected value.
"""

import math
import random
from types import SimpleNamespace

import pytest
import torch

import rewards
from conftest import trainer_reward
from rewards import TaskGrader, sequence_reward
from tasks import toytask


def dist_sharpening_reward(r, ref_sum, policy_sum, L, alpha, beta_inv, mode, normalization, weight):
    """The authors' per-sequence reward, one response at a time (their names)."""
    if normalization == "sum":
        norm_ref = ref_sum
    elif normalization == "mean":
        norm_ref = ref_sum / L
    else:  # the authors' "weighted_mean"; the repo's --normalization power with --length-power w
        norm_ref = ref_sum / L**weight
    if mode == "optimization":
        return alpha * norm_ref if beta_inv == 0 else r + (alpha / beta_inv) * norm_ref
    if beta_inv == 0:  # sampling: only the extra power (alpha - 1) is normalised
        return (alpha - 1) * norm_ref + (ref_sum - policy_sum)
    return r + ((alpha - 1) / beta_inv) * norm_ref + (1 / beta_inv) * (ref_sum - policy_sum)


# (script, --mode, the authors' flags for it: alpha, beta_inv, mode); alpha None = the run's --alpha
REGIMES = [
    ("train_task.py", "task", 0.0, 1.0, "optimization"),
    ("train_sharpen.py", "sharpen", None, 0.0, "optimization"),
    ("train_sharpen.py", "tempered", None, 0.0, "sampling"),
    ("train_task.py", "tilted", None, "b", "sampling"),
]
NORMALIZATIONS = [("sum", 0.5), ("mean", 0.5), ("power", 0.5), ("power", 0.3), ("power", 1.7)]


def random_rollout(seed, N=16, T=12):
    """Token log-probs [N, T] under pi_ref and pi_theta, zero past each response, lengths 1..T, r in {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    inside = torch.arange(T)[None] < lengths[:, None]
    ref_logp = -3 * torch.rand(N, T, generator=g) * inside
    logp = -3 * torch.rand(N, T, generator=g) * inside
    r = torch.randint(0, 2, (N,), generator=g).float()
    return ref_logp, logp, lengths, r


@pytest.mark.parametrize("normalization,w", NORMALIZATIONS, ids=[f"{n}-{w}" for n, w in NORMALIZATIONS])
@pytest.mark.parametrize("script,mode,alpha_flag,b_flag,flag_mode", REGIMES, ids=[m for _, m, *_ in REGIMES])
def test_the_trainers_reward_lines_equal_the_authors_transform(script, mode, alpha_flag, b_flag, flag_mode, normalization, w):
    for seed, (alpha, b) in enumerate([(4.0, 100.0), (0.5, 1e4), (1.25, 2.0), (2.0, 1.0)]):
        ref_logp, logp, lengths, r = random_rollout(seed)
        args = dict(alpha=alpha, b=b, normalization=normalization, length_power=w)
        # the rollout's own log-probs are another distribution's (a top-k or temperature rollout): the reward reads logp
        roll = SimpleNamespace(lengths=lengths, logprobs=logp - 0.5 * (logp != 0), entropy=None, certainty=None)
        R = trainer_reward(script, mode, args, ref_logp=ref_logp, logp=logp, roll=roll, r=r)
        flags = dict(alpha=alpha if alpha_flag is None else alpha_flag, beta_inv=b if b_flag == "b" else b_flag, mode=flag_mode)
        expected = [
            dist_sharpening_reward(
                r[i].item(),
                ref_logp[i].sum().item(),
                logp[i].sum().item(),
                lengths[i].item(),
                **flags,
                normalization=normalization,
                weight=w,
            )  # fmt: skip
            for i in range(len(r))
        ]
        torch.testing.assert_close(
            R,
            torch.tensor(expected),
            rtol=0,
            atol=1e-5,
            msg=lambda m: (
                f"{mode} under {normalization} (alpha {alpha}, b {b}) differs from the authors' transform: "
                "only the extra power (alpha - 1) multiplies norm_ref; ref_sum - policy_sum is never normalised; in tilted, "
                f"the whole bracket is divided by b, r is not\n{m}"
            ),
        )


# One response by hand: log pi_ref(y) = -6 over L = 3 tokens, log pi_theta(y) = -4, r = 1; alpha = 4, b = 10.
HAND = dict(r=torch.tensor([1.0]), ref_sum=torch.tensor([-6.0]), policy_sum=torch.tensor([-4.0]), lengths=torch.tensor([3]))
BY_HAND = [
    # mode, normalization, R
    ("sharpen", "sum", 4 * -6.0),  # alpha * ref_sum = -24
    ("sharpen", "mean", 4 * -2.0),  # alpha * ref_sum / L = -8
    ("sharpen", "power", 4 * -6.0 / math.sqrt(3)),  # alpha * ref_sum / sqrt(L) = -13.856
    ("tempered", "sum", 4 * -6.0 + 4.0),  # alpha * ref_sum - policy_sum = -20
    ("tempered", "mean", 3 * -2.0 + (-6.0 + 4.0)),  # (alpha - 1) ref_sum / L + ref_sum - policy_sum = -8, not -4
    ("tempered", "power", 3 * -6.0 / math.sqrt(3) - 2.0),  # -12.392
    ("tilted", "sum", 1 + (-24.0 + 4.0) / 10),  # r + (alpha ref_sum - policy_sum) / b = -1
    ("tilted", "mean", 1 + (-6.0 - 2.0) / 10),  # 0.2
    ("task", "mean", 1.0),
]


@pytest.mark.parametrize("mode,normalization,expected", BY_HAND, ids=[f"{m}-{n}" for m, n, _ in BY_HAND])
def test_rewards_by_hand(mode, normalization, expected):
    R = sequence_reward(mode, HAND["r"], HAND["ref_sum"], HAND["policy_sum"], HAND["lengths"], 4.0, 10.0, normalization)
    assert R.item() == pytest.approx(expected, abs=1e-5), (
        f"{mode} under {normalization}: R = {R.item():.4f}, by hand {expected:.4f} (log pi_ref = -6 over 3 tokens, "
        "log pi_theta = -4, r = 1, alpha = 4, b = 10)"
    )


def test_task_reward_ignores_everything_but_correctness():
    r = torch.tensor([1.0, 0.0, 1.0])
    assert torch.equal(sequence_reward("task", r, -5 * torch.rand(3), -5 * torch.rand(3), torch.tensor([3, 4, 5]), 3.0, 7.0), r)


def test_normalisations_by_hand():
    ref_sum, lengths = torch.tensor([-8.0, -9.0]), torch.tensor([4, 9])
    assert rewards.normalized_likelihood(ref_sum, lengths, "sum").tolist() == [-8.0, -9.0]
    assert rewards.normalized_likelihood(ref_sum, lengths, "mean").tolist() == [-2.0, -1.0]
    assert rewards.normalized_likelihood(ref_sum, lengths, "power", 0.5).tolist() == [-4.0, -3.0]  # / sqrt(L)


def test_unknown_mode_or_normalization_says_what_is_expected():
    r, ref, pi, L = torch.ones(2), -torch.ones(2), -torch.ones(2), torch.ones(2)
    with pytest.raises(ValueError, match="expected one of"):
        sequence_reward("sharpest", r, ref, pi, L)
    with pytest.raises(ValueError, match="expected one of"):
        sequence_reward("sharpen", r, ref, pi, L, normalization="max")


# -----------------------------------------------------------------------------
# the toy task's grader


def test_toy_grader():
    g = TaskGrader("toy")
    assert g.check("3+5=8,8+2=10#10", "10") == (1.0, "10")
    assert g.check("#20", "17") == (0.0, "20")
    assert g.check("3+5=8,8+2", "10") == (0.0, None)  # no answer scores 0
    assert g.check("#017", "17") == (1.0, "017")


def test_toy_task_structure():
    rng = random.Random(0)
    terms = [3, 5, 2, 7]
    assert toytask.short_response(terms) == "#20"
    long = toytask.long_response(terms, rng, step_error=0.0)
    assert toytask.grade(long, "17") == 1.0 and long.count("=") == 3
    # operands may come in either order, so the same problem has several right long answers
    assert len({toytask.long_response(terms, rng, 0.0) for _ in range(50)}) == 8
    test = {row["question"] for row in toytask.load_problems("toy", "test")}
    train = {row["question"] for row in toytask.load_problems("toy", "train", limit=2000)}
    assert len(test) == toytask.NUM_TEST and not test & train
    with pytest.raises(ValueError, match="expected one of"):
        toytask.load_problems("toy-hard")


# -----------------------------------------------------------------------------
# the math task's grader: a near number is not the gold (the grader's own cases: tests/test_grader.py)

NEAR_MISSES = [  # (the boxed answer, the gold): close, but never equal
    ("1000001", "1000000"),
    ("1000000", "1000001"),
    ("100000000000000000001", "100000000000000000000"),
    ("1.0000001", "1"),
    ("0.3333333333", "\\frac{1}{3}"),
    ("10^{-7}", "0"),
    ("3.14159265358979", "\\pi"),
    ("1.4142135623730951", "\\sqrt{2}"),
    ("2^{100}+1", "2^{100}"),
    ("e^{10}+10^{-20}", "e^{10}"),
]
EQUAL = [
    ("\\frac{2}{4}", "0.5"),
    ("\\sqrt{8}", "2\\sqrt{2}"),
    ("1000000", "10^6"),
    ("2^{100}", "1267650600228229401496703205376"),
]


def test_the_task_reward_tells_near_numbers_apart():
    """r = 1 for an answer equal to the gold in another spelling, 0 for one that is only close: numbers are equal
    exactly, or to 60 significant digits, never within a relative tolerance."""
    g = TaskGrader("math500")
    pairs = NEAR_MISSES + EQUAL
    r, _ = g.grade([f"so \\boxed{{{answer}}}" for answer, _ in pairs], [gold for _, gold in pairs])
    got = dict(zip(pairs, r.tolist()))
    assert got == {pair: float(pair in EQUAL) for pair in pairs}, {pair: v for pair, v in got.items() if v != (pair in EQUAL)}
