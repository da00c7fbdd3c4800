"""Tests for grader.py: a hand-written table of graded answers, extraction, voting
normalisation, time limits, and a seeded fuzz test that grade() never raises or hangs.

The tables are graded in strict mode: a worker that fails or overruns raises instead of scoring 0, so a
row that expects 0 passes on a verdict, never because the check crashed. Nothing here is timed: a time limit
is tested on a worker that cannot answer (stopped), and bounded work is counted (characters read, the worker's
timeouts and children); the speed of the grader is measured in bench/."""

import os
import random
import signal
import sys
import threading
from contextlib import contextmanager

import pytest

from tasks import timelimit
from tasks.grader import GRADERS, MAX_RESPONSE_CHARS, answers_match, extract_answer, grade, normalize_answer

STRICT = dict(timeout=30.0, strict=True)  # a hang is a failure here, not a 0

B = r"\boxed{%s}"
PMAT = r"\begin{pmatrix} %s & %s \\ %s & %s \end{pmatrix}"

# (response, gold, expected reward). Responses are boxed unless the row tests another format.
CASES = [
    # integers and decimals
    (B % "42", "42", 1),
    (B % "43", "42", 0),
    (B % "-7", "-7", 1),
    (B % "7", "-7", 0),
    (B % "3.50", "3.5", 1),
    (B % "3.0", "3", 1),
    (B % "3.05", "3.5", 0),
    (B % ".5", "0.5", 1),
    (B % "1,000", "1000", 1),
    (B % "1{,}000", "1000", 1),
    (B % r"10,\!080", "10080", 1),
    (B % r"\$1,250", "1250", 1),
    (B % r"1250 \text{ dollars}", r"\$1250", 1),
    (B % r"25\%", "25", 1),
    (B % "25%", r"25\%", 1),
    (B % "0.25", r"25\%", 0),
    (B % "1000000", "1,000,000", 1),
    (B % "100000", "1,000,000", 0),
    # AIME answers keep leading zeros; compare as integers
    (B % "25", "025", 1),
    (B % "025", "25", 1),
    (B % "250", "025", 0),
    (B % "52", "025", 0),
    # GSM8K style
    ("Tom has 3 apples...\n#### 1,234", "1234", 1),
    ("so 1234 in all.\n#### 1234", "1,234", 1),
    ("#### 1235", "1,234", 0),
    ("#### -3", "-3", 1),
    ("#### 3", "-3", 0),
    # "the answer is" fallback
    ("The answer is 7.", "7", 1),
    ("Thus the answer is $\\frac{1}{2}$.", "0.5", 1),
    ("The answer is 3.5. Done.", "3.5", 1),
    ("The answer is 8.", "7", 0),
    (r"Put it in \boxed{}. The answer is 5.", "5", 1),  # an empty box is ignored
    # fractions in every spelling
    (B % r"\dfrac{1}{2}", "0.5", 1),
    (B % r"\frac12", "1/2", 1),
    (B % r"\tfrac{3}{4}", "0.75", 1),
    (B % r"\frac{2}{4}", r"\frac{1}{2}", 1),
    (B % r"\frac{1}{3}", "0.33", 0),
    (B % "0.3333", r"\frac{1}{3}", 0),
    (B % r"-\frac{1}{2}", r"\frac{-1}{2}", 1),
    (B % r"\frac{1}{2}", r"-\frac12", 0),
    (B % r"1\frac{1}{2}", r"\frac{3}{2}", 1),
    (B % r"\frac{2}{1}", r"\frac{1}{2}", 0),
    (B % r"\frac{7}{2}", "3.5", 1),
    (B % r"\frac{-3}{4}", "-0.75", 1),
    # LaTeX decoration: \left \right, spacing, math delimiters, text
    (B % r"\left( 1, 2 \right)", "(1,2)", 1),
    (B % r"2\,\sqrt{3}", r"2\sqrt3", 1),
    (B % r"2 \! \cdot \! 3", "6", 1),
    (B % "$5$", "5", 1),
    (B % r"\(5\)", "5", 1),
    (B % r"\text{Evelyn}", "Evelyn", 1),
    (B % r"\textbf{Evelyn}", r"\text{Evelyn}", 1),
    (B % r"\text{Evenly}", r"\text{Evelyn}", 0),
    (B % r"\mbox{(C)}", "C", 1),
    (B % r"\text{(C)}", r"\text{(D)}", 0),
    (B % r"\text{even}", r"\text{odd}", 0),
    (B % r"\text{Monday}", "monday", 1),
    # units
    (B % r"5 \text{ cm}", "5", 1),
    (B % "5 cm", "5", 1),
    (B % r"15\mbox{ cm}^2", "15", 1),
    (B % r"6 \text{ inches}", "7", 0),
    (B % "12 square feet", "12", 1),
    (B % r"864 \mbox{ inches}^2", "864", 1),
    # degrees
    (B % r"30^\circ", "30", 1),
    (B % r"30^{\circ}", r"30^\circ", 1),
    (B % "30 degrees", "30", 1),
    (B % "60°", r"30^\circ", 0),
    (B % "30", r"30^\circ", 1),
    # tuples, intervals, sets, lists
    (B % "(1,2)", "(2,1)", 0),
    (B % "(1, 2)", "(1,2)", 1),
    (B % "(1, -2)", "(1,-2)", 1),
    (B % "(1,2,3)", "(1,2)", 0),
    (B % "[1,2)", "(1,2)", 0),
    (B % "[1, 2)", "[1,2)", 1),
    (B % r"(-\infty, 3]", r"(-\infty,3]", 1),
    (B % r"(-\infty,3)", r"(-\infty,3]", 0),
    (B % r"\{1,2\}", r"\{2,1\}", 1),
    (B % r"\{1,2\}", r"\{1,3\}", 0),
    (B % "1, 2", "2, 1", 1),
    (B % "1, 2", "1, 2, 3", 0),
    (B % r"(0,9) \cup (9,36)", r"(0, 9)\cup(9, 36)", 1),
    (B % r"(0,9) \cup (9,36)", "(0,36)", 0),
    (B % r"(\frac12, 3)", "(0.5,3)", 1),
    (B % "[-2,7]", r"x \in [-2,7]", 1),
    (B % "1, 2", "(1,2)", 1),
    (B % "2, 1", "(1,2)", 0),
    # radicals, pi and other constants
    (B % r"2\sqrt{2}", r"\sqrt{8}", 1),
    (B % r"\sqrt{8}", r"2\sqrt{3}", 0),
    (B % r"\frac{\sqrt3}{2}", r"\frac{\sqrt{3}}{2}", 1),
    (B % r"\frac{1}{2}\sqrt{3}", r"\frac{\sqrt{3}}{2}", 1),
    (B % r"\frac{\sqrt{2}}{2}", r"\frac{\sqrt{3}}{2}", 0),
    (B % "0.866", r"\frac{\sqrt3}{2}", 0),
    (B % r"\sqrt[3]{8}", "2", 1),
    (B % r"\frac{1}{\sqrt2}", r"\frac{\sqrt2}{2}", 1),
    (B % r"3+2\sqrt2", r"2\sqrt{2}+3", 1),
    (B % r"1+\sqrt{19}, 1-\sqrt{19}", r"1 \pm \sqrt{19}", 1),
    (B % r"1+\sqrt{19}", r"1 \pm \sqrt{19}", 0),
    (B % r"\pi/2", r"\frac{\pi}{2}", 1),
    (B % r"2\pi", r"\pi", 0),
    (B % r"288\pi", r"288 \pi", 1),
    (B % r"\pi \cdot 288", r"288\pi", 1),
    (B % r"-\infty", r"\infty", 0),
    (B % r"\infty", r"\infty", 1),
    # expressions, complex numbers, equations
    (B % "(x+1)^2", "x^2+2x+1", 1),
    (B % "x^2+2x+1", "x^2+2x-1", 0),
    (B % "3+2x", "2x+3", 1),
    (B % "y = 2x + 3", "2x+3", 1),
    (B % "x = p - q", "p - q", 1),
    (B % "x^2", "x^3", 0),
    (B % r"\frac{x+1}{x-1}", "(x+1)/(x-1)", 1),
    (B % "-q + p", "p - q", 1),
    (B % "q-p", "p-q", 0),
    (B % r"\sin^2 x + \cos^2 x", "1", 1),
    (B % "-5i+6", "6 - 5i", 1),
    (B % "6+5i", "6-5i", 0),
    (B % r"\frac{1}{2}+\frac{\sqrt3}{2}i", r"\frac{1+i\sqrt{3}}{2}", 1),
    (B % "2^{10}", "1024", 1),
    (B % "10!", "3628800", 1),
    (B % "x = 5", "5", 1),
    (B % "x=5", "6", 0),
    (B % r"\theta = \frac{\pi}{4}", r"\frac{\pi}{4}", 1),
    (B % "y^2+x^2=1", "x^2+y^2=1", 1),
    (B % "3y+2x=6", "2x+3y=6", 1),
    (B % "2x+3y=7", "2x+3y=6", 0),
    # base-n numbers compare as strings
    (B % "52_{8}", "52_8", 1),
    (B % "42", "52_8", 0),
    (B % "52", "52_8", 0),
    # matrices, element-wise
    (B % (PMAT % (1, 2, 3, 4)), PMAT % (1, 2, 3, 4), 1),
    (B % (PMAT % (r"\frac12", 2, 3, 4)), PMAT % ("0.5", 2, 3, 4), 1),
    (B % (PMAT % (1, 2, 3, 5)), PMAT % (1, 2, 3, 4), 0),
    (B % r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 & 2 \end{pmatrix}", 0),
    # hedging and commitment
    (B % "3 or 5", "3", 0),
    (B % r"3 \text{ or } 5", "3", 0),
    (B % "3, 5", "3", 0),
    (r"Maybe \boxed{3}, no: \boxed{5}.", "5", 0),
    (r"Maybe \boxed{3}, no: \boxed{5}.", "3", 0),
    (r"\boxed{5} ... so indeed \boxed{5}.", "5", 1),
    (r"\boxed{\frac12} = \boxed{0.5}", "1/2", 1),
    (r"\boxed{}", "3", 0),
    (r"\boxed{\boxed{3}}", "3", 1),
    (r"\fbox{7}", "7", 1),
    (r"so $\framebox{204}$ minutes", "204", 1),
    ("I am not sure.", "5", 0),
    ("", "5", 0),
    (r"\boxed{3", "3", 0),
    # huge numbers are never built; equal strings still match
    (B % "10^{10^{10}}", "10^{10^{10}}", 1),
    (B % "10^{10^{10}}", "5", 0),
    (B % "9^{9^{9^{9}}}", "0", 0),
    (B % "2^{100}", "1267650600228229401496703205376", 1),
    (B % "(x+1)^{100000}", "x", 0),
    # identities hold as real functions: the same domain and the same values, for x of both signs
    (B % r"\sqrt{x^2}", "x", 0),  # |x|
    (B % r"\sqrt{x^2}", "|x|", 1),
    (B % r"\sqrt{x^2}", r"\left| x \right|", 1),
    (B % r"\sqrt{(x-1)^2}", "x-1", 0),
    (B % r"\sqrt{(x-1)^2}", r"\lvert 1-x \rvert", 1),
    (B % r"\sqrt{x^4}", "x^2", 1),
    (B % r"\sqrt{x^6}", "x^3", 0),
    (B % r"\sqrt{x^6}", "|x|^3", 1),
    (B % "|x|^2", "x^2", 1),
    (B % "|x||y|", "|xy|", 1),
    (B % r"\frac{|x|}{x}", "1", 0),
    (B % r"\sqrt{x^2y}", r"|x|\sqrt{y}", 1),
    (B % r"\sqrt{x}\sqrt{y}", r"\sqrt{xy}", 0),  # x, y < 0: only the right side is defined
    (B % r"\log(x^2)", r"2\log x", 0),  # x < 0: only the left side is defined
    (B % r"\log(x^2)", r"2\log|x|", 1),
    (B % r"\log(xy)", r"\log x+\log y", 0),
    (B % r"\ln|xy|", r"\ln|x|+\ln|y|", 1),
    (B % r"e^{\ln x}", "x", 0),  # defined for x > 0 only
    (B % r"\ln(e^x)", "x", 1),
    (B % r"\sqrt{x}^2", "x", 0),  # defined for x >= 0 only
    (B % r"x\sqrt{x}", "x^{3/2}", 1),
    (B % r"\frac{\sqrt{x}}{x}", r"\frac{1}{\sqrt{x}}", 1),
    (B % r"\sqrt[3]{-8}", "-2", 1),  # the real cube root
    (B % r"\sqrt[3]{x^3}", "x", 1),
    (B % "x^{2/3}", r"\sqrt[3]{x^2}", 1),
    (B % r"\sqrt{1-x^2}", r"\sqrt{(1-x)(1+x)}", 1),
    (B % r"\arcsin(\sin x)", "x", 0),
    (B % r"\arctan(\tan x)", "x", 0),
    (B % r"\sin(\arcsin x)", "x", 0),  # defined for |x| <= 1 only
    (B % r"\tan(\arctan x)", "x", 1),
    (B % r"\arcsin x", r"\frac{\pi}{2}-\arccos x", 1),
    (B % "x+|x-10^6|+x-10^6", "x", 0),  # equal for x < 10^6 only: a point beyond every kink
    (B % r"\sqrt{x^2}+0i", "x", 0),  # written with i: compared as complex functions, still |x| != x
]


@pytest.mark.parametrize("response,gold,expected", CASES)
def test_grade_table(response, gold, expected):
    assert grade(response, gold, **STRICT) == float(expected)


def test_strict_mode_raises_where_the_default_scores_0(monkeypatch):
    def broken(self, func, *args, timeout):
        raise RuntimeError("the worker failed")

    monkeypatch.setattr(timelimit.Worker, "call", broken)
    assert grade(r"\boxed{3}", "5") == 0.0 and grade(r"\boxed{5}", "5") == 0.0  # the default: a failure scores 0
    for response, gold, _ in CASES:  # so with a broken worker no table row can pass, the negative ones included
        with pytest.raises(RuntimeError):
            grade(response, gold, **STRICT)
    with pytest.raises(RuntimeError):
        answers_match("3", "5", strict=True)


def test_table_is_large_and_balanced():
    assert len(CASES) >= 100
    assert 0.35 < sum(e for _, _, e in CASES) / len(CASES) < 0.65


def test_answers_match_is_symmetric_on_table():
    for response, gold, expected in CASES:
        pred = extract_answer(response)
        if pred is not None and response.count(r"\boxed") == 1:
            assert answers_match(gold, pred, **STRICT) == answers_match(pred, gold, **STRICT), (pred, gold)


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"so $\boxed{\frac{1}{\sqrt{2}}}$.", r"\frac{1}{\sqrt{2}}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\fbox{7}", "7"),
        (r"\boxed{\boxed{3}}", "3"),
        (r"\boxed{ 4 }", "4"),
        (r"\boxed{4} and a truncated \boxed{5", "4"),
        ("work...\n#### 1,234\n", "1,234"),
        ("The answer is 7.", "7"),
        ("So the answer is: $x = 3$.", "x = 3"),
        ("The final answer is 2.5", "2.5"),
        ("no answer here", None),
        (r"\boxed{}", None),
        (r"\boxed{  }", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "spellings",
    [
        [r"\dfrac{1}{2}", r"\frac12", "1/2", "0.5", r"\tfrac{1}{2}", "$0.50$", r"\boxed{\frac{1}{2}}"],
        ["025", "25", "25.0", "+25", r"25\%", r"25^\circ", r"25 \text{ cm}", "x = 25"],
        [r"\$1,000", "1000", "1{,}000", r"1,\!000", "1,000.00"],
        [r"\left( 1, 2 \right)", "(1,2)", "(1, 2)"],
        [r"\text{Evelyn}", r"\textbf{Evelyn}", "Evelyn"],
        [r"\frac{\sqrt{3}}{2}", r"\dfrac{\sqrt3}{2}", r"\frac{\sqrt{3}}{2}"],
    ],
)
def test_normalize_groups_equivalent_spellings(spellings):
    assert len({normalize_answer(s) for s in spellings}) == 1, [normalize_answer(s) for s in spellings]


