"""
The real-model task: one-digit arithmetic in words, answered in \\boxed{}, through the model's chat template.

    user       Answer like the examples. Q: What is 3 plus 4? A: 3 plus 4 is 7. The answer is \\boxed{7}. ...
               Q: What is 7 times 8?
               A:
    assistant  7 times 8 is 56. The answer is \\boxed{56}.        graded by tasks/grader.py: r = 1

Chosen by measurement for SmolLM2-135M-Instruct (`--model smollm2`, a 135M-parameter chat model), the one real
model this repo can train on a laptop CPU. Its task had to be one the model half knows: at temperature 1 (the
paper's) its pass@1 between 0.05 and 0.6 and its pass@8 at least twice that, so that most groups of 8 hold both
right and wrong answers and the task reward has something to learn from. What was measured (16-32 problems x 8
samples at temperature 1, 32-48 new tokens; pass@1 / pass@8):

    GSM8K with the paper's chain-of-thought prompt             0.000 (82% of answers unreadable)
    "What is a times b? Put the final answer in \\boxed{}."     0.047 / 0.31   (86% no answer)
    the same, "End your reply with: The answer is N."          0.008 / 0.06
    one worked example in the user turn (a plus b)             0.102 / 0.63   single-digit a + b
    the two worked examples below, a plus b and a times b      0.168 / 0.78   (50% no answer): this task

Most of what it gets wrong it writes in its own words with no box ("1 plus 5 is 6."), so the task reward has a
format to teach as well as arithmetic; a likelihood reward does not see the box at all.

Facts: a plus b and a times b for a, b in 2..9, a fact being an operation on an unordered pair (72 facts). The
test split is a fixed, seeded third of the facts (24), each asked in both orders; training gets the rest. No test
fact is seen in training in either order, and the two facts of the prompt's examples are never tested.
"""

import random

PROMPT_TEMPLATE = (
    "Answer like the examples.\n"
    "Q: What is 3 plus 4?\nA: 3 plus 4 is 7. The answer is \\boxed{{7}}.\n"
    "Q: What is 2 times 5?\nA: 2 times 5 is 10. The answer is \\boxed{{10}}.\n"
    "Q: {problem}\nA:"
)
DIGITS = range(2, 10)
OPERATIONS = {"plus": lambda a, b: a + b, "times": lambda a, b: a * b}
IN_THE_PROMPT = {("plus", 3, 4), ("times", 2, 5)}  # the examples' facts: never in the test split
SPLIT_SEED = 0  # the split is fixed, whatever seed a run uses
TEST_SHARE = 1 / 3


def facts():
    """(operation, a, b) with a <= b: each unordered pair once."""
    return [(op, a, b) for op in OPERATIONS for a in DIGITS for b in DIGITS if a <= b]


def split_facts():
    """(train facts, test facts): a seeded third of the facts, not those of the prompt's examples, for testing."""
    candidates = [f for f in facts() if f not in IN_THE_PROMPT]
    test = set(random.Random(SPLIT_SEED).sample(candidates, round(len(facts()) * TEST_SHARE)))
    return [f for f in facts() if f not in test], [f for f in facts() if f in test]


def questions(fact_list):
    """Each fact in both orders (once when a = b): rows {"question", "answer"} as every loader returns them."""
    rows = []
    for op, a, b in fact_list:
        for x, y in {(a, b), (b, a)}:
            rows.append({"question": f"What is {x} {op} {y}?", "answer": str(OPERATIONS[op](x, y))})
    return sorted(rows, key=lambda row: row["question"])


def load_problems(split):
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r} for arith; choose from: train, test")
    train, test = split_facts()
    return questions(train if split == "train" else test)
