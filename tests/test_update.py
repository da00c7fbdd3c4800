"""The trainers' update on the toy model, through their own lines (conftest.run_loop cuts them out of
train_task.py / train_sharpen.py and runs them on a trainer.Run): one whole step equals the paper's algorithm
written out here independently (one unpadded sequence at a time, advantages and weights in plain Python,
torch's AdamW), its metrics equal numbers computed by hand, pi_ref stays frozen while `kl` follows the policy,
a non-finite step is skipped and three stop the run, and micro-batching or checkpointing change no gradient."""

import ast
import copy
import math
import os
import signal
import statistics
from types import SimpleNamespace

import pytest
import torch

import rollout
import trainer
from conftest import ROOT, run_loop, sample_step, trainer_reward, trainer_scope, trainer_setup, trainer_update

EOS = 1  # the toy tokenizer's
LR = 3e-4  # the toy's default --lr; the first step uses 0.1 x LR (warm-up from 0.1 x lr)
SMALL = ["--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "12", "--eval-problems", "4"]
STEPS = ["--steps", "5", "--eval-every", "100", "--save-every", "100"]  # steps of the loop that neither evaluate nor save


def make_run(out, *extra):
    return trainer_setup("train_task.py", *SMALL, "--out", out, *extra)["run"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(str(tmp_path_factory.mktemp("run") / "out"))


# -----------------------------------------------------------------------------
# the paper's update, written out


def token_logprobs(model, roll):
    """log pi(y_t | x, y_<t) of every response token and the entropy of pi there, one unpadded sequence at a time
    (prompt, then response up to its EOS; no masks, no micro-batches): two lists of [L_i] tensors."""
    P = roll.sequences.shape[1] - roll.response_mask.shape[1]
    logps, entropies = [], []
    for i in range(len(roll.sequences)):
        prompt = roll.sequences[i, :P][roll.attention_mask[i, :P].bool()]
        response = roll.sequences[i, P:][roll.response_mask[i]]
        logits = model(torch.cat([prompt, response])[None]).logits[0, len(prompt) - 1 : -1].float()
        logp = logits.log_softmax(-1)
        logps.append(logp.gather(-1, response[:, None])[:, 0])
        entropies.append(-(logp.exp() * logp).sum(-1))
    return logps, entropies


def advantages(R, G, baseline, std_normalize):
    """RLOO: A_i = R_i - mean_{j != i} R_j; GRPO: A_i = R_i - mean_j R_j, divided by the group's sample std + 1e-6."""
    A = []
    for start in range(0, len(R), G):
        group = R[start : start + G]
        for i, Ri in enumerate(group):
            a = Ri - statistics.mean(group[:i] + group[i + 1 :] if baseline == "leave_one_out" else group)
            A.append(a / (statistics.stdev(group) + 1e-6) if std_normalize else a)
    return A


def expected_step(policy, ref, roll, R, args, clip=True):
    """The update of the paper (and its GRPO, Dr. GRPO, PPO and k3-KL options) on a copy of the policy: the loss
    sum_i w_i sum_t loss_it, token by token; the gradient clipped to norm 1; AdamW (lr, betas (0.9, 0.999),
    eps 1e-8, weight decay 0.01). Returns what the trainer must match, from its last update. clip=False: every
    pass takes the on-policy loss -A l_t instead of PPO's (what a reused batch would do without its clip)."""
    model = copy.deepcopy(policy).train()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1 * args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    with torch.no_grad():
        old, _ = token_logprobs(model, roll)
        ref_lp, _ = token_logprobs(ref, roll)
    L, N = [len(x) for x in old], len(old)
    A = advantages(R, args.group_size, args.baseline, args.std_normalize)
    weight = {  # token: every token of the batch weighs the same; sequence: every response; constant: Dr. GRPO
        "token": [1 / sum(L)] * N,
        "sequence": [1 / (N * length) for length in L],
        "constant": [1 / (N * args.max_new_tokens)] * N,
    }[args.aggregation]
    clipped = 0
    for _ in range(args.updates_per_batch):
        opt.zero_grad()
        new, _ = token_logprobs(model, roll)
        loss = 0.0
        for i in range(N):
            if args.updates_per_batch == 1 or not clip:
                per_token = -A[i] * new[i]
            else:  # PPO: rho = pi / pi_old, the pessimistic one of rho * A and clip(rho, 0.8, 1.2) * A
                rho = torch.exp(new[i] - old[i])
                per_token = -torch.minimum(rho * A[i], rho.clamp(1 - 0.2, 1 + 0.2) * A[i])
                clipped += int(((rho - 1).abs() > 0.2).sum())
            if args.kl_coef:  # k3: exp(q) - q - 1, q = log pi_ref - log pi
                q = ref_lp[i] - new[i]
                assert q.abs().max() < 20, "past the clamp of loss.k3_kl: the two would differ"
                per_token = per_token + args.kl_coef * (torch.exp(q) - q - 1)
            loss = loss + weight[i] * per_token.sum()
        loss.backward()
        norm = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
        for p in model.parameters():
            p.grad *= min(1.0, 1.0 / (norm + 1e-6))
        opt.step()
    return dict(
        A=A,
        loss=loss.item(),
        grad_norm=norm,
        grads={n: p.grad for n, p in model.named_parameters()},
        params=dict(model.named_parameters()),
        clipped=clipped,
    )


def norm_of(grads):
    return sum(g.norm() ** 2 for g in grads.values()) ** 0.5


CASES = {
    # the paper: task reward, leave-one-out, token mean, one on-policy step; micro-batches of 3 accumulate
    "paper": ("train_task.py", ["--micro-batch", "3"]),
    "grpo": ("train_task.py", ["--baseline", "mean", "--std-normalize", "--aggregation", "sequence"]),
    # a batch reused twice with ratio clipping; a large lr so that the second pass clips, which changes its gradient
    "ppo": ("train_task.py", ["--updates-per-batch", "2", "--lr", "0.1"]),
    # the same with the KL penalty
    "ppo+kl": ("train_task.py", ["--updates-per-batch", "2", "--kl-coef", "0.5", "--aggregation", "constant", "--lr", "0.1"]),
    "sharpen": ("train_sharpen.py", ["--mode", "sharpen", "--alpha", "2"]),
}


@pytest.mark.parametrize("case", CASES)
def test_one_step_of_the_trainer_is_the_update_written_out(tmp_path, case):
    script, extra = CASES[case]
    setup = trainer_setup(script, *SMALL, "--prompts-per-step", "4", "--out", str(tmp_path / "out"), *STEPS, *extra)
    run = setup["run"]
    start = copy.deepcopy(run.policy)
    got = run_loop(script, setup, step=0)  # the whole body of the script's loop: sample, score, reward, ..., log
    roll, r, args = got["roll"], got["r"].tolist(), run.args
    with torch.no_grad():
        ref_lp, _ = token_logprobs(run.ref, roll)
        pi_lp, entropies = token_logprobs(start, roll)
    L = [len(x) for x in ref_lp]
    R = r if args.mode == "task" else [2 * x.sum().item() for x in ref_lp]  # sharpen, alpha 2: alpha * log pi_ref(y|x)
    want = expected_step(start, run.ref, roll, R, args)

    assert got["R"].tolist() == pytest.approx(R, abs=1e-4)
    assert got["A"].tolist() == pytest.approx(want["A"], abs=1e-4)
    assert any(abs(a) > 0.1 for a in want["A"]), "every advantage is zero: the step would prove nothing"
    assert got["loss_sum"] == pytest.approx(want["loss"], rel=1e-4, abs=1e-7)
    assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-4)
    if args.updates_per_batch > 1:
        assert want["clipped"] > 0, "no ratio left the clip range: clipping went untested"
        if not args.kl_coef:  # (with the KL term, whose gradient is far larger here, the clip's share is too small to see)
            unclipped = expected_step(start, run.ref, roll, R, args, clip=False)["grads"]
            moved = norm_of({n: want["grads"][n] - g for n, g in unclipped.items()})
            assert moved > 0.1 * max(norm_of(unclipped), norm_of(want["grads"])), (
                f"the clip moved the gradient by {moved:.3g} only"
            )
    for name, p in run.policy.named_parameters():  # AdamW leaves .grad as it was: the clipped gradient it used
        torch.testing.assert_close(p.grad, want["grads"][name], rtol=1e-3, atol=1e-6, msg=lambda m: f"grad of {name}: {m}")
        # AdamW moves a weight by about lr wherever |g| >> eps: to 5% of that step, the same update
        steady = want["grads"][name].abs() > 1e-6
        close = dict(rtol=0, atol=0.05 * 0.1 * args.lr)
        torch.testing.assert_close(p[steady], want["params"][name][steady], **close, msg=lambda m: f"{name}: {m}")

    m = got["metrics"]
    tokens = sum(L)
    by_hand = {
        "reward": statistics.mean(R),
        "reward_std": statistics.pstdev(R),
        "accuracy": statistics.mean(r),
        "no_answer": sum(a is None for a in got["answers"]) / len(r),
        "logp_ref": statistics.mean(x.sum().item() for x in ref_lp),
        "logp_ref_per_token": sum(x.sum().item() for x in ref_lp) / tokens,
        "length": statistics.mean(L),
        "truncated": statistics.mean(
            float(roll.sequences[i, -roll.response_mask.shape[1] :][L[i] - 1] != EOS) for i in range(len(L))
        ),
        "entropy": sum(e.sum().item() for e in entropies) / tokens,
        "kl": statistics.mean((p - q).sum().item() for p, q in zip(pi_lp, ref_lp)),  # 0: the policy is still pi_ref
        "zero_std_groups": statistics.mean(float(len(set(R[k : k + 4])) == 1) for k in range(0, len(R), 4)),
        "loss": want["loss"],
        "grad_norm": want["grad_norm"],
        "lr": 0.1 * args.lr,
    }
    for key, value in by_hand.items():
        assert m[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (key, m[key], value)


def test_pi_ref_stays_frozen_and_kl_follows_the_policy(tmp_path):
    setup = trainer_setup("train_task.py", *SMALL, "--out", str(tmp_path / "out"), *STEPS, "--lr", "0.01")
    run = setup["run"]
    base = copy.deepcopy(run.policy)
    run_loop("train_task.py", setup, step=0)
    moved = copy.deepcopy(run.policy)
    got = run_loop("train_task.py", setup, step=1)
    policy, ref = dict(run.policy.named_parameters()), dict(run.ref.named_parameters())
    for name, p in base.named_parameters():
        assert torch.equal(ref[name], p), f"pi_ref's {name} changed"
        assert ref[name].data_ptr() != policy[name].data_ptr(), f"pi_ref shares {name} with the policy"
    assert not all(torch.equal(policy[n], p) for n, p in base.named_parameters())
    with torch.no_grad():  # step 1 sampled from the policy after step 0: kl = mean_i sum_t log pi_theta - log pi_ref
        now, _ = token_logprobs(moved, got["roll"])
        then, _ = token_logprobs(base, got["roll"])
    kl = statistics.mean((a - b).sum().item() for a, b in zip(now, then))
    assert abs(kl) > 0.01 and got["metrics"]["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-5)
    assert got["metrics"]["lr"] == pytest.approx(0.01 * (0.1 + 0.9 * 1 / 5))  # warm-up over the toy's 5 steps


def reward_chain(node):
    """Whether a statement is a trainer's reward chain: `if args.mode == ...: ... elif ...: ... else: ...`, each
    branch setting R."""
    if not (isinstance(node, ast.If) and ast.unparse(node.test).startswith("args.mode ==")):
        return False
    branches = [node.body]
    while len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
        node = node.orelse[0]
        branches.append(node.body)
    branches.append(node.orelse)
    return all(any(ast.unparse(s).startswith("R = ") for s in body) for body in branches)


def program(script):
    """A trainer as a list of statements: every one of the script's (the loop's one by one) but its docstring, its
    own options (`p = trainer.parser(...)`, `p.add(...)`) and its reward chain, which must be there once."""
    out, chains = [], 0
    for node in ast.parse(open(os.path.join(ROOT, script)).read()).body[1:]:
        text = ast.unparse(node)
        if text.startswith(("p = trainer.parser(", "p.add(")):
            continue
        if not isinstance(node, ast.For):
            out.append(text)
            continue
        out.append(f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}:")
        for statement in node.body:
            chains += reward_chain(statement)
            out += [] if reward_chain(statement) else [ast.unparse(statement)]
    assert chains == 1, f"{script}: {chains} reward chains (`if args.mode == ...` setting R in every branch), not one"
    return out


def test_the_trainers_differ_only_in_their_reward():
    """Both scripts are one program, statement for statement (imports, setup, the whole loop with everything nested
    in it, what follows it), but for their options, their reward chain, and the mode whose reward needs a fresh
    pi_theta pass (tilted in one, tempered in the other): what one script's tests check holds for both."""
    task, sharpen = program("train_task.py"), program("train_sharpen.py")
    fresh = [k for k, s in enumerate(task) if s.startswith("fresh = ")]
    assert len(fresh) == 1 and "args.mode == 'tilted'" in task[fresh[0]]
    task[fresh[0]] = task[fresh[0]].replace("'tilted'", "'tempered'")
    assert len(task) > 30
    for k, (a, b) in enumerate(zip(task, sharpen)):
        assert a == b, f"statement {k} differs:\ntrain_task.py:    {a}\ntrain_sharpen.py: {b}"
    assert len(task) == len(sharpen)


MODES = {
    "train_task.py": ("task", "tilted", "random"),
    "train_sharpen.py": ("sharpen", "tempered", "entropy", "entropy-seq", "self-certainty", "majority"),
}


def mode_choices(script):
    """The choices of a script's `p.add("--mode", choices=...)`."""
    for node in ast.walk(ast.parse(open(os.path.join(ROOT, script)).read())):
        if isinstance(node, ast.Call) and node.args and ast.unparse(node.args[0]) == "'--mode'":
            return next(ast.literal_eval(k.value) for k in node.keywords if k.arg == "choices")


def test_every_mode_takes_the_same_step_from_the_same_rewards(tmp_path):
    """Past the reward (whose lines tests/test_rewards.py and test_self_rewards.py check in every mode), nothing
    depends on --mode: from the same R, each mode of each trainer gets the same advantages, weights, loss and
    gradient, through the scripts' own lines from the advantages to the end of the update."""
    run = make_run(str(tmp_path / "run"))
    roll, r, _ = sample_step(run, 0)
    batch = dict(roll=roll, R=torch.linspace(-1, 2, len(r)), logp=roll.logprobs, ref_logp=run.logprobs(run.ref, roll))
    start = copy.deepcopy(run.policy.state_dict())
    steps = {}
    for script, modes in MODES.items():
        assert modes == mode_choices(script), f"{script}'s --mode choices changed: list them in MODES"
        for mode in modes:
            run.policy.load_state_dict(start)
            scope = trainer_scope(script, run) | {"args": SimpleNamespace(**vars(run.args) | {"mode": mode})}
            got = run_loop(script, scope, "A = group_advantages", "for _ in range", **batch)
            grads = torch.cat([p.grad.flatten() for p in run.policy.parameters()])
            steps[script, mode] = (got["A"], got["w"], got["loss_sum"], got["grad_norm"], grads)
    task = steps["train_task.py", "task"]
    assert task[3] > 0
    for (script, mode), step in steps.items():
        for name, want, have in zip(("A", "w", "loss", "grad norm", "gradient"), task, step):
            assert torch.equal(torch.as_tensor(have), torch.as_tensor(want)), f"{script} --mode {mode}: its {name} differs"


# -----------------------------------------------------------------------------
# faults and equivalences of the step


def test_nan_steps_are_skipped_then_stop_the_run(run):
    roll, r, _ = sample_step(run, 0)
    ref_logp = run.logprobs(run.ref, roll)
    logp = roll.logprobs  # sampled from pi_theta itself: the loop's choice
    before = [p.detach().clone() for p in run.policy.parameters()]
    bad = torch.full((len(r),), float("nan"))
    for _ in range(2):
        with pytest.warns(UserWarning, match="non-finite"):
            assert not math.isfinite(trainer_update(run, roll, bad, logp, ref_logp)[1])  # the norm that made it skip
    assert all(torch.equal(a, b) for a, b in zip(before, run.policy.parameters()))  # nothing was applied
    run.save(5)  # never a checkpoint right after a skipped step
    assert trainer.checkpoint.completed(run.args.out) == []
    good = torch.linspace(-1, 1, len(r))
    trainer_update(run, roll, good, logp, ref_logp)  # a good step resets the count...
    assert run.bad_steps == 0
    assert not all(torch.equal(a, b) for a, b in zip(before, run.policy.parameters()))
    with pytest.warns(UserWarning), pytest.raises(SystemExit, match="non-finite steps in a row"):
        for _ in range(3):  # ...and three bad ones in a row stop the run
            trainer_update(run, roll, bad, logp, ref_logp)


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


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_token_weights_count_the_tokens_of_every_rank(run, aggregation):
    """The loop's token weights divide by totals over all ranks: with a stand-in for a second rank that holds a
    batch like this one, a token weighs 1 / (2 x this batch's tokens) ("token"), 1 / (L_i x 2 x its sequences)
    ("sequence"), 1 / (2 x its sequences x --max-new-tokens) ("constant")."""
    roll, _, _ = sample_step(run, 0)
    two_ranks = SimpleNamespace(sum=lambda x: 2 * torch.as_tensor(x))
    args = SimpleNamespace(**vars(run.args) | {"aggregation": aggregation})
    scope = trainer_scope("train_task.py", run) | {"dist": two_ranks, "args": args}
    w = run_loop("train_task.py", scope, "mask = roll.response_mask", "w = token_weights", roll=roll)["w"]
    lengths, N, tokens = roll.lengths.tolist(), len(roll.lengths), sum(roll.lengths.tolist())
    each = {
        "token": [1 / (2 * tokens)] * N,
        "sequence": [1 / (length * 2 * N) for length in lengths],
        "constant": [1 / (2 * N * run.args.max_new_tokens)] * N,
    }[aggregation]
    assert len(set(lengths)) > 1, "responses of one length: sequence and token weights would not differ"
    assert w[roll.response_mask].tolist() == pytest.approx([x for x, n in zip(each, lengths) for _ in range(n)])
    assert w[~roll.response_mask].abs().sum() == 0


def test_metrics_are_means_over_every_rank(run):
    """step_metrics divides totals over all ranks by counts over all ranks: with a stand-in for a second rank that
    holds a batch like this one, every mean is this batch's, and the loss (a sum over ranks) doubles."""
    roll, r, answers = sample_step(run, 0)
    ref_logp = run.logprobs(run.ref, roll)
    R = torch.linspace(-1, 2, len(r))
    batch = (roll, r, R, ref_logp, roll.logprobs, roll.entropy, answers, 0.25, 1.0, 0.0)
    one_rank = SimpleNamespace(sum=lambda x: torch.as_tensor(x))
    two_ranks = SimpleNamespace(sum=lambda x: 2 * torch.as_tensor(x))
    one, two = (trainer.step_metrics(d, run.args.group_size, 0.1, *batch) for d in (one_rank, two_ranks))
    for key, value in one.items():
        if key not in ("step_time", "tokens_per_s"):
            assert two[key] == pytest.approx(2 * value if key == "loss" else value, rel=1e-6), (key, two[key], value)


@pytest.mark.parametrize("sampling", [["--top-k", "5"], ["--top-p", "0.5"], ["--temperature", "0.7"]], ids=lambda x: x[0])
def test_a_rollout_from_another_distribution_gets_a_fresh_pass(tmp_path, sampling):
    """Sampled with top-k, top-p or at another temperature, the rollout's log-probs are not pi_theta's: the loop's
    logp and entropy (those of the loss, the KL metric and the rewards that read pi_theta) are a fresh pass's."""
    setup = trainer_setup("train_task.py", *SMALL, "--out", str(tmp_path / "run"), *STEPS, *sampling)
    run = setup["run"]
    got = run_loop("train_task.py", setup, "problems =", "ref_sum, logp_pi =", step=0)
    roll = got["roll"]
    fresh_logp, fresh_entropy = run.logprobs(run.policy, roll, entropy=True)
    assert (fresh_logp - roll.logprobs).abs().max() > 1e-3, "the rollout's log-probs are pi_theta's: nothing is tested"
    torch.testing.assert_close(got["logp"], fresh_logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(got["entropy"], fresh_entropy, atol=1e-5, rtol=0)
    torch.testing.assert_close(got["logp_pi"], fresh_logp.sum(-1), atol=1e-5, rtol=0)


def test_the_trainers_pass_step_rank_and_stream_to_their_random_streams(run):
    """Run.generator(step, stream) seeds a stream by (seed, step, rank, stream): the rollout of one step and a random
    reward draw anew at every step, on every rank, and a resumed run draws the same again."""

    def draws(step, stream=0, rank=0, seed=0):
        other = SimpleNamespace(args=SimpleNamespace(seed=seed), dist=SimpleNamespace(rank=rank, device=run.dist.device))
        return torch.rand(8, generator=trainer.Run.generator(other, step, stream)).tolist()

    base = draws(3)
    assert draws(3) == base and torch.rand(8, generator=run.generator(3)).tolist() == base
    for other in (draws(4), draws(3, stream=1), draws(3, rank=1), draws(3, seed=1)):
        assert other != base
    assert len({tuple(draws(step, stream, rank)) for step in range(6) for stream in (0, 1) for rank in range(4)}) == 48
    # the samples of a step, the script's own lines: drawn from that step's stream
    roll, _, _ = sample_step(run, 2)
    prompts = [x["prompt_ids"] for x in run.prompts(2)]
    for step, same in ((2, True), (0, False)):
        again, _ = rollout.sample(run.policy, run.tokenizer, prompts, 4, generator=run.generator(step), **run.sampling)
        assert torch.equal(again.sequences, roll.sequences) == same
    # the random reward, the script's own line on this generator: other coins at another step, the same at the same
    batch = dict(
        r=torch.zeros(64), ref_logp=torch.zeros(64, 1), logp=torch.zeros(64, 1), roll=SimpleNamespace(lengths=torch.ones(64))
    )
    coins = [trainer_reward("train_task.py", "random", run=run, step=step, **batch) for step in (3, 3, 4)]
    assert torch.equal(coins[0], coins[1]) and not torch.equal(coins[0], coins[2])


def one_update(out, *extra):
    """The trainers' step 5 on a fixed batch: its loss, pre-clip grad norm and the gradient AdamW applied."""
    run = make_run(out, *extra)
    roll, r, _ = sample_step(run, 0)
    ref_logp = run.logprobs(run.ref, roll)
    logp = roll.logprobs  # sampled from pi_theta itself: the loop's choice
    loss, grad_norm = trainer_update(run, roll, torch.linspace(-1, 1, len(r)), logp, ref_logp)
    return roll, loss, grad_norm, {n: p.grad.clone() for n, p in run.policy.named_parameters()}


def test_micro_batches_take_the_same_step_as_one_batch(tmp_path):
    roll, *whole = one_update(str(tmp_path / "64"), "--micro-batch", "64")
    assert len(set(roll.lengths.tolist())) > 1  # rows of different lengths: the micro-batches get cut differently
    _, *micro = one_update(str(tmp_path / "3"), "--micro-batch", "3")
    assert_same_update(micro, whole)


def test_gradient_checkpointing_takes_the_same_step(tmp_path):
    plain = one_update(str(tmp_path / "plain"))[1:]
    assert_same_update(one_update(str(tmp_path / "ckpt"), "--gradient-checkpointing")[1:], plain)


def assert_same_update(got, want):
    """Before AdamW's step, whose first move is about lr * sign(g) and would hide a gradient wrongly scaled."""
    (loss, grad_norm, grads), (want_loss, want_norm, want_grads) = got, want
    assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-7)
    assert grad_norm == pytest.approx(want_norm, rel=1e-5)
    assert want_norm > 0 and any(g.abs().max() > 0 for g in want_grads.values())
    for name, g in want_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-8, msg=lambda m: f"grad of {name}: {m}")


def test_logits_that_overflow_stop_the_run_and_nothing_is_saved(tmp_path, keep_signals):
    """Weights that are finite but so large that the logits overflow (what --lr 1e38 leaves after one step): the
    step's loss, an evaluation, a save and the final model each stop the run; no checkpoint and no final/ are
    written."""
    out = str(tmp_path / "run")
    run = make_run(out, "--steps", "1")
    with torch.no_grad():
        for p in run.policy.parameters():
            p.mul_(1e30)
    run.check_parameters()  # every weight is finite...
    roll, _, _ = sample_step(run, 0)
    assert not torch.isfinite(roll.logprobs).all()  # ...but not what they compute: the step's loss stops the run
    with pytest.raises(SystemExit, match="the policy's logits are not finite"):
        run.evaluate(0)
    for stop in (lambda: run.save(1), run.save_final):
        with pytest.raises(SystemExit, match="weights or logits are not finite: stopping without saving") as err:
            stop()
        assert "\n" not in str(err.value)
    assert sorted(os.listdir(out)) == [".lock", "config.json"]


def test_a_non_finite_loss_stops_the_run(tmp_path, keep_signals):
    run = make_run(str(tmp_path / "run"))
    roll, r, answers = sample_step(run, 0)
    logp, entropy = roll.logprobs, roll.entropy
    args = (roll, r, r.float(), run.logprobs(run.ref, roll), logp, entropy, answers)
    assert math.isfinite(run.metrics(*args, 0.5, 1.0, 0.0)["loss"])
    with pytest.raises(SystemExit, match="the loss is not finite"):
        run.metrics(*args, float("nan"), 1.0, 0.0)


def test_a_completed_run_ignores_a_late_signal(tmp_path, keep_signals):
    """Python puts back the default handlers while the interpreter shuts down: a Ctrl-C there killed a run that had
    completed (exit 130). "Ignore" is kept."""
    out = str(tmp_path / "run")
    run = make_run(out, "--steps", "1")
    run.save_final()
    assert os.path.isdir(os.path.join(out, "final"))
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
