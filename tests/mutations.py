"""
Can the fast tests fail? Plant plausible wrong versions of the repo's formulas and of the trainers' lines, one at
a time, in a copy of the working tree, and run the fast value tests that concern each: a mutant is caught when a
test fails on a check of a value (an assertion), not when one crashes, and never by a comparison of the code's
text (the test that the two trainers are one program is left out). Prints caught / planted and exits 1 if any
mutant was missed.

    python tests/mutations.py                # every mutant (8 min on 2 cores)
    python tests/mutations.py -k baseline    # those whose name contains "baseline"
    python tests/mutations.py --list         # where each one is planted, without running anything

A mutant is found by meaning, not by line: in its file (and function), the one statement whose source, as
Python's ast.unparse writes it, starts with `where` (or equals it, for a `where` ending in "$"); in that statement
`old` must occur once and becomes `new`. A trainer mutant is planted in both trainers at once. When the code
moved, the tool stops and says which mutant to update; the unchanged copy must pass the same tests first, or
nothing is measured. The repo itself is never touched. Not a test file: pytest does not collect it.
"""

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from typing import NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINERS = ("train_task.py", "train_sharpen.py")
TEXT_TESTS = ("tests/test_update.py::test_the_trainers_differ_only_in_their_reward",)  # text, not values: left out

LOSS = ("tests/test_loss.py", "tests/test_update.py")
STEP = ("tests/test_update.py",)
REWARDS = ("tests/test_rewards.py", "tests/test_self_rewards.py")
RESUME = ("tests/test_checkpoint.py",)
ROLLOUT = ("tests/test_rollout.py", "tests/test_update.py")
SHARING = ("tests/test_precision_and_sharing.py",)
EVALUATE = ("tests/test_evaluate.py",)
POWER = ("tests/test_power_sample.py",)
GRADER = ("tests/test_rewards.py", "tests/test_grader.py")


class Mutant(NamedTuple):
    name: str
    files: str | tuple  # a file, or several (the trainers), in each of which it is planted at once
    function: str | None  # the function (or method) that holds the statement; None: anywhere in the file
    where: str  # the statement's source starts with this (ends with "$": equals it)
    old: str  # in the statement, as ast.unparse writes it: once
    new: str
    tests: tuple  # the fast test files that concern it


def trainer(name, where, old, new, tests=STEP):
    return Mutant(name, TRAINERS, None, where, old, new, tests)