def test_normalize_keeps_different_answers_apart():
    answers = ["1/2", "2", "-1/2", "(1,2)", "(2,1)", "[1,2)", "52_8", "42", r"\sqrt{2}", "x^2", "Evelyn"]
    assert len({normalize_answer(a) for a in answers}) == len(answers)


def test_normalize_never_raises():
    for s in [None, "", "{" * 5000, "\\" * 999, "x" * 100_000, r"\frac{", "é ∑ 😀"]:
        assert isinstance(normalize_answer(s), str)


def test_backend_choice():
    assert GRADERS == ("builtin", "math_verify")
    with pytest.raises(ValueError, match="builtin"):
        grade(r"\boxed{1}", "1", backend="nope")


def test_math_verify_missing_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # makes `import math_verify` fail
    with pytest.raises(ImportError, match="pip install math-verify"):
        grade(r"\boxed{1}", "1", backend="math_verify")


def test_math_verify_backend():
    pytest.importorskip("math_verify")
    assert grade(r"so \boxed{\dfrac{1}{2}}", "0.5", backend="math_verify", **STRICT) == 1.0
    assert grade(r"so \boxed{\frac{1}{3}}", "0.5", backend="math_verify", **STRICT) == 0.0
    assert grade(r"\boxed{(1,2)}", "(1,2)", backend="math_verify", **STRICT) == 1.0


