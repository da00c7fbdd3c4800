"""The course cannot drift from the code: in the student copy that exercises/make_handout.py writes, exactly
the graded tests of exercises/course.py fail, each with the NotImplementedError of an exercise that lists it,
and every other fast test passes. (In this repo the same tests pass: they are part of the suite.)"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import make_handout
from conftest import ROOT
from course import EXERCISES

pytestmark = pytest.mark.slow  # one run of the fast tests in the copy: about a minute


def test_blank_keeps_the_signature_and_docstring_and_nothing_else():
    source = 'import x\n\n\ndef f(a, b=1):\n    """Doc."""\n    c = a + b  # note\n    return c\n\n\ndef g():\n    return 2\n'
    out = make_handout.blank(source, "f", "exercise 9: see exercises/9-x.md")
    assert out == (
        'import x\n\n\ndef f(a, b=1):\n    """Doc."""\n    raise NotImplementedError("exercise 9: see '
        'exercises/9-x.md")\n\n\ndef g():\n    return 2\n'
    )
    with pytest.raises(SystemExit, match="no single top-level function"):
        make_handout.blank(source, "h", "x")


def test_every_listed_function_and_test_exists():
    for exercise in EXERCISES:
        assert os.path.exists(os.path.join(ROOT, "exercises", exercise.handout)), exercise.handout
        for file, function in exercise.functions:
            assert f"\ndef {function}(" in open(os.path.join(ROOT, file)).read(), (file, function)
        for nodeid in exercise.graded:
            file, test = nodeid.split("::")
            assert f"def {test}(" in open(os.path.join(ROOT, file)).read(), nodeid


def test_exactly_the_graded_tests_fail_in_the_student_copy(tmp_path):
    copy = make_handout.make_handout(str(tmp_path / "course"))
    report = tmp_path / "report.xml"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=copy,
        env=env,
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
    graded = {nodeid for e in EXERCISES for nodeid in e.graded}
    assert {name.split("[")[0] for name in failed} == graded  # every graded test fails, no other test does
    for name, message in failed.items():
        numbers = [e.number for e in EXERCISES if name.split("[")[0] in e.graded]
        assert "NotImplementedError" in message and any(f"exercise {n}:" in message for n in numbers), (name, message)
    assert passed > 250  # the rest of the fast suite ran, and passed
