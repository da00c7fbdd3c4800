"""Will sharpening help? evaluate.py's cov_r_logp and likeliest@n, and theory.py's identity behind them,
d/dalpha E_{pi_ref^alpha}[r] = Cov_{pi_ref^alpha}(r, log pi_ref), against values worked by hand."""

import json
import math

import numpy as np
import pytest
import torch

import evaluate
import theory as T

# Two problems of 3 samples each, worked by hand.
# Problem A: r = (1, 0, 1), log pi_ref = (-1, -2, -4).
#   mean r = 2/3, mean log pi_ref = -7/3; deviations r: (1/3, -2/3, 1/3), log pi_ref: (4/3, 1/3, -5/3)
#   sum of products = 4/9 - 2/9 - 5/9 = -1/3; over n - 1 = 2: Cov = -1/6
#   likeliest: log pi_ref -1 (the first sample), r = 1
# Problem B: r = (1, 0, 1), log pi_ref = (-1, -1, -3): the first two tie for the likeliest.
#   mean r = 2/3, mean log pi_ref = -5/3; deviations r: (1/3, -2/3, 1/3), log pi_ref: (2/3, 2/3, -4/3)
#   sum of products = 2/9 - 4/9 - 4/9 = -2/3; over 2: Cov = -1/3
#   likeliest: a tie between r = 1 and r = 0: 1/2
A = dict(scores=[1, 0, 1], logp_ref=[-1.0, -2.0, -4.0])
B = dict(scores=[1, 0, 1], logp_ref=[-1.0, -1.0, -3.0])


def test_covariance_and_likeliest_of_a_3_sample_problem_by_hand():
    assert evaluate.cov_r_logp(A["scores"], A["logp_ref"]) == pytest.approx(-1 / 6)
    assert evaluate.cov_r_logp(B["scores"], B["logp_ref"]) == pytest.approx(-1 / 3)
    assert evaluate.likeliest(A["scores"], A["logp_ref"]) == 1.0
    assert evaluate.likeliest(B["scores"], B["logp_ref"]) == 0.5  # a tie: a uniform pick's chance
    # float32 noise on the same log-prob is a tie too; a real gap (1e-3 nats) is not
    assert evaluate.likeliest([1, 0, 1], [-1.0, -1.0 - 1e-6, -3.0]) == 0.5
    assert evaluate.likeliest([1, 0, 1], [-1.0, -1.0 - 1e-3, -3.0]) == 1.0


def test_predictors_average_over_problems():
    out = evaluate.predictors([A, B], seed=0)
    assert out["cov_r_logp"] == pytest.approx((-1 / 6 - 1 / 3) / 2)
    assert out["likeliest@3"] == pytest.approx((1 + 0.5) / 2)
    assert out["cov_r_logp_low"] <= out["cov_r_logp"] <= out["cov_r_logp_high"]
    assert evaluate.predictors([{"scores": [1, 0]}], seed=0) == {}  # records without log pi_ref: no columns
    assert set(evaluate.predictors([dict(scores=[1], logp_ref=[-2.0])], seed=0)) == {"likeliest@1"}  # n = 1: no covariance


def test_bootstrap_interval_by_hand():
    # Two problems with values 0 and 1: a resample of 2 has mean 0, 1/2 or 1 with chance 1/4, 1/2, 1/4. The 2.5% and
    # 97.5% quantiles are 0 and 1; the 30% and 70% quantiles both 1/2 (1/4 < 30% and 3/4 > 70%).
    rng = np.random.default_rng(0)
    assert evaluate.bootstrap_interval([0.0, 1.0], rng) == (0.0, 1.0)
    assert evaluate.bootstrap_interval([0.0, 1.0], rng, level=0.4) == (0.5, 0.5)
    assert evaluate.bootstrap_interval([0.3] * 5, rng) == pytest.approx((0.3, 0.3))  # no spread, no interval
    seeded = [evaluate.bootstrap_interval(np.arange(10.0), np.random.default_rng(7)) for _ in range(2)]
    assert seeded[0] == seeded[1]


# -----------------------------------------------------------------------------
# what log pi_ref is in evaluate.py: the model's own log-prob at temperature 1, whatever drew the sample


def teacher_forced(model, roll):
    from model import response_logprobs

    with torch.no_grad():
        return response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask)[0].sum(-1)


