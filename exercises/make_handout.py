"""
Make the student copy of the repo: every file as it is, except that the functions of the chosen exercises
(course.py) keep their signature and docstring and lose their body, which becomes
`raise NotImplementedError("exercise N: see exercises/N-....md")`. No marker lives in the main code: the
list of functions is exercises/course.py, and the rewrite goes through Python's own parser (ast), so a function is
found by its name wherever it sits in the file.

    python exercises/make_handout.py ../course            # every exercise blanked
    python exercises/make_handout.py ../course --only 1 3 # exercises 1 and 3 only

A student then works in ../course and grades an exercise with `python -m pytest -m exercise_1`.
"""

import argparse
import ast
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from course import EXERCISES  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "instructor-key.md"  # the expected answers and the rubric: the instructor's, never in the student copy
SKIP = {".git", "runs", "__pycache__", ".pytest_cache", ".ruff_cache"}  # history, results, caches: anywhere
# and these, for the instructor only: the key, the instructors' notes, the CI script, and the mutation tool (its
# mutants quote the lines the students write)
INSTRUCTORS = {f"exercises/{KEY}", "exercises/README.md", ".ci", "tests/mutations.py"}


def blank(source, function, message):
    """`source` with the body of the top-level `function` replaced by a NotImplementedError (docstring kept)."""
    tree = ast.parse(source)
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function]
    if len(found) != 1:
        raise SystemExit(f"error: no single top-level function {function!r} to blank: exercises/course.py and the code disagree")
    node = found[0]
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    if not body:
        raise SystemExit(f"error: {function!r} has no body to blank")
    lines = source.splitlines(keepends=True)
    indent = " " * body[0].col_offset
    start, end = body[0].lineno - 1, node.end_lineno  # the body's lines, 0-based, end exclusive
    return "".join(lines[:start] + [f'{indent}raise NotImplementedError("{message}")\n'] + lines[end:])


def make_handout(out, numbers=None):
    """Copy the repo to `out` (which must not exist, nor lie inside the repo) and blank the chosen exercises'
    functions there."""
    if os.path.exists(out):
        raise SystemExit(f"error: {out} exists: choose a new folder (nothing was written)")
    if os.path.commonpath([os.path.realpath(out), os.path.realpath(ROOT)]) == os.path.realpath(ROOT):
        raise SystemExit(
            f"error: {out} is inside the repo, which the copy would copy into itself: choose a folder outside {ROOT} (nothing was written)"
        )
    shutil.copytree(ROOT, out, ignore=left_out)
    set_blanks(out, numbers or [e.number for e in EXERCISES])
    return out


def left_out(folder, names):
    """What shutil.copytree leaves out of the student copy in `folder`: SKIP, virtualenvs, INSTRUCTORS."""
    here = os.path.relpath(folder, ROOT)
    inside = [os.path.normpath(os.path.join(here, name)) for name in names]
    return [n for n, path in zip(names, inside) if n in SKIP or n.startswith(".venv") or path in INSTRUCTORS]


def set_blanks(out, numbers):
    """Rewrite, in the copy `out`, every file that holds an exercise's function: from the repo's own source, with
    exactly the functions of the exercises `numbers` blanked (the others as the repo has them)."""
    files = {file for e in EXERCISES for file, _ in e.functions}
    for file in sorted(files):
        with open(os.path.join(ROOT, file)) as f:
            source = f.read()
        for exercise in EXERCISES:
            if exercise.number in numbers:
                message = f"exercise {exercise.number}: see exercises/{exercise.handout}"
                for function in [fn for fl, fn in exercise.functions if fl == file]:
                    source = blank(source, function, message)
        with open(os.path.join(out, file), "w") as f:
            f.write(source)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the folder to write the student copy to (must not exist)")
    p.add_argument("--only", type=int, nargs="+", metavar="N", help="blank only these exercises (default: all)")
    args = p.parse_args()
    known = {e.number for e in EXERCISES}
    if args.only and not set(args.only) <= known:
        p.error(f"--only: exercises are {sorted(known)}")
    make_handout(args.out, args.only)
    print(f"wrote the student copy to {args.out}")


if __name__ == "__main__":
    main()