@contextmanager
def _stopped(worker):
    """The worker's child process stopped (SIGSTOP): it cannot answer, however fast or loaded the machine, so a
    call returns only through the time limit. Were the limit broken, the child is resumed after 120 s and the call
    ends with a late answer, a failure rather than a hang."""
    proc = worker.proc
    os.kill(proc.pid, signal.SIGSTOP)

    def resume():
        if worker.proc is proc and proc.poll() is None:  # still our stopped child, never a reused pid
            os.kill(proc.pid, signal.SIGCONT)

    fallback = threading.Timer(120, resume)
    fallback.start()
    try:
        yield
    finally:
        fallback.cancel()
        resume()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="stops the worker with a POSIX signal")
def test_time_limit_is_hard_and_the_worker_recovers():
    # Counted, never timed: the worker's timeouts and its child process, while the child cannot answer at all.
    worker = timelimit.worker("tasks.grader")
    assert grade(r"\boxed{2}", "2", **STRICT) == 1.0  # the worker is up
    timeouts, first = worker.timeouts, worker.proc.pid
    with _stopped(worker):
        assert grade(r"\boxed{2}", "2", timeout=0.05) == 0.0  # a right answer: this 0 is the limit, not a verdict
    assert worker.timeouts == timeouts + 1 and worker.proc is None  # the stopped child was killed
    assert grade(r"\boxed{2\sqrt{2}}", r"\sqrt{8}", **STRICT) == 1.0  # a fresh child took over
    assert worker.proc.pid != first
    with _stopped(worker), pytest.raises(TimeoutError):
        grade(r"\boxed{2}", "2", timeout=0.05, strict=True)
    assert worker.timeouts == timeouts + 2
    assert grade(r"\boxed{2}", "2", **STRICT) == 1.0


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="stops the worker with a POSIX signal")
def test_worker_time_limit_holds_for_any_call():
    worker = timelimit.Worker("time")
    try:
        assert worker.call("sleep", 0, timeout=30) is None
        first = worker.proc.pid
        with _stopped(worker), pytest.raises(TimeoutError):  # sleep(0) returns at once in a child that can run
            worker.call("sleep", 0, timeout=0.3)
        assert worker.timeouts == 1 and worker.proc is None  # the overrunning child was killed
        assert worker.call("sleep", 0, timeout=30) is None  # restarted
        assert worker.proc.pid != first
        with pytest.raises(RuntimeError, match="TypeError"):
            worker.call("sleep", "x", timeout=30)  # an error inside is reported, the worker stays up
    finally:
        worker.close()