@pytest.mark.parametrize(
    "argv, sampled_logp_is_ref",
    [
        ([], True),  # temperature 1: the sampler's log-probs are the model's
        (["--temperature", "0.5"], False),  # the tempered distribution's: rescored
        (["--top-k", "2"], False),  # the truncated distribution's: rescored
        (["--power-smc", "--alpha", "4", "--particles", "2"], True),  # a road carries log p, not its proposal's
        (["--power-sample", "--alpha", "2", "--blocks", "2", "--mcmc-steps", "2"], True),
        (["--scalable-power", "--alpha", "2", "--candidates", "2", "--rollouts", "2"], True),
    ],
)
def test_logp_ref_is_the_models_own_log_prob_of_each_sample(monkeypatch, toy_path, argv, sampled_logp_is_ref):
    from plumbing import distributed
    from plumbing.loading import load_model

    seen = []
    records_of = evaluate.records_of

    def spy(rows, n, roll, *rest, logp_ref=None, **kw):
        if logp_ref is not None:
            seen.append((roll, logp_ref))
        return records_of(rows, n, roll, *rest, logp_ref=logp_ref, **kw)

    monkeypatch.setattr(evaluate, "records_of", spy)
    # only the predictors are this test's business (pass@k is an exercise, blank in the course's student copy)
    monkeypatch.setattr(evaluate, "summarize", lambda records, greedy, trials, seed: evaluate.predictors(records, seed))
    args = evaluate.parser().parse_args(["--dataset", "toy", "--limit", "3", "--n", "4", "--max-new-tokens", "12", *argv])
    out = evaluate.evaluate_model(toy_path, args, distributed.Dist())
    assert "cov_r_logp" in out and "likeliest@4" in out
    model = load_model(toy_path, "cpu")
    assert seen
    for roll, logp_ref in seen:
        assert torch.allclose(logp_ref, teacher_forced(model, roll), atol=1e-4), "log pi_ref is not the model's at T = 1"
        assert torch.allclose(logp_ref, roll.logprobs.sum(-1), atol=1e-4) == sampled_logp_is_ref


# -----------------------------------------------------------------------------
# theory.py: the identity on a 3-response language, by hand, and on its listed language


def test_identity_on_three_responses_by_hand():
    # pi_ref = (1/2, 1/4, 1/4), r = (0, 1, 1). pi_alpha ∝ (2^-alpha, 4^-alpha, 4^-alpha), so with u = 2^(1 - alpha),
    # E_alpha[r] = 2 * 4^-alpha / (2^-alpha + 2 * 4^-alpha) = u / (1 + u): 1/2 at alpha = 1, 1/3 at alpha = 2.
    # dE/dalpha = -ln 2 * u / (1 + u)^2: -ln 2 / 4 at alpha = 1, and Cov_ref(r, log pi_ref) by hand:
    # E[r log p] - E[r] E[log p] = 2 (1/4)(-2 ln 2) - (1/2)((1/2)(-ln 2) + (1/2)(-2 ln 2)) = -ln 2 + (3/4) ln 2 = -ln 2 / 4.
    ref_logp = torch.tensor([0.5, 0.25, 0.25]).log()
    r = torch.tensor([0.0, 1.0, 1.0])
    slope, cov, integral, change = T.covariance_identity(ref_logp, r, 1.0)
    assert slope == pytest.approx(-math.log(2) / 4, abs=1e-8) and cov == pytest.approx(-math.log(2) / 4, abs=1e-7)
    assert integral == 0.0 and change == 0.0
    slope, cov, integral, change = T.covariance_identity(ref_logp, r, 2.0)
    assert slope == pytest.approx(-math.log(2) * 0.5 / 1.5**2, abs=1e-8)  # u = 1/2
    assert change == pytest.approx(1 / 3 - 1 / 2, abs=1e-7) and integral == pytest.approx(1 / 3 - 1 / 2, abs=1e-7)


@pytest.mark.parametrize("aligned", [True, False])
def test_identity_holds_to_numerical_precision_on_the_listed_language(aligned):
    tokens, _, ref_logp, _, _ = T.space(T.reference(), T.correct_long, False)
    texts = T.answer(tokens)
    r = T.scores(texts, T.correct_likely(texts, ref_logp) if aligned else T.correct_long)
    for alpha in T.IDENTITY_ALPHAS:
        slope, cov, integral, change = T.covariance_identity(ref_logp, r, alpha)
        assert abs(slope - cov) < 1e-7, f"alpha = {alpha}: finite difference {slope}, covariance {cov}"
        assert abs(integral - change) < 1e-12, f"alpha = {alpha}: integral of Cov {integral}, accuracy change {change}"
    # the slope at alpha = 1 has the sign of what sharpening does on this language (both directions)
    assert (T.covariance_identity(ref_logp, r, 1.0)[1] > 0) == aligned


