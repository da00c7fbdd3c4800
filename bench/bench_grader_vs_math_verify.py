"""The adversarial set (tasks/adversarial.py) through the built-in grader and HF math-verify (the paper's).

Prints, for each grader, how many cases it gets right (0 for answers built to game it, 1 for true
equalities), how many times the two agree, the cases where they differ, and the slowest call.

    pip install math-verify && python bench/bench_grader_vs_math_verify.py
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from tasks import adversarial  # noqa: E402
from tasks.grader import grade  # noqa: E402


def main():
    cases = adversarial.cases()
    right = {"builtin": 0, "math_verify": 0}
    agree, differ, slowest = 0, [], (0.0, None)
    for response, gold, expected in cases:
        start = time.monotonic()
        ours = grade(response, gold)
        slowest = max(slowest, (time.monotonic() - start, response))
        theirs = grade(response, gold, backend="math_verify", timeout=5.0)
        right["builtin"] += ours == expected
        right["math_verify"] += theirs == expected
        agree += ours == theirs
        if ours != theirs:
            differ.append((response, gold, expected, ours, theirs))
    n = len(cases)
    print(f"{n} adversarial cases ({sum(e for *_, e in cases)} true equalities)")
    print(f"right: builtin {right['builtin']}/{n}, math-verify {right['math_verify']}/{n}; they agree on {agree}/{n}")
    print(f"slowest builtin call: {slowest[0]:.2f} s ({slowest[1][:60]})")
    for response, gold, expected, ours, theirs in differ:
        print(
            f"  differ: {response[:60]!r} vs gold {gold[:40]!r}: expected {expected}, builtin {ours:.0f}, math-verify {theirs:.0f}"
        )


if __name__ == "__main__":
    main()
