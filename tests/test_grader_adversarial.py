"""The task reward cannot be gamed: tasks/adversarial.py's cases (overflowing and infinite values against
ordinary golds, big equal and big different numbers, false and true identities, identities that hold on
part of the real line only, hedges, numbers spelled to be read as other numbers) all get the reward they
deserve from the built-in grader, on the main thread and off it. Graded in strict mode (a worker failure or
overrun raises), so every 0 is a verdict."""

import threading

from tasks import adversarial, timelimit
from tasks.grader import answers_match, grade

STRICT = dict(timeout=30.0, strict=True)


def test_the_set_is_large_and_covers_every_kind():
    cases = adversarial.cases()
    assert len(cases) >= 150
    assert len(adversarial.OVERFLOWING) * len(adversarial.ORDINARY_GOLDS) >= 150
    assert 40 <= sum(e for *_, e in cases) < len(cases) // 2  # true equalities are there too


def test_every_adversarial_case_gets_the_reward_it_deserves():
    # Strict: a failure inside the worker, or a call that never ends, raises instead of scoring 0. The work is
    # counted as the worker's children: one for the whole set, none killed or crashed. The time each case takes
    # is measured by bench/bench_grader_vs_math_verify.py, never bounded here.
    worker = timelimit.worker("tasks.grader")
    grade(r"\boxed{1}", "1", **STRICT)
    timeouts, child = worker.timeouts, worker.proc.pid
    wrong = [(y, g, e) for y, g, e in adversarial.cases() if grade(y, g, **STRICT) != e]
    assert wrong == []
    assert worker.timeouts == timeouts and worker.proc.pid == child


def test_one_fixed_response_cannot_score_on_every_problem():
    # The defect this file exists for: pi^1000 overflowed a float and then equalled every gold.
    for gold in adversarial.ORDINARY_GOLDS:
        assert grade(r"\boxed{\pi^{1000}}", gold, **STRICT) == 0.0
    assert grade(r"\boxed{\pi^{1000}}", r"\pi^{1000}", **STRICT) == 1.0


def test_more_forms_that_are_no_ordinary_number():
    for pred in [
        r"\cosh(1000)",
        r"\sinh(10000)",
        r"\tan(\pi/2)",
        r"\log(0)",
        r"\frac{1}{\sin(\pi)}",
        r"e^{1000!}",
        r"10^{10^{3}}",
        "1000!",
        r"e^{1000 i}",
        r"\exp(5000)",
        r"9^{9^{9}}",
    ]:
        for gold in ["5", "0", r"\frac{1}{2}", "x"]:
            assert not answers_match(pred, gold, **STRICT), (pred, gold)


def test_verdicts_do_not_depend_on_the_thread():
    cases = adversarial.cases()[::7]
    on_main = [grade(y, g, **STRICT) for y, g, _ in cases]
    off_main = []
    t = threading.Thread(target=lambda: off_main.extend(grade(y, g, **STRICT) for y, g, _ in cases))
    t.start()
    t.join()
    assert off_main == on_main == [e for *_, e in cases]
