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


@pytest.mark.parametrize("inside", ["exercises/course", ".", "tests/../course"])
def test_a_handout_inside_the_repo_is_refused_before_anything_is_written(monkeypatch, inside):
    """A copy inside the repo would copy itself, again and again (until the path is too long): one line, no tree."""
    monkeypatch.setattr(make_handout.shutil, "copytree", lambda *args, **kwargs: pytest.fail("the copy started"))
    out = os.path.join(ROOT, inside)
    with pytest.raises(SystemExit) as err:
        make_handout.make_handout(out)
    message = str(err.value)
    assert message.startswith("error: ") and "\n" not in message and "nothing was written" in message
    assert "inside the repo" in message or "exists" in message
    assert not os.path.exists(os.path.join(ROOT, "exercises", "course")) and not os.path.exists(os.path.join(ROOT, "course"))


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


def solution_text(file, function):
    """What gives away a function's solution, whitespace and quotes ignored (`squeezed`): each line of its body
    (comments and lines shorter than 12 characters, too common to say anything, left out), each of its
    statements as ast writes it (compound ones by their first line), and each expression of 30 characters or more
    but a call whose arguments are plain names (its signature, which the handout gives)."""
    source = open(os.path.join(ROOT, file)).read()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function)
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    lines = source.splitlines()[body[0].lineno - 1 : node.end_lineno]
    found = {squeezed(line.split("#")[0]) for line in lines}
    for statement in body:
        if isinstance(statement, ast.Raise) and "NotImplementedError" in ast.unparse(statement):
            continue  # a blank (in a student copy)
        for sub in ast.walk(statement):
            if isinstance(sub, ast.stmt):
                found.add(squeezed(ast.unparse(sub).split("\n")[0]))
            elif isinstance(sub, ast.expr) and not (
                isinstance(sub, ast.Call) and all(isinstance(a, ast.Name) for a in [*sub.args, *[k.value for k in sub.keywords]])
            ):
                found |= {text for text in [squeezed(ast.unparse(sub))] if len(text) >= 30}
    return {text for text in found if len(text) >= 12 and not text.startswith("raiseNotImplementedError(")}


def squeezed(text):
    return "".join(text.split()).replace('"', "'")


# Where solution text may stand in the copy, and why (file, the function whose source is not searched)
ALLOWED = {
    ("tests/test_rewards.py", "dist_sharpening_reward"): "the authors' transform written out, the reference the grade "
    "compares with: the handout's formula itself, not a hint next to a blank",
    ("theory.py", "score_table"): "lists every token string as exercise 5's first line does: the exercise is the rest "
    "(where each response ends, one spelling per response)",
}


def searched_text(path, relative):
    """A file's text as the leak check reads it: squeezed, and without the source of the ALLOWED functions."""
    with open(path, errors="ignore") as f:
        text = f.read()
    for file, function in ALLOWED:
        if file == relative:
            node = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == function)
            lines = text.splitlines(keepends=True)
            text = "".join(lines[: node.lineno - 1] + lines[node.end_lineno :])
    return squeezed(text)


def leaks_in(folder):
    """(file, the function it gives away, the text) for every solution text anywhere in the files under `folder`,
    code or string, comment or prose."""
    solutions = {text: function for e in WITH_CODE for file, function in e.functions for text in solution_text(file, function)}
    found = []
    for here, folders, names in os.walk(folder):
        folders[:] = [f for f in folders if f not in make_handout.SKIP]  # .git: history, caches
        for name in names:
            relative = os.path.relpath(os.path.join(here, name), folder)
            text = searched_text(os.path.join(here, name), relative)
            found += [(relative, function, solution) for solution, function in solutions.items() if solution in text]
    return found


def test_the_student_copy_holds_no_solution(tmp_path):
    copy = make_handout.make_handout(str(tmp_path / "course"))
    assert not os.path.exists(os.path.join(copy, ".git")), "the history (with every solution) was copied"
    for path in make_handout.INSTRUCTORS:  # the key, the instructors' notes, CI, the mutation tool (which quotes solutions)
        assert not os.path.exists(os.path.join(copy, path)), f"{path} was copied"
    leaks = leaks_in(copy)
    assert not leaks, f"solution text in the student copy (file, the function it solves, the text): {leaks}"


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "exercises", make_handout.KEY)), reason="a student copy: no solution")
def test_the_leak_check_finds_the_solutions_where_they_are():
    """The check above can fail: in the repo it finds every exercise's solution, and the lines the mutation tool
    quotes in its strings; and the instructor's files it leaves out of the copy are there to leave out."""
    assert all(os.path.exists(os.path.join(ROOT, path)) for path in make_handout.INSTRUCTORS)
    repo_leaks = {(file, function) for file, function, _ in leaks_in(ROOT)}
    assert {(file, function) for e in WITH_CODE for file, function in e.functions} <= repo_leaks
    quoted = {function for file, function in repo_leaks if file == "tests/mutations.py"}
    assert {"policy_loss", "token_weights", "tempered_reward", "pass_at_k"} <= quoted, quoted


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
        # the real model's tests load a 135M-parameter model and grade no exercise: left out of the copy's run
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "not slow",
            "-p",
            "no:cacheprovider",
            "--ignore=tests/test_real_model.py",
            f"--junitxml={report}",
        ],
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
