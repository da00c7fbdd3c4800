"""The course cannot drift from the code. In the student copy that exercises/make_handout.py writes, exactly
the graded tests of exercises/course.py (and the TOGETHER tests, which need several exercises) fail, each with
the NotImplementedError of an exercise it needs, and every other fast test passes. Each exercise can be passed
alone: with every other exercise blank and its own functions restored, its graded tests and `see.py N` pass;
with only it blank, they fail. No solution is left in the copy. (In this repo the same tests pass.)"""

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import make_handout
from conftest import ROOT
from course import EXERCISES, TOGETHER

WITH_CODE = [e for e in EXERCISES if e.functions]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")  # files are rewritten in place between runs


def test_blank_keeps_the_signature_and_docstring_and_nothing_else():
    source = 'import x\n\n\ndef f(a, b=1):\n    """Doc."""\n    c = a + b  # note\n    return c\n\n\ndef g():\n    return 2\n'
    out = make_handout.blank(source, "f", "exercise 9: see exercises/9-x.md")
    assert out == (
        'import x\n\n\ndef f(a, b=1):\n    """Doc."""\n    raise NotImplementedError("exercise 9: see '
        'exercises/9-x.md")\n\n\ndef g():\n    return 2\n'
    )
    with pytest.raises(SystemExit, match="no single top-level function"):
        make_handout.blank(source, "h", "x")


def test_every_listed_function_test_and_demo_exists():
    import see

    for exercise in EXERCISES:
        assert os.path.exists(os.path.join(ROOT, "exercises", exercise.handout)), exercise.handout
        for file, function in exercise.functions:
            assert f"\ndef {function}(" in open(os.path.join(ROOT, file)).read(), (file, function)
        for nodeid in exercise.graded + tuple(TOGETHER):
            file, test = nodeid.split("::")
            assert f"def {test}(" in open(os.path.join(ROOT, file)).read(), nodeid
        assert (exercise.number in see.SEE) == bool(exercise.functions), f"exercises/see.py: no demo for {exercise.number}"
    assert all(set(needs) <= {e.number for e in WITH_CODE} and len(needs) > 1 for needs in TOGETHER.values())


def body_lines(file, function):
    """The code lines of a function's body in the repo (docstring and comments left out)."""
    source = open(os.path.join(ROOT, file)).read()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function)
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    lines = source.splitlines()[body[0].lineno - 1 : node.end_lineno]
    return {code(line) for line in lines if not code(line).startswith("raise NotImplementedError(")} - {"", "else:"}


def code(line):
    return line.split("#")[0].strip()


# Lines that may match a solution: the authors' own formula, written out as the reference a test grades against
# (it is the handout's formula itself, not a hint next to a blank).
SPEC = {("tests/test_rewards.py", "return (alpha - 1) * norm_ref + (ref_sum - policy_sum)")}


def test_the_student_copy_holds_no_solution(tmp_path):
    copy = make_handout.make_handout(str(tmp_path / "course"))
    assert not os.path.exists(os.path.join(copy, "exercises", make_handout.KEY)), "the instructor's key was copied"
    assert not os.path.exists(os.path.join(copy, ".git")), "the history (with every solution) was copied"
    solutions = {
        line: (file, function) for e in WITH_CODE for file, function in e.functions for line in body_lines(file, function)
    }
    leaks = []
    for folder, _, names in os.walk(copy):
        for name in names:
            path = os.path.relpath(os.path.join(folder, name), copy)
            with open(os.path.join(copy, path), errors="ignore") as f:
                lines = [(i, code(line)) for i, line in enumerate(f, 1)]
            leaks += [(path, i, solutions[line]) for i, line in lines if line in solutions and (path, line) not in SPEC]
    assert not leaks, f"solution lines left in the student copy (file, line number, the function they solve): {leaks}"


def run_graded(copy, exercise, *options):
    """pytest on the exercise's graded tests only (their files, -m exercise_N) and its demo: (pytest, demo)."""
    files = sorted({nodeid.split("::")[0] for nodeid in exercise.graded})
    grade = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        f"exercise_{exercise.number}",
        *options,
        *files,
    ]
    demo = [sys.executable, "exercises/see.py", str(exercise.number)]
    return [subprocess.run(command, cwd=copy, env=ENV, capture_output=True, text=True, timeout=600) for command in (grade, demo)]


@pytest.mark.slow
def test_each_exercise_passes_alone_in_any_order(tmp_path):
    copy = make_handout.make_handout(str(tmp_path / "course"))
    numbers = [e.number for e in WITH_CODE]
    for exercise in WITH_CODE:
        n = exercise.number
        make_handout.set_blanks(copy, [m for m in numbers if m != n])  # every other exercise still blank, this one done
        grade, demo = run_graded(copy, exercise)
        assert grade.returncode == 0, (
            f"exercise {n} done, the others blank: its graded tests need another exercise\n{grade.stdout[-3000:]}"
        )
        assert demo.returncode == 0, f"exercise {n} done, the others blank: exercises/see.py {n} fails\n{demo.stderr[-3000:]}"
        make_handout.set_blanks(copy, [n])  # only this one blank
        grade, demo = run_graded(copy, exercise, "-x")  # one failure is enough
        assert grade.returncode == 1 and f"exercise {n}:" in grade.stdout, (
            f"exercise {n} blank, yet its tests pass\n{grade.stdout[-3000:]}"
        )
        assert demo.returncode != 0 and f"exercise {n}:" in demo.stderr, f"exercise {n} blank, yet see.py {n} runs"


@pytest.mark.slow
def test_exactly_the_graded_tests_fail_in_the_student_copy(tmp_path):
    copy = make_handout.make_handout(str(tmp_path / "course"))
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=copy,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    failed, passed = {}, 0
    for case in ET.parse(report).iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        name = f"{case.get('classname').replace('.', '/')}.py::{case.get('name')}"
        if problem is not None:
            failed[name] = (problem.get("message") or "") + (problem.text or "")
        elif case.find("skipped") is None:
            passed += 1
    needs = {nodeid: {e.number} for e in EXERCISES for nodeid in e.graded} | {k: set(v) for k, v in TOGETHER.items()}
    assert {name.split("[")[0] for name in failed} == set(needs)  # every graded test fails, no other test does
    for name, message in failed.items():
        assert "NotImplementedError" in message and any(f"exercise {n}:" in message for n in needs[name.split("[")[0]]), (
            name,
            message,
        )
    assert passed > 250  # the rest of the fast suite ran, and passed
