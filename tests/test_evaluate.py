"""pass@k and maj@k against brute force and hand-made examples; evaluate.py's refusals (a diverged model, an
unwritable --out, bad --merge files)."""

import itertools
import json
import math
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import evaluate
from conftest import ROOT
from evaluate import maj_at_k, pass_at_k, summarize
from plot import crossings, pass_at_k_curve


@pytest.mark.parametrize("n,c", [(8, 0), (8, 1), (8, 3), (8, 8), (6, 5)])
def test_pass_at_k_equals_enumeration_of_subsets(n, c):
    correct = [1] * c + [0] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        brute = np.mean([any(correct[i] for i in s) for s in subsets])
        got = pass_at_k(n, c, k)
        assert got == pytest.approx(brute), (
            f"pass@{k} with n = {n}, c = {c} is {got}, but {brute:.6f} of the k-subsets hold a right sample: "
            "1 - C(n-c, k)/C(n, k), and 1.0 when n - c < k"
        )


@pytest.mark.parametrize("p", [0.003, 0.05, 0.5])
def test_pass_at_k_curve_is_unbiased_up_to_n_256(p):
    # Over every outcome c ~ Binomial(256, p), the estimator's mean is the true pass@k = 1 - (1 - p)^k, at each
    # k of the curve; the with-replacement "best of k" of the n samples would be (1 - (1 - c/n)^k): biased low.
    n = 256
    weight = [math.comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]
    for k in [2**i for i in range(9)]:
        mean = sum(w * pass_at_k(n, c, k) for c, w in enumerate(weight))
        assert mean == pytest.approx(1 - (1 - p) ** k, abs=1e-9), (
            f"n = 256, k = {k}: the estimator's mean over c ~ Binomial(n, {p}) is {mean:.9f}, not the true pass@k "
            f"{1 - (1 - p) ** k:.9f}: biased (with replacement?) or inexact at large n (C(n, k) overflows: use the product)"
        )
    bootstrap = sum(w * (1 - (1 - c / n) ** 64) for c, w in enumerate(weight))
    assert bootstrap < 1 - (1 - p) ** 64 - 1e-3 if p < 0.5 else True


def test_pass_at_k_crossings_by_hand():
    a = [(1, 0.5), (2, 0.7), (4, 0.8)]
    b = [(1, 0.6), (2, 0.65), (4, 0.9)]  # b - a: +0.1, -0.05, +0.1: two crossings
    (k1, y1), (k2, y2) = crossings(a, b)
    assert k1 == pytest.approx(2 ** (2 / 3)) and y1 == pytest.approx(0.5 + 0.2 * 2 / 3)
    assert k2 == pytest.approx(2 ** (4 / 3)) and y2 == pytest.approx(0.7 + 0.1 / 3)
    assert crossings(a, a) == [] and crossings(a, [(k, y + 0.1) for k, y in a]) == []
    assert crossings([(16, 0.997), (32, 1.0)], [(16, 1.0), (32, 1.0 - 1e-12)]) == []  # both at 1: a tie, not a crossing
    assert pass_at_k_curve({"pass@1": 0.2, "pass@4": 0.5, "pass@2": 0.4, "maj@2": 0.3, "n": 4}) == [(1, 0.2), (2, 0.4), (4, 0.5)]


def test_merge_prints_tables_side_by_side(tmp_path):
    one = {"base": {"n": 256, "pass@1": 0.5, "pass@256": 1.0, "length": 22.0}}
    two = {"power": {"n": 32, "pass@1": 0.6, "pass@32": 0.9, "tokens_per_answer": 170.0}}
    for name, table in (("one", one), ("two", two)):
        (tmp_path / f"{name}.json").write_text(json.dumps(table))
    out = tmp_path / "both.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "evaluate.py"),
            "--merge",
            str(tmp_path / "one.json"),
            str(tmp_path / "two.json"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line.strip()}
    assert (
        rows["metric"] == ["base", "power"] and rows["pass@256"] == ["1.000", "-"] and rows["tokens_per_answer"] == ["-", "170.0"]
    )
    assert json.loads(out.read_text()) == one | two


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
            "entropy": [0.5, 0.1, 0.1, 0.3],
            "sampled": 28,
            "level": 1,
        },
        {
            "scores": [0, 0, 0, 0],
            "answers": [None, "2", "2", "2"],
            "lengths": [5, 5, 5, 5],
            "truncated": [0] * 4,
            "entropy": [0.2] * 4,
            "sampled": 100,
            "level": 2,
        },
    ]
    greedy = [{"scores": [1]}, {"scores": [0]}]
    out = summarize(records, greedy)
    assert out["pass@1"] == pytest.approx(0.25)
    assert out["pass@2"] == pytest.approx((1 - 1 / 6) / 2)
    assert out["pass@4"] == pytest.approx(0.5)
    assert out["greedy"] == 0.5 and out["length"] == pytest.approx((7 + 5) / 2)
    assert out["no_answer"] == pytest.approx(1 / 8)
    assert out["entropy"] == pytest.approx((0.25 + 0.2) / 2) and out["tokens_per_answer"] == pytest.approx((28 + 100) / 2 / 4)
    assert out["pass@1_by_level"] == {"1": 0.5, "2": 0.0}
    assert out["truncated"] == pytest.approx((1 / 4 + 0) / 2)
    for k in (1, 2, 4):  # problem 1: "4" and "5" twice each, a tie at every k: 1/2; problem 2: never right
        assert out[f"maj@{k}"] == pytest.approx(0.25, abs=0.03), k


