"""The trainer's update step on the toy model (trainer.Run and the trainers' step 5): a non-finite step is
skipped and three stop the run, a non-finite update stops it before anything is saved, and micro-batching
changes nothing."""

import pytest
import torch

import trainer
from conftest import policy_gradient_step, sample_step


def make_run(out, *extra):
    p = trainer.parser("test", out)
    argv = [
        "--prompts-per-step",
        "2",
        "--group-size",
        "4",
        "--max-new-tokens",
        "12",
        "--eval-problems",
        "4",
        "--out",
        out,
        *extra,
    ]
    return trainer.Run(p, argv)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(str(tmp_path_factory.mktemp("run") / "out"))


def test_nan_steps_are_skipped_then_stop_the_run(run):
    roll, r, _ = sample_step(run, 0)
    ref_logp = run.logprobs(run.ref, roll)
    logp = roll.logprobs  # sampled from pi_theta itself: the loop's choice
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


def test_the_rollouts_logprobs_equal_a_fresh_pass_of_the_policy(run):
    roll, _, _ = sample_step(run, 0)
    assert run.sampled_from_policy  # temperature 1, no top-k/top-p: the loop reuses the rollout's log-probs
    fresh_logp, fresh_entropy = run.logprobs(run.policy, roll, entropy=True)  # e.g. -log pi_theta in the reward
    torch.testing.assert_close(fresh_logp, roll.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(fresh_entropy, roll.entropy, atol=1e-5, rtol=0)


def test_top_k_sampling_always_gets_a_fresh_pass(tmp_path):
    run = make_run(str(tmp_path / "k"), "--top-k", "5")
    assert not run.sampled_from_policy  # the rollout's log-probs are top-k's, not pi_theta's


def test_micro_batches_take_the_same_step_as_one_batch(tmp_path):
    params = []
    for micro in (3, 64):
        run = make_run(str(tmp_path / str(micro)), "--micro-batch", str(micro))
        start = [p.detach().clone() for p in run.policy.parameters()]
        roll, r, _ = sample_step(run, 0)
        assert len(set(roll.lengths.tolist())) > 1  # rows of different lengths: the micro-batches get cut differently
        ref_logp = run.logprobs(run.ref, roll)
        logp = roll.logprobs  # sampled from pi_theta itself: the loop's choice
        policy_gradient_step(run, roll, torch.linspace(-1, 1, len(r)), logp, ref_logp)
        params.append([p.detach().clone() for p in run.policy.parameters()])
    assert not any(torch.equal(a, b) for a, b in zip(start, params[1]))
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_gradient_checkpointing_takes_the_same_step(tmp_path):
    params = []
    for extra in ([], ["--gradient-checkpointing"]):
        run = make_run(str(tmp_path / str(len(extra))), *extra)
        roll, r, _ = sample_step(run, 0)
        ref_logp = run.logprobs(run.ref, roll)
        logp = roll.logprobs  # sampled from pi_theta itself: the loop's choice
        policy_gradient_step(run, roll, torch.linspace(-1, 1, len(r)), logp, ref_logp)
        params.append([p.detach().clone() for p in run.policy.parameters()])
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