def test_bad_timeout_is_the_callers_bug():
    with pytest.raises(ValueError):
        grade(r"\boxed{1}", "1", timeout=0)
    with pytest.raises(ValueError):
        grade(r"\boxed{1}", "1", timeout="soon")


def test_same_verdicts_and_bound_on_every_thread():
    rng = random.Random(7)
    cases = [
        (r"\boxed{2\sqrt{2}}", r"\sqrt{8}"),
        (r"\boxed{\dfrac{1}{2}}", "0.5"),
        (r"\boxed{\pi^{1000}}", "5"),
        (r"\boxed{(x+1)^2}", "x^2+2x+1"),
        ("x" * 17_000 + r"\boxed{3}", "3"),
    ]
    cases += [(_random_text(rng), _random_text(rng)) for _ in range(40)]
    on_main = [grade(y, g, **STRICT) for y, g in cases]  # strict: two timeouts would agree on 0 vacuously
    off_main = []
    t = threading.Thread(target=lambda: off_main.extend(grade(y, g, **STRICT) for y, g in cases))
    t.start()
    t.join()
    assert off_main == on_main
    assert on_main[:5] == [1.0, 1.0, 0.0, 1.0, 1.0]


def test_huge_responses_are_bounded(monkeypatch):
    # 5 MB: only the tail is read. Counted as the characters the grader's worker receives, not timed.
    received = []
    call = timelimit.Worker.call

    def counting(self, func, *args, timeout):
        received.append(len(args[0]))
        return call(self, func, *args, timeout=timeout)

    monkeypatch.setattr(timelimit.Worker, "call", counting)
    huge = r"\boxed{1}" * 500_000 + r"\boxed{7}"
    assert grade(huge, "7", **STRICT) == 0.0  # the tail still boxes 1 as well: not committed
    assert grade("x" * 5_000_000 + r"\boxed{7}", "7", **STRICT) == 1.0
    assert not answers_match("7" * 5_000_000, "7", **STRICT)
    assert received == [MAX_RESPONSE_CHARS] * 3


