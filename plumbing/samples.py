"""
What the model writes, seen while it trains. At each evaluation a run appends a few samples to <out>/samples.jsonl
(under --report-to also to TensorBoard's Text tab or a W&B table): the responses to the first SHOWN held-out
problems, graded, and the G samples of one prompt of the step just taken, each with the reward it was trained on.

    python -m plumbing.samples runs/task              the latest evaluation's samples
    python -m plumbing.samples runs/task --step 20    those of step 20
    python -m plumbing.samples runs/task --all        every step's

A row: {"step", "split" ("eval" or "train"), "question", "gold", "response", "answer" (what the grader read, or
null), "correct" (r), "length" (tokens, EOS included), and for "train" the "reward" R}.
"""

import argparse
import os
import sys

from plumbing.run_folder import read_log

SHOWN = 4  # held-out problems shown at each evaluation


def rows(step, split, tokenizer, roll, problems, answers, correct, reward=None):
    """samples.jsonl's rows for the first len(problems) samples of a Rollout (problems[i] is sample i's problem)."""
    out = []
    for i, problem in enumerate(problems):
        response = roll.responses[i][roll.response_mask[i]]
        row = {
            "step": step,
            "split": split,
            "question": problem["question"],
            "gold": problem["answer"],
            "response": tokenizer.decode(response, skip_special_tokens=True),
            "answer": answers[i],
            "correct": float(correct[i]),
            "length": int(roll.lengths[i]),
        }
        if reward is not None:
            row["reward"] = float(reward[i])
        out.append(row)
    return out


def show(rows):
    """The rows as a reader wants them: a step's held-out answers, then its training group."""
    for row in rows:
        mark = "right" if row["correct"] else "wrong"
        reward = f", reward {row['reward']:.4g}" if "reward" in row else ""
        print(f"[step {row['step']}, {row['split']}] {row['question']}  (gold {row['gold']})")
        print(f"    {row['response']!r}")
        print(f"    -> answer {row['answer']}: {mark}{reward}, {row['length']} tokens")


def main(argv=None):
    p = argparse.ArgumentParser(description="Print what a run's model wrote at its evaluations (samples.jsonl).")
    p.add_argument("run", help="a run folder (--out of a trainer)")
    p.add_argument("--step", type=int, help="the evaluation at this step (default: the latest)")
    p.add_argument("--all", action="store_true", help="every step's samples")
    args = p.parse_args(argv)
    path = os.path.join(args.run, "samples.jsonl")
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} does not exist: a run writes it at its first evaluation")
    found = read_log(path)  # a torn last line (a run still writing) is dropped with a warning
    steps = sorted({row["step"] for row in found})
    if not steps:
        raise SystemExit(f"error: {path} holds no samples yet")
    step = args.step if args.step is not None else steps[-1]
    if not args.all and step not in steps:
        raise SystemExit(f"error: {path} has no samples at step {step}: it has steps {', '.join(map(str, steps))}")
    show([row for row in found if args.all or row["step"] == step])


if __name__ == "__main__":
    sys.exit(main())