# -----------------------------------------------------------------------------
# the self-rewards' collapse step, from a run's log.jsonl (family/paper_figures.py)


def write_log(folder, accuracies, every=10):
    """A log.jsonl with an evaluation every `every` steps and, as the trainers write, a training row for each step."""
    folder.mkdir(parents=True)
    rows = []
    for i, a in enumerate(accuracies):
        rows.append({"step": i * every, "eval_accuracy": a, "eval_length": 20.0})
        if i < len(accuracies) - 1:
            rows += [{"step": i * every + j, "reward": 0.5, "accuracy": 0.9} for j in range(1, every + 1)]
    (folder / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder / "log.jsonl"


def test_collapse_step_by_hand(tmp_path, capsys):
    from family.paper_figures import collapse, collapses

    # 0.5 -> 0.7 -> 0.7 -> 0.2: the peak is at step 10 (the first of two equal maxima), rise 0.2, fall 0.5
    got = collapse(write_log(tmp_path / "family-toy-0" / "majority", [0.5, 0.7, 0.7, 0.2]))
    assert (got["peak_step"], got["rise"], got["fall"]) == (10, pytest.approx(0.2), pytest.approx(0.5))
    # only falling: peak at the base model, rise 0; only rising: fall 0
    got = collapse(write_log(tmp_path / "family-toy-0" / "sharpen", [0.5, 0.3, 0.1]))
    assert (got["peak_step"], got["rise"], got["fall"]) == (0, 0.0, pytest.approx(0.4))
    got = collapse(write_log(tmp_path / "family-toy-1" / "sharpen", [0.5, 0.6, 0.9]))
    assert (got["peak_step"], got["rise"], got["fall"]) == (20, pytest.approx(0.4), 0.0)
    collapses([str(tmp_path / "family-toy-0"), str(tmp_path / "family-toy-1")], None)
    table = capsys.readouterr().out
    # sharpen over seeds 0 and 1: peak steps 0, 20; rise mean 0.2 (0-0.4); fall mean 0.2 (0-0.4)
    assert "| sharpen | 0, 20 | 0.200 (0.000-0.400) | 0.200 (0.000-0.400) |" in table
    assert "| majority | 10 | 0.200 (0.200-0.200) | 0.500 (0.500-0.500) |" in table
    with pytest.raises(SystemExit, match="no <arm>/log.jsonl"):
        collapses([str(tmp_path)], None)
    (tmp_path / "empty" / "task").mkdir(parents=True)
    (tmp_path / "empty" / "task" / "log.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
    with pytest.raises(SystemExit, match="no eval_accuracy rows"):
        collapses([str(tmp_path / "empty")], None)


def test_predictor_row_from_evaluate_tables(tmp_path, capsys):
    from family.paper_figures import predictor

    base = {"n": 16, "pass@1": 0.5, "likeliest@16": 0.25, "cov_r_logp": 0.1, "cov_r_logp_low": -0.05, "cov_r_logp_high": 0.2}
    (tmp_path / "base.json").write_text(json.dumps({"base": base}))
    # a second table whose base model lacks the columns (an older evaluate.py): the first one's are taken
    (tmp_path / "runs.json").write_text(json.dumps({"base": {"n": 16, "pass@1": 0.5}, "sharpen": {"n": 16, "pass@1": 0.75}}))
    predictor([f"m={tmp_path / 'runs.json'},{tmp_path / 'base.json'}"], ["sharpen", "tempered"])
    row = capsys.readouterr().out.splitlines()[-1]
    # the interval holds 0: flat; the likeliest sample (0.25) is below pass@1 (0.5): the mode says down
    assert row == "| m | 16 | 0.500 | +0.100 (-0.050, +0.200) | flat | 0.250 | down | 0.750 (+0.250) | - |"
    base |= {"cov_r_logp_low": 0.01, "likeliest@16": 0.75}
    (tmp_path / "base.json").write_text(json.dumps({"base": base}))
    predictor([f"m={tmp_path / 'base.json'}"], ["sharpen"])
    assert capsys.readouterr().out.splitlines()[-1] == "| m | 16 | 0.500 | +0.100 (+0.010, +0.200) | up | 0.750 | up | - |"
    with pytest.raises(SystemExit, match="no 'base' with cov_r_logp"):
        predictor([f"m={tmp_path / 'runs.json'}"], ["sharpen"])
    with pytest.raises(SystemExit, match="NAME=FILE"):
        predictor([str(tmp_path / "base.json")], ["sharpen"])
