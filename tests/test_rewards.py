"""The paper's four rewards, each against its formula, and the toy task's grader."""

import pytest
import torch

import toytask
from rewards import TaskGrader, sequence_reward

r = torch.tensor([1.0, 0.0, 1.0])
ref = torch.tensor([-3.0, -10.0, -20.0])
pi = torch.tensor([-2.0, -12.0, -19.0])
L = torch.tensor([3, 10, 16])


def test_task_reward_is_correctness():
    assert torch.equal(sequence_reward("task", r, ref, pi, L, alpha=3.0, b=7.0), r)


def test_sharpen_is_alpha_log_pi_ref():
    torch.testing.assert_close(sequence_reward("sharpen", r, ref, pi, L, alpha=2.0), 2.0 * ref)


def test_tempered_is_alpha_log_pi_ref_minus_log_pi():
    torch.testing.assert_close(sequence_reward("tempered", r, ref, pi, L, alpha=4.0), 4.0 * ref - pi)


def test_tilted_adds_task_reward():
    torch.testing.assert_close(sequence_reward("tilted", r, ref, pi, L, alpha=0.5, b=100.0), r + (0.5 * ref - pi) / 100.0)


def test_length_normalisations():
    torch.testing.assert_close(sequence_reward("sharpen", r, ref, pi, L, normalization="mean"), ref / L)
    torch.testing.assert_close(
        sequence_reward("sharpen", r, ref, pi, L, alpha=2.0, normalization="power", length_power=0.5),
        2.0 * ref / L.float().sqrt(),
    )
    # tempered: the normalised alpha * log pi_ref, and -log pi_theta as it is
    torch.testing.assert_close(sequence_reward("tempered", r, ref, pi, L, alpha=3.0, normalization="mean"), 3.0 * ref / L - pi)


def test_unknown_mode_or_normalization_says_what_is_expected():
    with pytest.raises(ValueError, match="expected one of"):
        sequence_reward("sharpest", r, ref, pi, L)
    with pytest.raises(ValueError, match="expected one of"):
        sequence_reward("sharpen", r, ref, pi, L, normalization="max")


def test_toy_grader():
    g = TaskGrader("toy")
    assert g.check("3+5=8,8+2=10#10", "10") == (1.0, "10")
    assert g.check("#20", "17") == (0.0, "20")
    assert g.check("3+5=8,8+2", "10") == (0.0, None)  # no answer scores 0
    assert g.check("#017", "17") == (1.0, "017")


def test_toy_task_structure():
    import random

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
