"""Benchmark: grade 10,000 synthetic responses on one CPU core.

Each response is a few sentences of reasoning followed by a boxed answer in one of several
styles (plain, \\dfrac, decimal, units, degrees, tuples, radicals, expressions, text, matrices);
half are correct respellings of the gold answer and half are wrong. The script prints the
measured throughput and the share of rewards that agree with the intended labels.

    python bench/bench_grader.py [--n 10000] [--seed 0]
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tasks.grader import grade  # noqa: E402

# (gold, equivalent spellings, wrong answers)
ANSWER_KINDS = [
    (lambda r, n: (str(n), [str(n), f"{n}.0", f"x = {n}", f"{n} \\text{{ cm}}"], [str(n + r.choice([-2, -1, 1, 3]))])),
    (lambda r, n: (f"{n:,}" if n > 999 else str(n), [f"{n:,}", f"\\${n}", str(n)], [str(n * 10)])),
    (
        lambda r, n: (
            f"\\frac{{{n}}}{{{2 * n + 1}}}",
            [f"\\dfrac{{{n}}}{{{2 * n + 1}}}", f"{n}/{2 * n + 1}", f"\\frac{{{2 * n}}}{{{4 * n + 2}}}"],
            [f"\\frac{{{2 * n + 1}}}{{{n}}}", f"\\frac{{{n}}}{{{2 * n + 3}}}"],
        )
    ),
    (lambda r, n: (f"\\frac{{{n}}}{{4}}", [f"{n / 4}", f"\\tfrac{{{n}}}{{4}}"], [f"{n / 4 + 0.5}"])),
    (
        lambda r, n: (
            f"{n}\\sqrt{{2}}",
            [f"\\sqrt{{{2 * n * n}}}", f"{n} \\sqrt2", f"\\sqrt{{2}} \\cdot {n}"],
            [f"{n}\\sqrt{{3}}", f"\\sqrt{{{2 * n}}}"],
        )
    ),
    (
        lambda r, n: (
            f"\\frac{{\\sqrt{{3}}}}{{{n}}}",
            [f"\\dfrac{{\\sqrt3}}{{{n}}}", f"\\sqrt{{3}}/{n}"],
            [f"\\frac{{\\sqrt{{2}}}}{{{n}}}"],
        )
    ),
    (
        lambda r, n: (
            f"({n}, {n + 3})",
            [f"\\left( {n},{n + 3} \\right)", f"({n},{n + 3})"],
            [f"({n + 3}, {n})", f"[{n}, {n + 3})"],
        )
    ),
    (lambda r, n: (f"[{n}, \\infty)", [f"[{n},\\infty)", f"x \\in [{n}, \\infty)"], [f"({n}, \\infty)"])),
    (lambda r, n: (f"{n}^\\circ", [f"{n}^{{\\circ}}", f"{n}", f"{n} degrees"], [f"{n + 90}^\\circ"])),
    (lambda r, n: (f"x^2 + {2 * n}x + {n * n}", [f"(x+{n})^2", f"{n * n} + {2 * n}x + x^2"], [f"(x-{n})^2", f"x^2+{n * n}"])),
    (lambda r, n: (f"{n} - {n + 1}i", [f"-{n + 1}i + {n}", f"{n}-{n + 1}i"], [f"{n} + {n + 1}i"])),
    (lambda r, n: (f"{n}\\pi", [f"{n} \\pi", f"\\pi \\cdot {n}"], [f"{n + 1}\\pi", f"\\frac{{\\pi}}{{{n}}}"])),
    (lambda r, n: ("\\text{" + r.choice(["Evelyn", "Monday", "odd"]) + "}", None, ["\\text{Navin}"])),
    (lambda r, n: (f"{n}_8", [f"{n}_{{8}}"], [f"{n + 1}_8"])),
    (
        lambda r, n: (
            f"\\begin{{pmatrix}} {n} & 1 \\\\ 0 & {n} \\end{{pmatrix}}",
            [f"\\begin{{pmatrix}}{n}&1\\\\0&{n}\\end{{pmatrix}}"],
            [f"\\begin{{pmatrix}} {n} & 0 \\\\ 1 & {n} \\end{{pmatrix}}"],
        )
    ),
]

SENTENCES = [
    "Let's think step by step.",
    "First, we set up the equation from the problem statement.",
    "Substituting the known values, we simplify both sides.",
    "We check the boundary cases.",
    "Multiplying through by the common denominator gives a quadratic.",
    "By symmetry, the two remaining cases are the same.",
    "This matches our earlier estimate.",
]


def make_cases(n: int, seed: int) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    cases = []
    for k in range(n):
        gold, right, wrong = rng.choice(ANSWER_KINDS)(rng, rng.randint(2, 60))
        correct = k % 2 == 0
        answer = rng.choice(right or [gold]) if correct else rng.choice(wrong)
        reasoning = " ".join(rng.choices(SENTENCES, k=rng.randint(3, 8)))
        wrapper = rng.choice(["The final answer is $\\boxed{%s}$.", "Therefore, \\boxed{%s}", "So we get $$\\boxed{%s}$$"])
        cases.append((f"{reasoning}\n\n{wrapper % answer}", gold, float(correct)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, as a reward worker would have
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cases = make_cases(args.n, args.seed)
    grade(*cases[0][:2])  # warm up the lazily built sympy caches once
    start = time.perf_counter()
    rewards = [grade(response, gold) for response, gold, _ in cases]
    total = time.perf_counter() - start
    agree = sum(r == label for r, (_, _, label) in zip(rewards, cases)) / len(cases)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"graded {len(cases)} responses on {cpus} core(s) in {total:.2f} s "
        f"= {len(cases) / total:,.0f} responses/s ({1e3 * total / len(cases):.3f} ms each)"
    )
    print(f"mean reward {sum(rewards) / len(rewards):.3f}; agreement with intended labels {agree:.4f}")


if __name__ == "__main__":
    main()
