"""The trainer's update step on the toy model: a bad (non-finite) step is skipped, three stop the run."""

import pytest
import torch

from rl import Run, parser


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    args = parser("test", out).parse_args(["--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "12",
                                           "--eval-problems", "4"])
    return Run(args)


def test_nan_steps_are_skipped_then_stop_the_run(run):
    roll, r, _ = run.sample(run.prompts(0), 0)
    ref_logp, logp, _ = run.score(roll, "task")
    before = [p.detach().clone() for p in run.policy.parameters()]
    bad = torch.full((len(r),), float("nan"))
    for _ in range(2):
        with pytest.warns(UserWarning, match="non-finite"):
            run.update(roll, bad, logp, ref_logp)
    assert all(torch.equal(a, b) for a, b in zip(before, run.policy.parameters()))  # nothing was applied
    good = torch.linspace(-1, 1, len(r))
    run.update(roll, good, logp, ref_logp)  # a good step resets the count...
    assert run.bad_steps == 0
    assert not all(torch.equal(a, b) for a, b in zip(before, run.policy.parameters()))
    with pytest.warns(UserWarning), pytest.raises(SystemExit, match="non-finite steps in a row"):
        for _ in range(3):  # ...and three bad ones in a row stop the run
            run.update(roll, bad, logp, ref_logp)


def test_prompts_are_split_over_ranks_and_walk_the_training_set(run):
    seen = [r["question"] for step in range(3) for r in run.prompts(step)]
    assert len(seen) == 6 and len(set(seen)) == 6
    assert run.prompts(1) == run.prompts(1)  # the same step always gets the same prompts (exact resume)


def test_score_reuses_the_rollout_only_where_it_is_pi_theta(run):
    roll, _, _ = run.sample(run.prompts(0), 0)
    ref_logp, logp, entropy = run.score(roll, "task")
    assert logp is roll.logprobs and entropy is roll.entropy  # temperature 1, no top-k/top-p: no policy pass
    ref_tempered, logp_tempered, entropy_tempered = run.score(roll, "tempered")  # -log pi_theta is in the reward
    assert logp_tempered is not roll.logprobs
    torch.testing.assert_close(logp_tempered, roll.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy_tempered, roll.entropy, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref_tempered, ref_logp)


def test_micro_batches_take_the_same_step_as_one_batch(tmp_path):
    params = []
    for micro in (3, 64):
        args = parser("test", str(tmp_path / str(micro))).parse_args(
            ["--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "12", "--eval-problems", "4",
             "--micro-batch", str(micro), "--out", str(tmp_path / str(micro))])
        run = Run(args)
        start = [p.detach().clone() for p in run.policy.parameters()]
        roll, r, _ = run.sample(run.prompts(0), 0)
        assert len(set(roll.lengths.tolist())) > 1  # rows of different lengths: the micro-batches get cut differently
        ref_logp, logp, _ = run.score(roll, "task")
        run.update(roll, torch.linspace(-1, 1, len(r)), logp, ref_logp)
        params.append([p.detach().clone() for p in run.policy.parameters()])
    assert not any(torch.equal(a, b) for a, b in zip(start, params[1]))
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
