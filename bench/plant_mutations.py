"""
Can the fast tests fail? Plant plausible wrong versions of the repo's formulas and of the trainers' lines, one at
a time, in a copy of the working tree, and run the fast tests that concern each: a planted change is caught when a
test fails. Prints a table, caught / missed, and exits 1 if any was missed.

    python bench/plant_mutations.py                # every mutation: about 10 minutes on 2 cores
    python bench/plant_mutations.py -k baseline    # those whose name contains "baseline"

Each mutation is an exact string replacement (it must occur once, or the script stops: the code moved); the
unchanged copy must pass the same tests first, or nothing is measured. The repo itself is never touched.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSS = ["tests/test_loss.py", "tests/test_update.py"]
STEP = ["tests/test_update.py"]
REWARDS = ["tests/test_rewards.py", "tests/test_self_rewards.py", "tests/test_update.py"]

# (name, file, the right line, a plausible wrong one, the fast tests that concern it)
MUTATIONS = [
    # loss.py: the formulas
    (
        "leave-one-out over G, not G - 1",
        "loss.py",
        "(R.sum(1, keepdim=True) - R) / (group_size - 1)",
        "(R.sum(1, keepdim=True) - R) / group_size",
        LOSS,
    ),
    (
        "GRPO std without Bessel",
        "loss.py",
        "A / (R.std(1, keepdim=True) + eps)",
        "A / (R.std(1, keepdim=True, correction=0) + eps)",
        LOSS,
    ),
    ("loss sign flipped", "loss.py", "per_token = -A * logp", "per_token = A * logp", LOSS),
    (
        "token mean per sequence",
        "loss.py",
        "return mask / total_tokens",
        "return mask / (mask.sum(-1, keepdim=True) * total_sequences)",
        LOSS,
    ),
    (
        "Dr. GRPO by the batch's longest",
        "loss.py",
        "mask / (total_sequences * max_len)",
        "mask / (total_sequences * mask.shape[1])",
        LOSS,
    ),
    ("k3 KL with q reversed", "loss.py", "q = (ref_logp - logp).clamp(-20, 20)", "q = (logp - ref_logp).clamp(-20, 20)", LOSS),
    ("PPO optimistic max", "loss.py", "per_token = -torch.min(ratio * A", "per_token = -torch.max(ratio * A", LOSS),
    # the trainers' own lines
    (
        "a fixed baseline, not --baseline",
        "train_task.py",
        "group_advantages(R, G, args.baseline, args.std_normalize)",
        'group_advantages(R, G, "leave_one_out", args.std_normalize)',
        STEP,
    ),
    (
        "--std-normalize dropped",
        "train_task.py",
        "group_advantages(R, G, args.baseline, args.std_normalize)",
        "group_advantages(R, G, args.baseline)",
        STEP,
    ),
    (
        "sharpen: a fixed baseline",
        "train_sharpen.py",
        "group_advantages(R, G, args.baseline, args.std_normalize)",
        'group_advantages(R, G, "leave_one_out", args.std_normalize)',
        STEP,
    ),
    (
        "PPO clipping never on",
        "train_task.py",
        "clip_eps = args.clip_eps if args.updates_per_batch > 1 else None",
        "clip_eps = None",
        STEP,
    ),
    (
        "ratio against the new log-probs",
        "train_task.py",
        "w[cut], logp[cut], clip_eps",
        "w[cut], new_logp.detach(), clip_eps",
        STEP,
    ),
    ("KL coefficient not passed", "train_task.py", "ref_logp[cut], args.kl_coef)", "ref_logp[cut], 0.0)", STEP),
    ("loss of the last micro-batch only", "train_task.py", "loss_sum += loss.item()", "loss_sum = loss.item()", STEP),
    (
        "gradients zeroed once per batch",
        "train_task.py",
        "    for _ in range(args.updates_per_batch):\n        opt.zero_grad(set_to_none=True)\n",
        "    opt.zero_grad(set_to_none=True)\n    for _ in range(args.updates_per_batch):\n",
        STEP,
    ),
    (
        "pi_ref's log-probs from the policy",
        "train_task.py",
        "ref_logp = run.logprobs(ref, roll)",
        "ref_logp = run.logprobs(policy, roll)",
        STEP,
    ),
    ("scheduler never stepped", "train_task.py", "    sched.step()\n", "", STEP),
    ("task reward: R = 1 - r", "train_task.py", "        R = r\n", "        R = 1 - r\n", STEP),
    # trainer.py: what the loop calls
    (
        "pi_ref is the policy itself",
        "trainer.py",
        'self.ref = frozen_copy(base, torch.bfloat16 if dist.device.type == "cuda" else None)',
        "self.ref = base",
        STEP,
    ),
    (
        "gradients never clipped",
        "train_task.py",
        "clip_grad_norm_(policy.parameters(), args.grad_clip)",
        'clip_grad_norm_(policy.parameters(), float("inf"))',
        STEP,
    ),
    ("AdamW without weight decay", "trainer.py", "weight_decay=args.weight_decay", "weight_decay=0.0", STEP),
    ("warm-up from 0, not 0.1 x lr", "trainer.py", "min(1.0, 0.1 + 0.9 * s / warm)", "min(1.0, s / warm)", STEP),
    ("kl metric reversed", "trainer.py", '"kl": (logp - ref_logp).sum(-1)', '"kl": (ref_logp - logp).sum(-1)', STEP),
    ("reward_std of one sample", "trainer.py", 'sums["reward_sq"] / n - m["reward"] ** 2', 'sums["reward_sq"] / n', STEP),
    (
        "token totals of this rank only",
        "train_task.py",
        "token_weights(mask, args.aggregation, dist.sum(mask.sum()).item()",
        "token_weights(mask, args.aggregation, mask.sum().item()",
        STEP,
    ),
    # rewards.py and evaluate.py
    ("sharpening without the power", "rewards.py", "return alpha * norm_ref  # R", "return norm_ref  # R", REWARDS),
    (
        "tempered: the whole power normalised",
        "rewards.py",
        "return (alpha - 1) * norm_ref + (ref_sum - policy_sum)",
        "return alpha * norm_ref - policy_sum",
        REWARDS,
    ),
    (
        "entropy reward per response, not per token",
        "rewards.py",
        "return -entropy.sum(-1) / lengths",
        "return -entropy.sum(-1)",
        REWARDS,
    ),
    (
        "pass@k with replacement",
        "evaluate.py",
        "return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))",
        "return 1.0 - (1.0 - c / n) ** k",
        ["tests/test_evaluate.py"],
    ),
]


def copy_tree(dest):
    """The working tree as git sees it (tracked files and untracked ones not ignored), without .git or runs."""
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(dest, name))


def fast_tests(copy, tests):
    """pytest's exit code on the fast tests `tests` in the copy: 0 passed, 1 a test failed, else an error."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *tests]
    return subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True).returncode


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", default="", help="only the mutations whose name contains this")
    chosen = [m for m in MUTATIONS if p.parse_args().k in m[0]]
    with tempfile.TemporaryDirectory() as copy:
        copy_tree(copy)
        for name, file, right, wrong, _ in chosen:
            found = open(os.path.join(copy, file)).read().count(right)
            if found != 1:
                raise SystemExit(f"error: {name!r}: the line to change occurs {found} times in {file}, not once: update it here")
        everything = sorted({t for m in chosen for t in m[4]})
        if fast_tests(copy, everything) != 0:
            raise SystemExit(f"error: the unchanged copy fails {' '.join(everything)}: fix that first")
        rows = []
        for name, file, right, wrong, tests in chosen:
            path = os.path.join(copy, file)
            original = open(path).read()
            open(path, "w").write(original.replace(right, wrong))
            start = time.time()
            code = fast_tests(copy, tests)
            open(path, "w").write(original)
            verdict = {0: "MISSED", 1: "caught"}.get(code, f"error (pytest exit {code})")
            rows.append((name, file, verdict, time.time() - start))
            print(f"{verdict:8} {name} ({file}, {rows[-1][3]:.0f} s)", flush=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'mutation':{width}}  {'file':16} result")
    for name, file, verdict, _ in rows:
        print(f"{name:{width}}  {file:16} {verdict}")
    caught = sum(r[2] == "caught" for r in rows)
    print(f"\ncaught {caught} of {len(rows)}")
    sys.exit(0 if caught == len(rows) else 1)


if __name__ == "__main__":
    main()
