"""The trainer's update step on the toy model (trainer.Run and the trainers' step 5): a non-finite step is
skipped and three stop the run, a non-finite update stops it before anything is saved, and micro-batching
changes nothing."""

import math
import os
import signal

import pytest
import torch

import trainer
from conftest import policy_gradient_step


def make_run(out, *extra):
    p = trainer.parser("test", out)
    args = p.parse_args(
        ["--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "12", "--eval-problems", "4", "--out", out, *extra]
    )
    return trainer.Run(args, p)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(str(tmp_path_factory.mktemp("run") / "out"))


def test_nan_steps_are_skipped_then_stop_the_run(run):
    roll, r, _ = run.sample(run.prompts(0), 0)
    ref_logp = run.score(run.ref, roll)
    logp, _ = run.policy_logprobs(roll, fresh=False)
    before = [p.detach().clone() for p in run.policy.parameters()]
    bad = torch.full((len(r),), float("nan"))
    for _ in range(2):
        with pytest.warns(UserWarning, match="non-finite"):
            assert policy_gradient_step(run, roll, bad, logp, ref_logp)[1] is None
    assert all(torch.equal(a, b) for a, b in zip(before, run.policy.parameters()))  # nothing was applied
    run.save(5)  # never a checkpoint right after a skipped step
    assert trainer.checkpoint.completed(run.args.out) == []
    good = torch.linspace(-1, 1, len(r))
    policy_gradient_step(run, roll, good, logp, ref_logp)  # a good step resets the count...
    assert run.bad_steps == 0
    assert not all(torch.equal(a, b) for a, b in zip(before, run.policy.parameters()))
    with pytest.warns(UserWarning), pytest.raises(SystemExit, match="non-finite steps in a row"):
        for _ in range(3):  # ...and three bad ones in a row stop the run
            policy_gradient_step(run, roll, bad, logp, ref_logp)


def test_a_non_finite_update_stops_before_anything_is_saved(run):
    with torch.no_grad():
        next(run.policy.parameters())[0, 0] = float("inf")
    with pytest.raises(SystemExit, match="non-finite parameters"):
        run.check_parameters()
    with torch.no_grad():
        next(run.policy.parameters())[0, 0] = 0.0
    run.check_parameters()


def test_prompts_are_split_over_ranks_and_walk_the_training_set(run):
    seen = [r["question"] for step in range(3) for r in run.prompts(step)]
    assert len(seen) == 6 and len(set(seen)) == 6
    assert run.prompts(1) == run.prompts(1)  # the same step always gets the same prompts (exact resume)


def test_policy_logprobs_reuse_the_rollout_only_when_not_asked_for_a_fresh_pass(run):
    roll, _, _ = run.sample(run.prompts(0), 0)
    logp, entropy = run.policy_logprobs(roll, fresh=False)
    assert logp is roll.logprobs and entropy is roll.entropy  # temperature 1, no top-k/top-p: no policy pass
    fresh_logp, fresh_entropy = run.policy_logprobs(roll, fresh=True)  # e.g. -log pi_theta in the reward
    assert fresh_logp is not roll.logprobs
    torch.testing.assert_close(fresh_logp, roll.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(fresh_entropy, roll.entropy, atol=1e-5, rtol=0)


def test_top_k_sampling_always_gets_a_fresh_pass(tmp_path):
    run = make_run(str(tmp_path / "k"), "--top-k", "5")
    roll, _, _ = run.sample(run.prompts(0), 0)
    assert run.policy_logprobs(roll, fresh=False)[0] is not roll.logprobs  # the rollout's are top-k's, not pi_theta's


def test_micro_batches_take_the_same_step_as_one_batch(tmp_path):
    params = []
    for micro in (3, 64):
        run = make_run(str(tmp_path / str(micro)), "--micro-batch", str(micro))
        start = [p.detach().clone() for p in run.policy.parameters()]
        roll, r, _ = run.sample(run.prompts(0), 0)
        assert len(set(roll.lengths.tolist())) > 1  # rows of different lengths: the micro-batches get cut differently
        ref_logp = run.score(run.ref, roll)
        logp, _ = run.policy_logprobs(roll, fresh=False)
        policy_gradient_step(run, roll, torch.linspace(-1, 1, len(r)), logp, ref_logp)
        params.append([p.detach().clone() for p in run.policy.parameters()])
    assert not any(torch.equal(a, b) for a, b in zip(start, params[1]))
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_gradient_checkpointing_takes_the_same_step(tmp_path):
    params = []
    for extra in ([], ["--gradient-checkpointing"]):
        run = make_run(str(tmp_path / str(len(extra))), *extra)
        roll, r, _ = run.sample(run.prompts(0), 0)
        ref_logp = run.score(run.ref, roll)
        logp, _ = run.policy_logprobs(roll, fresh=False)
        policy_gradient_step(run, roll, torch.linspace(-1, 1, len(r)), logp, ref_logp)
        params.append([p.detach().clone() for p in run.policy.parameters()])
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_logits_that_overflow_stop_the_run_and_nothing_is_saved(tmp_path, keep_signals):
    """Weights that are finite but so large that the logits overflow (what --lr 1e38 leaves after one step): the
    rollout, a save and the final model each stop the run; no checkpoint and no final/ are written."""
    out = str(tmp_path / "run")
    run = make_run(out, "--steps", "1")
    with torch.no_grad():
        for p in run.policy.parameters():
            p.mul_(1e30)
    run.check_parameters()  # every weight is finite...
    with pytest.raises(SystemExit, match="the policy's logits are not finite"):
        run.sample(run.prompts(0), 0)  # ...but not what they compute
    for stop in (lambda: run.save(1), run.finish):
        with pytest.raises(SystemExit, match="weights or logits are not finite: stopping without saving") as err:
            stop()
        assert "\n" not in str(err.value)
    assert sorted(os.listdir(out)) == [".lock", "config.json"]


def test_a_non_finite_loss_stops_the_run(tmp_path, keep_signals):
    run = make_run(str(tmp_path / "run"))
    roll, r, answers = run.sample(run.prompts(0), 0)
    logp, entropy = run.policy_logprobs(roll, fresh=False)
    args = (roll, r, r.float(), run.score(run.ref, roll), logp, entropy, answers)
    assert math.isfinite(run.metrics(*args, 0.5, 1.0, 0.0)["loss"])
    with pytest.raises(SystemExit, match="the loss is not finite"):
        run.metrics(*args, float("nan"), 1.0, 0.0)


def test_a_completed_run_ignores_a_late_signal(tmp_path, keep_signals):
    """Python puts back the default handlers while the interpreter shuts down: a Ctrl-C there killed a run that had
    completed (exit 130). "Ignore" is kept."""
    out = str(tmp_path / "run")
    run = make_run(out, "--steps", "1")
    run.finish()
    assert os.path.isdir(os.path.join(out, "final"))
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
