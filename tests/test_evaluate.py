"""pass@k and maj@k against brute force and hand-made examples."""

import itertools
from collections import Counter

import numpy as np
import pytest

from evaluate import maj_at_k, pass_at_k, summarize


@pytest.mark.parametrize("n,c", [(8, 0), (8, 1), (8, 3), (8, 8), (6, 5)])
def test_pass_at_k_equals_enumeration_of_subsets(n, c):
    correct = [1] * c + [0] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        brute = np.mean([any(correct[i] for i in s) for s in subsets])
        assert pass_at_k(n, c, k) == pytest.approx(brute)


def exact_maj(answers, correct, k):
    """Majority vote over all k-subsets, ties split evenly between the tied answers."""
    total = 0.0
    for s in itertools.combinations(range(len(answers)), k):
        votes = Counter(answers[i] for i in s if answers[i] is not None)
        if not votes:
            continue
        top = max(votes.values())
        winners = [a for a, v in votes.items() if v == top]
        total += sum(any(c for a2, c in zip(answers, correct) if a2 == a) for a in winners) / len(winners)
    return total / len(list(itertools.combinations(range(len(answers)), k)))


def test_maj_at_k_hand_made():
    rng = np.random.default_rng(0)
    # 3 of 4 say "7" (right): the majority of all 4 is right; a single sample is right 3/4 of the time.
    answers, correct = ["7", "7", "7", "9"], [1, 1, 1, 0]
    assert maj_at_k(answers, correct, 4, rng) == 1.0
    assert maj_at_k(answers, correct, 1, rng, trials=4000) == pytest.approx(0.75, abs=0.03)
    # The right answer is a minority: majority voting hurts.
    answers, correct = ["5", "9", "9", "9"], [1, 0, 0, 0]
    assert maj_at_k(answers, correct, 4, rng) == 0.0
    # No answers: no vote, no credit.
    assert maj_at_k([None] * 4, [0] * 4, 2, rng) == 0.0


def test_maj_at_k_matches_exact_enumeration_with_ties_and_missing_answers():
    rng = np.random.default_rng(1)
    answers = ["1", "2", "2", None, "1", "3"]
    correct = [1, 0, 0, 0, 1, 0]
    for k in range(1, 7):
        assert maj_at_k(answers, correct, k, rng, trials=20000) == pytest.approx(exact_maj(answers, correct, k), abs=0.015)


def test_summarize_reports_every_metric():
    records = [
        {
            "scores": [1, 0, 0, 1],
            "answers": ["4", "5", "5", "4"],
            "lengths": [10, 3, 3, 12],
            "truncated": [0, 0, 0, 1],
            "level": 1,
        },
        {"scores": [0, 0, 0, 0], "answers": [None, "2", "2", "2"], "lengths": [5, 5, 5, 5], "truncated": [0] * 4, "level": 2},
    ]
    greedy = [{"scores": [1]}, {"scores": [0]}]
    out = summarize(records, greedy)
    assert out["pass@1"] == pytest.approx(0.25)
    assert out["pass@2"] == pytest.approx((1 - 1 / 6) / 2)
    assert out["pass@4"] == pytest.approx(0.5)
    assert out["greedy"] == 0.5 and out["length"] == pytest.approx((7 + 5) / 2)
    assert out["no_answer"] == pytest.approx(1 / 8)
    assert out["pass@1_by_level"] == {"1": 0.5, "2": 0.0}
    assert set(out) >= {"maj@1", "maj@2", "maj@4", "truncated"}