def test_summarize_votes_over_k_of_the_n_samples():
    """maj@k of summarize is the vote of k samples (of n = 8), each k its own: against enumeration of the k-subsets."""
    problems = [["1", "2", "2", None, "1", "3", "2", "1"], ["5", "9", "9", "5", "5", "7", "9", "9"]]
    records = []
    for answers, right in zip(problems, ("1", "5")):
        scores = [int(a == right) for a in answers]
        records.append(dict(scores=scores, answers=answers, lengths=[3] * 8, truncated=[0] * 8, entropy=[0.1] * 8, sampled=24))
    out = summarize(records, trials=20_000)
    exact = {k: sum(exact_maj(rec["answers"], rec["scores"], k) for rec in records) / 2 for k in (1, 2, 4, 8)}
    assert len({round(v, 2) for v in exact.values()}) == 4  # every k gives another number: a vote over n would show
    for k, value in exact.items():
        assert out[f"maj@{k}"] == pytest.approx(value, abs=0.01), (k, out[f"maj@{k}"], value)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--power-sample", "--power-smc"], "choose one of --power-sample, --power-smc"),
        (["--particles", "4"], "--particles is a setting of --power-smc"),
        (["--power-smc", "--rollouts", "2"], "--rollouts is a setting of --scalable-power"),
        (["--alpha", "2"], "--alpha needs a road"),
    ],
)
def test_roads_take_only_their_own_settings(argv, says):
    from evaluate import check_roads
    from plumbing import options

    p = options.Parser("")
    for flag in ("--power-sample", "--power-smc", "--scalable-power"):
        p.add(flag, action="store_true")
    for setting in ("--alpha", "--particles", "--rollouts"):
        p.add(setting)
    p.parse_args(argv)
    with pytest.raises(SystemExit, match=says):
        check_roads(p.given())


# -----------------------------------------------------------------------------
# bad models, bad files: one line, before the work, and nothing lost


@pytest.mark.parametrize("harm", ["nan-weight", "overflowing-logits"])
def test_evaluation_refuses_a_model_that_is_not_finite(tmp_path, toy_path, harm):
    """A diverged model in a folder whose checksums are good: refused, not scored."""
    import torch
    from transformers import AutoModelForCausalLM

    from plumbing import checkpoint, distributed
    from plumbing.loading import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(toy_path)
    with torch.no_grad():
        if harm == "nan-weight":
            next(model.parameters())[3, 0] = float("nan")
        else:  # finite weights, as one step at --lr 1e38 leaves them
            for p in model.parameters():
                p.mul_(1e30)
    path = checkpoint.verified(checkpoint.write_folder(str(tmp_path / "m"), model, load_tokenizer(toy_path)))
    args = evaluate.parser().parse_args(["--dataset", "toy", "--limit", "2", "--n", "2", "--max-new-tokens", "8"])
    with pytest.raises(SystemExit, match="gives non-finite weights or logits") as err:
        evaluate.evaluate_model(path, args, distributed.Dist())
    assert "\n" not in str(err.value)


def run_main(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["evaluate.py", *argv])
    with pytest.raises(SystemExit) as err:
        evaluate.main()
    message = str(err.value)
    assert message.startswith("error: ") and "\n" not in message
    return message


def test_an_unwritable_out_fails_before_the_evaluation(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    message = run_main(monkeypatch, "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "file" / "r.json"))
    assert message.startswith(f"error: cannot write {tmp_path / 'file'}")  # not the missing model: nothing ran


def test_out_holds_each_model_as_soon_as_it_is_evaluated(tmp_path, monkeypatch):
    """The second model fails: the first one's metrics are already in --out, whole."""

    def evaluate_model(path, args, dist):
        if path == "second":
            raise SystemExit("error: second fails")
        return {"n": 2, "pass@1": 0.5, "pass@2": 0.75}

    monkeypatch.setattr(evaluate, "evaluate_model", evaluate_model)
    monkeypatch.setattr(evaluate, "model_path_of", lambda path: path)
    out = tmp_path / "r.json"
    assert run_main(monkeypatch, "--compare", "a=first", "b=second", "--out", str(out)) == "error: second fails"
    assert json.loads(out.read_text()) == {"a": {"n": 2, "pass@1": 0.5, "pass@2": 0.75}}


@pytest.mark.parametrize(
    "content,says",
    [
        (None, "cannot read"),
        ("{not json", "cannot read"),
        ("42", "is not a table"),
        ('{"a": 1}', "is not a table"),
        ('{"a": {"n": 1}}', "is not a table"),
        ('{"base": {"pass@1": 0.4}}', "'base' is in both"),
    ],
)
def test_merge_checks_its_files(tmp_path, monkeypatch, content, says):
    good = tmp_path / "good.json"
    good.write_text('{"base": {"n": 1, "pass@1": 0.5}}')
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert says in run_main(monkeypatch, "--merge", str(good), str(bad))
