"""The sharpening family's rewards and the random control, each against a value computed by hand.

These tests run the trainers' own reward lines (conftest.trainer_reward cuts them out of train_sharpen.py /
train_task.py) on small inputs.
"""

import math
from types import SimpleNamespace

import pytest
import torch

from conftest import trainer_reward
from rewards import TaskGrader, majority_vote
from rollout import self_certainty

# Two responses of lengths 2 and 3 (zero past the end, as the rollout leaves them). The rollout's own log-probs and
# entropies are another distribution's (a top-k or temperature rollout): the rewards read the loop's logp and entropy.
mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
roll = SimpleNamespace(
    lengths=mask.sum(-1),
    certainty=torch.tensor([[2.0, 1.0, 0.0], [0.3, 0.6, 0.9]]),
    logprobs=torch.tensor([[-0.1, -0.2, 0.0], [-0.9, -0.1, -0.2]]),
    entropy=torch.tensor([[0.9, 0.1, 0.0], [0.4, 0.3, 0.8]]),
)
entropy = torch.tensor([[0.5, 0.3, 0.0], [0.2, 0.2, 0.2]])
r = torch.tensor([1.0, 0.0])
logp = torch.tensor([[-0.6, -0.4, 0.0], [-0.3, -0.3, -0.3]])  # log pi_theta per token: sums -1.0 and -0.9
common = dict(roll=roll, entropy=entropy, logp=logp, ref_logp=torch.zeros(2, 3), r=r, answers=["3", "3"], G=2)


def test_entropy_minimisation_token_form_is_minus_the_mean_entropy():
    R = trainer_reward("train_sharpen.py", "entropy", **common)
    torch.testing.assert_close(
        R,
        torch.tensor([-(0.5 + 0.3) / 2, -(0.2 + 0.2 + 0.2) / 3]),
        msg=lambda m: f"R = -(1/T) sum_t H_t, divided by each response's own length T, with a minus sign; got {R.tolist()}\n{m}",
    )


def test_entropy_minimisation_sequence_form_is_the_mean_token_logprob():
    R = trainer_reward("train_sharpen.py", "entropy-seq", **common)
    torch.testing.assert_close(R, torch.tensor([-1.0 / 2, -0.9 / 3]))


def test_self_certainty_is_the_mean_of_its_tokens():
    R = trainer_reward("train_sharpen.py", "self-certainty", **common)
    torch.testing.assert_close(R, torch.tensor([(2.0 + 1.0) / 2, (0.3 + 0.6 + 0.9) / 3]))


def test_self_certainty_of_logits_by_hand():
    # z = (0, ln 3): logsumexp = ln 4, mean = ln(3)/2. Uniform logits over V = 2: log 2, its least value.
    z = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0]])
    torch.testing.assert_close(self_certainty(z), torch.tensor([math.log(4.0) - math.log(3.0) / 2, math.log(2.0)]))
    # and it is KL(uniform || softmax(z)) + log V
    z = torch.randn(4, 7)
    kl = (torch.full((7,), 1 / 7) * (math.log(1 / 7) - z.log_softmax(-1))).sum(-1)
    torch.testing.assert_close(self_certainty(z), kl + math.log(7))


class Hashed(str):
    """An answer with a chosen hash (equal answers hash alike): in a set, the answer of hash 0 comes before the one of
    hash 1 whatever PYTHONHASHSEED is, so a tie broken in a set's order (max(set(group), key=group.count)) is seen
    to go to the answer given last."""

    def __hash__(self):
        return {"7": 1, "4": 0}[str(self)]


def test_majority_vote_by_hand():
    answers = ["3", "5", "3", None] + ["1", "2", "2", "1"] + [None] * 4 + ["7", None, None, None]
    expected = [1, 0, 1, 0] + [1, 0, 0, 1] + [0, 0, 0, 0] + [1, 0, 0, 0]  # ties: the answer given first
    got = majority_vote(answers, 4).tolist()
    assert got == expected, (
        f"votes {got}, expected {expected} (groups of 4): None casts no vote and gets 0, a tie goes to the answer given "
        "first, and a group with no answers gives 0 to all"
    )