FRAGMENTS = [
    r"\boxed{",
    r"\fbox{",
    "}",
    "{",
    "(",
    ")",
    "[",
    "]",
    r"\{",
    r"\}",
    r"\frac",
    r"\dfrac",
    r"\sqrt",
    "^",
    "_",
    "!",
    "-",
    "+",
    "*",
    "/",
    "=",
    ",",
    ".",
    " or ",
    "####",
    "The answer is ",
    r"\text{",
    r"\left(",
    r"\right)",
    r"\pi",
    r"\infty",
    r"\cdot",
    r"\pm",
    r"\cup",
    r"\circ",
    "%",
    "$",
    r"\$",
    "x",
    "y",
    "i",
    "e",
    r"\sin",
    r"\log",
    r"\begin{pmatrix}",
    r"\end{pmatrix}",
    "&",
    r"\\",
    "\\",
    "0",
    "7",
    "12",
    "025",
    "3.14",
    "1,000",
    "999999999999",
    "10^{10^{10}}",
    "9^{9^{9}}",
    "é",
    "∑",
    "😀",
    "\x00",
    "\n",
    "\t",
]


def _random_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.02:
        return rng.choice(["{", "(", r"\frac{", r"\sqrt{", "^{", r"\boxed{"]) * rng.randint(100, 5000)
    if kind < 0.04:
        return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(2000, 20000)))
    if kind < 0.10:
        return "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 300)))
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 30)))