# fmt: off
MUTANTS = [
    # loss.py: the formulas
    Mutant("leave-one-out over G, not G - 1", "loss.py", "group_advantages", "if baseline == 'leave_one_out'",
           "/ (group_size - 1)", "/ group_size", LOSS),
    Mutant("GRPO std without Bessel", "loss.py", "group_advantages", "if std_normalize",
           "R.std(1, keepdim=True)", "R.std(1, keepdim=True, correction=0)", LOSS),
    Mutant("loss sign flipped", "loss.py", "policy_loss", "if clip_eps is None",
           "per_token = -A * logp", "per_token = A * logp", LOSS),
    Mutant("token mean per sequence", "loss.py", "token_weights", "if aggregation == 'token'",
           "return mask / total_tokens", "return mask / (mask.sum(-1, keepdim=True) * total_sequences)", LOSS),
    Mutant("Dr. GRPO by the batch's longest", "loss.py", "token_weights", "if aggregation == 'constant'",
           "(total_sequences * max_len)", "(total_sequences * mask.shape[1])", LOSS),
    Mutant("k3 KL with q reversed", "loss.py", "k3_kl", "q = ",
           "(ref_logp - logp)", "(logp - ref_logp)", LOSS),
    Mutant("PPO optimistic max", "loss.py", "policy_loss", "if clip_eps is None",
           "-torch.min(", "-torch.max(", LOSS),
    # the trainers' own lines, planted in both
    trainer("a fixed baseline, not --baseline", "A = group_advantages(",
            "args.baseline", "'leave_one_out'"),
    trainer("--std-normalize dropped", "A = group_advantages(",
            ", args.std_normalize)", ")"),
    trainer("PPO clipping never on", "clip_eps = ",
            "args.clip_eps if args.updates_per_batch > 1 else None", "None"),
    trainer("ratio against the new log-probs", "loss = policy_loss(",
            " logp[cut]", " new_logp.detach()"),
    trainer("KL coefficient not passed", "loss = policy_loss(",
            "args.kl_coef", "0.0"),
    trainer("loss of the last micro-batch only", "loss_sum += loss.item()",
            "loss_sum += ", "loss_sum = "),
    trainer("gradients zeroed once per batch", "for _ in range(args.updates_per_batch)",
            "for _ in range(args.updates_per_batch):\n    opt.zero_grad(set_to_none=True)\n",
            "opt.zero_grad(set_to_none=True)\nfor _ in range(args.updates_per_batch):\n"),
    trainer("pi_ref's log-probs from the policy", "ref_logp = run.logprobs(",
            "run.logprobs(ref,", "run.logprobs(policy,"),
    trainer("scheduler never stepped", "sched.step()$",
            "sched.step()", "pass"),
    trainer("gradients never clipped", "grad_norm = ",
            "args.grad_clip", "float('inf')"),
    trainer("token totals of this rank only", "w = token_weights(",
            "dist.sum(mask.sum()).item()", "mask.sum().item()"),
    trainer("sequence totals of this rank only", "w = token_weights(",
            "dist.sum(len(mask)).item()", "len(mask)"),
    trainer("no fresh pass after top-k, top-p or temperature", "fresh = ",
            " or (not run.sampled_from_policy)", ""),
    trainer("the rollout's stream ignores the step", "roll, texts = rollout.sample(",
            "run.generator(step)", "run.generator(0)"),
    trainer("a statement after the reward chain changes R in one mode", "A = group_advantages(",
            "A = ", "R = R * 1.5 if args.mode == 'tilted' or args.mode == 'tempered' else R\nA = ", REWARDS + STEP),
    trainer("a mode changes the loss in the update", "loss.backward()$",
            "loss.backward()", "(loss * (2 if args.mode in ('tilted', 'entropy') else 1)).backward()"),
    trainer("the reward reads the rollout's log-probs, not the fresh pass", "ref_sum, logp_pi = ",
            " logp.sum(-1)", " roll.logprobs.sum(-1)", REWARDS + STEP),
    # train_task.py's reward chain
    Mutant("task reward: R = 1 - r", "train_task.py", None, "R = r$",
           "R = r", "R = 1 - r", REWARDS + STEP),
    Mutant("random reward on the samples' stream", "train_task.py", None, "R = torch.bernoulli(",
           "stream=1", "stream=0", REWARDS),
    Mutant("tilted: alpha and b swapped", "train_task.py", None, "R = rewards.tilted_reward(",
           "args.alpha, args.b", "args.b, args.alpha", REWARDS),
    # train_sharpen.py's reward chain
    Mutant("sharpening ignores --normalization", "train_sharpen.py", None, "R = rewards.sharpening_reward(",
           "norm_ref", "ref_sum", REWARDS),
    Mutant("tempered: log pi_theta of the rollout", "train_sharpen.py", None, "R = rewards.tempered_reward(",
           "logp_pi", "roll.logprobs.sum(-1)", REWARDS + STEP),
    Mutant("entropy-seq reads the entropy", "train_sharpen.py", None, "R = rewards.logprob_reward(",
           "logp,", "-entropy,", REWARDS),
    Mutant("self-certainty reads the entropy", "train_sharpen.py", None, "R = rewards.self_certainty_reward(",
           "roll.certainty", "roll.entropy", REWARDS),
    Mutant("majority vote reads r", "train_sharpen.py", None, "R = rewards.majority_vote(",
           "rewards.majority_vote(answers, G)", "(rewards.majority_vote(answers, G) * r)", REWARDS),
    # rewards.py
    Mutant("sharpening without the power", "rewards.py", "sharpening_reward", "return ",
           "alpha * norm_ref", "norm_ref", REWARDS),
    Mutant("tempered: the whole power normalised", "rewards.py", "tempered_reward", "return ",
           "(alpha - 1) * norm_ref + (ref_sum - policy_sum)", "alpha * norm_ref - policy_sum", REWARDS),
    Mutant("tilted: b multiplies", "rewards.py", "tilted_reward", "return ",
           "/ b", "* b", REWARDS),
    Mutant("entropy reward per response, not per token", "rewards.py", "entropy_reward", "return ",
           "/ lengths", "", REWARDS),
    Mutant("entropy-seq per response, not per token", "rewards.py", "logprob_reward", "return ",
           "/ lengths", "", REWARDS),
    Mutant("self-certainty summed, not averaged", "rewards.py", "self_certainty_reward", "return ",
           "/ lengths", "", REWARDS),
    Mutant("majority: a tie goes to the last answer", "rewards.py", "majority_vote", "winner = ",
           "(a for a in group if", "(a for a in reversed(group) if", REWARDS),
    Mutant("majority: no answer casts a vote", "rewards.py", "majority_vote", "votes = ",
           "Counter((a for a in group if a is not None))", "Counter(group)", REWARDS),
    # evaluate.py
    Mutant("pass@k with replacement", "evaluate.py", "pass_at_k", "return 1.0 - float(",
           "float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))", "(1.0 - c / n) ** k", EVALUATE),
    Mutant("maj@k over all n samples", "evaluate.py", "summarize", "for k in ks:",
           "rec['scores'], k,", "rec['scores'], n,", EVALUATE),
    Mutant("maj@k: a tie goes to the first answer", "evaluate.py", "maj_at_k", "winner = ",
           "(votes + rng.random(votes.shape) * 0.5)", "votes", EVALUATE),
    Mutant("maj@k: no answer wins a vote", "evaluate.py", "maj_at_k", "won = ",
           " & (votes.max(1) > 0)", "", EVALUATE),
    # the grader's numbers
    Mutant("numbers equal within 1e-6 relative", "tasks/grader.py", "_scalar_match", "if fp is not None and fg is not None",
           "return fp == fg", "return abs(fp - fg) <= abs(fg) / 10 ** 6", GRADER),
    # trainer.py
    Mutant("pi_ref is the policy itself", "trainer.py", "__init__", "self.ref = ",
           "frozen_copy(base, torch.bfloat16 if dist.device.type == 'cuda' else None)", "base", STEP),
    Mutant("AdamW without weight decay", TRAINERS, "optimizer", "opt = ",
           "weight_decay=args.weight_decay", "weight_decay=0.0", STEP),
    Mutant("warm-up from 0, not 0.1 x lr", TRAINERS, "optimizer", "return (opt,",
           "0.1 + 0.9 * s / warm", "s / warm", STEP),
    Mutant("kl metric reversed", "trainer.py", "step_metrics", "per_seq = ",
           "(logp - ref_logp).sum(-1)", "(ref_logp - logp).sum(-1)", STEP),
    Mutant("metrics: the sequences of this rank only", "trainer.py", "step_metrics", "n = ",
           "dist.sum(len(R)).item()", "len(R)", STEP),
    Mutant("metrics: the tokens of this rank only", "trainer.py", "step_metrics", "tokens = ",
           "dist.sum(mask.sum()).item()", "mask.sum().item()", STEP),
    Mutant("reward_std of one sample", "trainer.py", "step_metrics", "m['reward_std'] = ",
           " - m['reward'] ** 2", "", STEP),
    Mutant("top-p sampling taken for pi_theta's", "trainer.py", "__init__", "self.sampled_from_policy = ",
           " and (args.top_p == 1)", "", STEP),
    Mutant("Run.generator ignores the step", "trainer.py", "generator", "seed = ",
           " + step * 1009", "", STEP + REWARDS),
    Mutant("Run.generator ignores the rank", "trainer.py", "generator", "seed = ",
           " + self.dist.rank", "", STEP),
    Mutant("Run.generator ignores the stream", "trainer.py", "generator", "return torch.Generator(",
           "seed + stream * 2 ** 31", "seed", STEP + REWARDS),
    Mutant("resume without the optimizer state", "trainer.py", "restore", "sharding.load_optimizer_state(",
           "sharding.load_optimizer_state(self.policy, self.opt, state['optimizer'])", "pass", RESUME),
    Mutant("resume without the schedule", "trainer.py", "restore", "self.sched.load_state_dict(",
           "self.sched.load_state_dict(state['scheduler'])", "pass", RESUME),
    Mutant("resume without the random state", "trainer.py", "restore", "checkpoint.set_rng_state(",
           "checkpoint.set_rng_state(state['rng'])", "pass", RESUME),
    Mutant("the torch random state is not restored", "plumbing/checkpoint.py", "set_rng_state", "torch.set_rng_state(",
           "torch.set_rng_state(state['torch'])", "pass", RESUME),
    # model.py: scoring tokens, micro-batches, EOS
    Mutant("response log-probs shifted by one", "model.py", "_response_logprobs", "return head_logprobs(",
           "hidden[:, -width - 1:-1]", "hidden[:, -width:]", ROLLOUT),
    Mutant("shared prompts: the responses' positions one back", "plumbing/shared_prompts.py", "response_logprobs",
           "responses = decoder(", "position_ids=positions[:, P:-1]", "position_ids=positions[:, P - 1:-2]", SHARING),
    Mutant("micro-batches cut to their shortest prompt", "model.py", "micro_batches", "for rows in ",
           "int(mask[:, :P].sum(-1).max())", "int(mask[:, :P].sum(-1).min())", ROLLOUT),
    Mutant("micro-batches cut to their shortest response", "model.py", "micro_batches", "for rows in ",
           "int(roll.response_mask[rows].sum(-1).max())", "int(roll.response_mask[rows].sum(-1).min())", ROLLOUT),
    Mutant("EOS from the tokenizer only", "model.py", "eos_ids", "ids = model.generation_config",
           "model.generation_config.eos_token_id", "None", ROLLOUT),
    # rollout.py and its fast twin
    Mutant("plain rollout: log-probs at temperature 1, untruncated", "rollout.py", "rollout", "for t in range(",
           "logprobs.append(logp.gather(", "logprobs.append(logits.float().log_softmax(-1).gather(", ROLLOUT),
    Mutant("plain rollout: the entropy of the logits", "rollout.py", "rollout", "for t in range(",
           "torch.special.entr(probs)", "torch.special.entr(logits.float().softmax(-1))", ROLLOUT),
    Mutant("top-p keeps the token that reaches p", "rollout.py", "sampling_logprobs", "if top_p < 1.0",
           ">= top_p", "> top_p", ROLLOUT),
    Mutant("EOS outside the response mask", "rollout.py", "to_rollout", "response_mask = ",
           "sampled_eos.cumsum(-1) - sampled_eos.long() == 0", "sampled_eos.cumsum(-1) == 0", ROLLOUT),
    Mutant("fast rollout: noise rows in the compacted order", "plumbing/fast_rollout.py", "draw", "return ",
           "(e if rank is None else e[rank])", "e", ROLLOUT),
    Mutant("fast rollout: the position never advances", "plumbing/fast_rollout.py", "rollout", "position = position + 1$",
           "position + 1", "position", ROLLOUT),
    Mutant("fast rollout: log-probs at temperature 1, untruncated", "plumbing/fast_rollout.py", "rollout", "logprobs[rows, t] = ",
           "logp.gather(", "logits.float().log_softmax(-1).gather(", ROLLOUT),
    # the three roads to p^alpha
    Mutant("MH without the Hastings term", "family/power_sample.py", "acceptance", "return ",
           " + old_length.float().log() - new_length.float().log()", "", POWER),
    Mutant("MH accepts every proposal", "family/power_sample.py", "power_sample", "accept = ",
           "torch.rand(n, generator=generator, device=device).log() < log_a", "torch.ones_like(log_a, dtype=torch.bool)", POWER),
    Mutant("Power-SMC without its weights", "family/power_sample.py", "power_smc", "log_w += ",
           "(alpha * log_p).logsumexp(-1)", "log_p.logsumexp(-1)", POWER),
    Mutant("scalable power sampling without zeta", "family/power_sample.py", "scalable_power_sample", "pick = ",
           "jackknife(alpha * top_logp, (alpha - 1) * log_f)", "(alpha * top_logp).softmax(-1)", POWER),
    Mutant("jackknife without its correction", "family/power_sample.py", "jackknife", "if M == 1",
           "M == 1", "True", POWER),
]
# fmt: on