@pytest.mark.parametrize(
    "group,expected",
    [
        (["9", "2", "9", "2"], [1, 0, 1, 0]),  # "9" is given first, "2" last and smallest
        (["b", None, "a", "a", "b", "c"], [1, 0, 0, 0, 1, 0]),
        ([Hashed("7"), Hashed("4"), Hashed("4"), Hashed("7")], [1, 0, 0, 1]),  # a set holds "4" first
    ],
)
def test_majority_vote_ties_go_to_the_answer_given_first(group, expected):
    got = majority_vote(group, len(group)).tolist()
    assert got == expected, (
        f"a tie must go to the answer given first in the group, here {group[0]!r}: got {got} for {list(map(str, group))}. "
        "Not the smallest answer, not the last one, and not the first in a set's order (a set orders strings by their "
        "hash, which changes from run to run: PYTHONHASHSEED): count in the group's own order (a dict or Counter keeps it)"
    )


def test_majority_vote_in_the_trainer_never_reads_the_gold():
    inputs = dict(common, answers=["4", "4", "9", None], G=4, roll=SimpleNamespace(lengths=torch.ones(4)))
    right = trainer_reward("train_sharpen.py", "majority", **dict(inputs, r=torch.tensor([1.0, 1.0, 0.0, 0.0])))
    wrong = trainer_reward("train_sharpen.py", "majority", **dict(inputs, r=torch.tensor([0.0, 0.0, 1.0, 0.0])))
    assert right.tolist() == wrong.tolist() == [1.0, 1.0, 0.0, 0.0], (
        f"the vote must depend on the answers only, never on r (the gold): got {right.tolist()} and {wrong.tolist()}"
    )


@pytest.mark.parametrize("dataset", ["toy", "math500"])
def test_the_answers_voted_on_do_not_depend_on_the_gold(dataset):
    # The trainer votes over the grader's canonical answers: the same response must give the same answer
    # whatever gold it is checked against (only r may change).
    g = TaskGrader(dataset)
    responses = (
        ["3+5=8,8+2=10#10", "3+5=8#8", "no answer"]
        if dataset == "toy"
        else ["so \\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{x^2+1}", "I give up", "\\boxed{2^{10}}"]
    )
    golds = ["10", "8", "7"] if dataset == "toy" else ["1/2", "0.5", "1+x^2", "1024", "3"]
    for response in responses:
        assert len({g.check(response, gold)[1] for gold in golds}) == 1, response


def test_random_reward_is_a_fair_coin_seeded_by_the_step():
    """The trainer's random reward on trainer.Run's own seeded streams (Run.generator, on a stand-in Run of seed 0,
    rank 0): a fair coin, its own stream (not the samples' numbers again), the same coins at the same step (a
    resumed run), others at the next, whatever r."""
    import trainer

    asked = []
    stand_in = SimpleNamespace(args=SimpleNamespace(seed=0), dist=SimpleNamespace(rank=0, device=torch.device("cpu")))

    def generator(step, stream=0):
        asked.append((step, stream))
        return trainer.Run.generator(stand_in, step, stream)

    inputs = dict(common, r=torch.zeros(20_000), run=SimpleNamespace(generator=generator))
    R = trainer_reward("train_task.py", "random", **dict(inputs, step=3))
    assert set(R.unique().tolist()) == {0.0, 1.0}
    assert abs(R.mean().item() - 0.5) < 0.02  # 0.5 +- 2e-2 is 5.6 standard errors
    assert asked == [(3, 1)], f"the coins must come from the step's stream 1, not {asked}"
    samples_numbers = torch.bernoulli(torch.full((20_000,), 0.5), generator=trainer.Run.generator(stand_in, 3, 0))
    assert (R != samples_numbers).float().mean() > 0.4, "the coins repeat the numbers the samples were drawn with"
    assert torch.equal(R, trainer_reward("train_task.py", "random", **dict(inputs, step=3)))  # a resumed run: same coins
    assert not torch.equal(R, trainer_reward("train_task.py", "random", **dict(inputs, step=4)))
    assert torch.equal(R, trainer_reward("train_task.py", "random", **dict(inputs, step=3, r=torch.ones(20_000))))