def test_fuzz_grade_never_fails_and_is_bounded():
    # Strict: a failure inside the worker raises, and so does a call that never ends (STRICT's limit is a hang
    # guard, far above any call's work). The work is counted as the worker's children: one for all 2000 strings,
    # none killed or crashed. How fast each call is, is bench/'s business, never a test's.
    rng = random.Random(1234)
    worker = timelimit.worker("tasks.grader")
    grade(r"\boxed{1}", "1", **STRICT)
    timeouts, child = worker.timeouts, worker.proc.pid
    reflexive = 0
    for _ in range(2000):
        response, gold = _random_text(rng), _random_text(rng)
        if rng.random() < 0.5:  # also exercise the boxed path with a matching gold
            response, gold = rf"so \boxed{{{gold}}}", gold
        reward = grade(response, gold, **STRICT)
        assert reward in (0.0, 1.0) and isinstance(reward, float)
        reflexive += response == rf"so \boxed{{{gold}}}" and reward == 1.0
    assert worker.timeouts == timeouts and worker.proc.pid == child
    assert reflexive > 100  # the fuzz really reaches the matching code, not only failures


def test_a_power_after_a_functions_parentheses_is_the_functions():
    assert answers_match(r"\sin(x)^2", r"\sin^2(x)")  # (sin x)^2, as written
    assert answers_match(r"\sin x^2", r"\sin(x^2)")  # without parentheses the power stays with x
    assert not answers_match(r"\sin(x)^2", r"\sin(x^2)")
    assert answers_match(r"\log(2)x", r"x\log 2")


@pytest.mark.parametrize(
    "pred, gold",
    [
        (r"x+y+|y-10^6|+y-10^6", "x+y"),  # equal only for y <= 10^6, beyond every sampled band
        (r"x+y+|x-y-10^6|+x-y-10^6", "x+y"),  # the kink runs across both variables
        (r"xy+\sqrt{(y-2\cdot 10^6)^2}+y-2\cdot 10^6", "xy"),
    ],
)
def test_several_variables_differing_only_far_out_are_not_equal(pred, gold):
    # the zeros of what is under |.| or a root are isolated along each variable's axis, the others held
    assert grade(rf"\boxed{{{pred}}}", gold, **STRICT) == 0.0