# -----------------------------------------------------------------------------


def files_of(mutant):
    return (mutant.files,) if isinstance(mutant.files, str) else mutant.files


class Moved(Exception):
    pass


def statement(tree, mutant, file):
    """The one statement of `tree` that `mutant` edits (in its function, when it names one)."""
    scopes = [tree]
    if mutant.function:
        scopes = [
            n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == mutant.function
        ]
        if len(scopes) != 1:
            raise Moved(f"{file}: {len(scopes)} functions named {mutant.function}, not one")
    exact = mutant.where.endswith("$")
    want = mutant.where.rstrip("$")
    found = [
        node
        for node in ast.walk(scopes[0])
        if isinstance(node, ast.stmt) and (ast.unparse(node) == want if exact else ast.unparse(node).startswith(want))
    ]
    if len(found) != 1:
        raise Moved(f"{file}: {len(found)} statements {'equal' if exact else 'start with'} {want!r}, not one")
    return found[0]


def plant(source, mutant, file):
    """`source` with the mutant planted: its statement rewritten (as ast.unparse writes it) with `old` -> `new`."""
    node = statement(ast.parse(source), mutant, file)
    text = ast.unparse(node)
    if text.count(mutant.old) != 1:
        raise Moved(f"{file}: {mutant.old!r} occurs {text.count(mutant.old)} times in `{text.splitlines()[0]}`, not once")
    indent = " " * node.col_offset
    new = "".join(indent + line + "\n" for line in text.replace(mutant.old, mutant.new).split("\n"))
    lines = source.splitlines(keepends=True)
    planted = "".join(lines[: node.lineno - 1]) + new + "".join(lines[node.end_lineno :])
    ast.parse(planted)  # still Python
    return planted


def copy_tree(dest):
    """The working tree as git sees it (tracked files and untracked ones not ignored), without .git or runs."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    )
    for name in filter(None, out.stdout.decode().split("\0")):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(dest, name))


def value_tests(copy, tests, first_failure_only=True):
    """The fast tests `tests` in the copy, the text comparisons left out: (pytest's exit code, the failures as
    (test, the first line of its message))."""
    report = os.path.join(copy, "report.xml")
    options = ["-q", "-m", "not slow", "-p", "no:cacheprovider", f"--junitxml={report}"]
    options += ["-x"] if first_failure_only else []
    options += [f"--deselect={t}" for t in TEXT_TESTS] + list(tests)
    code = pytest_in(copy, options)
    failures = []
    if os.path.exists(report):
        for case in ET.parse(report).iter("testcase"):
            for problem in [*case.iter("failure"), *case.iter("error")]:
                failures.append((case.get("name"), (problem.get("message") or "").strip().split("\n")[0]))
        os.remove(report)
    return code, failures


def pytest_in(copy, options):
    """pytest's exit code in the folder `copy`: in a child forked from this process, which has imported the heavy
    libraries once (torch, transformers) but none of the repo's modules, so that each child reads the copy's
    files as they are now; a fresh interpreter where there is no fork."""
    if not hasattr(os, "fork"):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run([sys.executable, "-m", "pytest", *options], cwd=copy, env=env, capture_output=True).returncode
    pid = os.fork()
    if pid == 0:  # the child: run pytest in the copy, quietly, and leave without running the parent's cleanup
        code = 3
        try:
            os.chdir(copy)
            sys.path.insert(0, copy)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest

            code = int(pytest.main(options))
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def checked_value(message):
    """Whether a failure is a check of a value (an assertion, or pytest's expected exception not raised), not a crash."""
    return message.startswith(("AssertionError", "assert ", "Failed: DID NOT", "Failed: "))


def verdict(copy, tests):
    code, failures = value_tests(copy, tests)
    if code == 1 and any(checked_value(m) for _, m in failures):
        name, message = next((n, m) for n, m in failures if checked_value(m))
        return "caught", f"{name}: {message[:80]}"
    if code == 1:  # the first failure crashed: look on, at every test, for a check that fails
        code, failures = value_tests(copy, tests, first_failure_only=False)
        checked = [(n, m) for n, m in failures if checked_value(m)]
        if checked:
            return "caught", f"{checked[0][0]}: {checked[0][1][:80]}"
        return "CRASHED", f"only crashes: {failures[0][0]}: {failures[0][1][:80]}"
    if code == 0:
        return "MISSED", ""
    return "ERROR", f"pytest exit {code}" + (f": {failures[0][1][:80]}" if failures else "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", default="", help="only the mutants whose name contains this")
    p.add_argument("--list", action="store_true", help="show where each mutant is planted, and run nothing")
    args = p.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    import torch  # noqa: F401  (once here, for every forked child: see pytest_in)
    import transformers  # noqa: F401

    chosen = [m for m in MUTANTS if args.k in m.name]
    if not chosen:
        raise SystemExit(f"error: no mutant's name contains {args.k!r}")
    start = time.time()
    with tempfile.TemporaryDirectory() as copy:
        copy_tree(copy)
        planted = {}
        for m in chosen:
            try:
                planted[m.name] = {f: plant(open(os.path.join(copy, f)).read(), m, f) for f in files_of(m)}
            except Moved as err:
                raise SystemExit(f"error: mutant {m.name!r}: {err}: the code moved, update it in tests/mutations.py") from None
        if args.list:
            for m in chosen:
                print(f"{m.name}: {', '.join(files_of(m))}{f' ({m.function})' if m.function else ''}: {m.old!r} -> {m.new!r}")
            return
        everything = sorted({t for m in chosen for t in m.tests})
        code, failures = value_tests(copy, everything, first_failure_only=False)
        if code != 0:
            raise SystemExit(f"error: the unchanged copy fails {', '.join(n for n, _ in failures) or everything}: fix that first")
        rows = []
        for m in chosen:
            originals = {f: open(os.path.join(copy, f)).read() for f in files_of(m)}
            for f, source in planted[m.name].items():
                open(os.path.join(copy, f), "w").write(source)
            began = time.time()
            result, why = verdict(copy, m.tests)
            for f, source in originals.items():
                open(os.path.join(copy, f), "w").write(source)
            rows.append((m, result, why))
            print(f"{result:8} {m.name} ({', '.join(files_of(m))}, {time.time() - began:.0f} s) {why}", flush=True)
    caught = sum(result == "caught" for _, result, _ in rows)
    missed = [m.name for m, result, _ in rows if result != "caught"]
    print(f"\ncaught {caught} of {len(rows)} planted ({(time.time() - start) / 60:.1f} min)")
    if missed:
        print("not caught: " + "; ".join(missed))
    sys.exit(0 if not missed else 1)


if __name__ == "__main__":
    main()
