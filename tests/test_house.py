"""The house: the top level is the design card, imports flow one way, the scripts show their learning settings, and
one RL step runs through the number of lines the README says, on the reference path and with the default sampler.
Run it (`python tests/test_house.py`) to list the definitions one step enters, file by file."""

import ast
import os
import re
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "train_task.py"  # one default toy step of it: the task reward, the toy model and data
FOLDERS = ("family", "plumbing", "tasks", "toy_models")  # each one room in the import graph
PATHS = {"reference": ["--plain-rollout"], "default": []}  # rollout.py's sampler; plumbing/fast_rollout.py's


def ours(path):
    """A file of this repo (not of a virtualenv inside it, as CI's .venv-ci is)."""
    return path.startswith(ROOT + os.sep) and "site-packages" not in path


def route(out, *argv):
    """What one default toy step of the script runs, {file: lines}, and the definitions counted, {file: {(first,
    last line)}}: the script whole, and each definition of this repo the step enters (a function or method, whole;
    a nested one counted in its outermost)."""
    from conftest import run_loop, trainer_setup

    setup = trainer_setup(SCRIPT, "--out", out, *argv)
    for module in list(sys.modules.values()):  # a call a cache answers enters nothing: start every cache empty
        if ours(getattr(module, "__file__", None) or ""):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()
    entered, before = set(), sys.gettrace()

    def trace(frame, event, arg):
        path = frame.f_code.co_filename
        if event == "call" and ours(path) and os.sep + "tests" + os.sep not in path:
            entered.add((os.path.relpath(path, ROOT), frame.f_code.co_firstlineno))

    sys.settrace(trace)
    try:
        run_loop(SCRIPT, setup, step=0)
    finally:
        sys.settrace(before)
    spans = {}
    for file, line in entered - {(SCRIPT, 1)}:  # the script's own statements: counted whole below
        tree = ast.parse(open(os.path.join(ROOT, file)).read())
        around = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        around = [(min([n.lineno] + [d.lineno for d in n.decorator_list]), n.end_lineno) for n in around]
        around = [(a, b) for a, b in around if a <= line <= b]
        if file == SCRIPT and not around:
            continue  # a comprehension in the loop: the script's own lines
        assert around, f"{file}:{line} runs outside any definition"
        spans.setdefault(file, set()).add(min(around))  # the outermost: it starts first
    counts = {SCRIPT: len(open(os.path.join(ROOT, SCRIPT)).read().splitlines())}
    counts |= {file: sum(b - a + 1 for a, b in spans[file]) for file in sorted(spans) if file != SCRIPT}
    return counts, spans


def room_of(path):
    """A top-level module is a room; a folder is one room."""
    first = path.split(os.sep)[0]
    return first if first in FOLDERS else path


def imports_of(path):
    """The rooms a file imports (our modules only)."""
    rooms = set()
    for node in ast.walk(ast.parse(open(os.path.join(ROOT, path)).read())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            head = name.split(".")[0]
            if head in FOLDERS:
                rooms.add(head)
            elif os.path.exists(os.path.join(ROOT, head + ".py")):
                rooms.add(head + ".py")
    return rooms


def code_files():
    for folder in ("", *FOLDERS):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                yield os.path.join(folder, name) if folder else name


def test_the_top_level_holds_at_most_ten_modules():
    top = [f for f in os.listdir(ROOT) if f.endswith(".py")]
    assert len(top) <= 10, f"{len(top)} top-level modules: {sorted(top)}; move the ones a reader of one step skips into a folder"


def test_imports_flow_one_way():
    graph = {}
    for path in code_files():
        graph.setdefault(room_of(path), set()).update(imports_of(path) - {room_of(path)})
    state = {}

    def visit(room, trail):
        if state.get(room) == "done":
            return
        assert state.get(room) != "open", "import circle: " + " -> ".join(trail + [room])
        state[room] = "open"
        for other in sorted(graph.get(room, ())):
            visit(other, trail + [room])
        state[room] = "done"

    for room in sorted(graph):
        visit(room, [])


def test_training_never_imports_the_evaluation_script():
    for path in ("train_task.py", "train_sharpen.py", "trainer.py"):
        assert "evaluate.py" not in imports_of(path), f"{path} imports evaluate.py: sample through rollout.py instead"


def test_the_readme_states_the_routes_real_length(tmp_path, keep_signals):
    """README: 'One RL step, in the order it runs: A lines in B files on the reference path (...), C lines in D files
    with the default sampler': the counts of route(), by tracing one step each way."""
    if any('NotImplementedError("exercise' in open(os.path.join(ROOT, f)).read() for f in code_files()):
        pytest.skip("a student copy of the course: its blanked functions stop the step")
    counted = {name: route(str(tmp_path / name), *argv)[0] for name, argv in PATHS.items()}
    readme = open(os.path.join(ROOT, "README.md")).read()
    pattern = (
        r"One RL step, in the order it runs: (\d+) lines in (\d+) files on the reference path.*?(\d+) lines in (\d+) files with"
    )
    stated = re.search(pattern + r"\s+the default sampler", readme, re.S)
    assert stated, (
        "README: 'One RL step, in the order it runs: A lines in B files on the reference path (...), C lines in D files with the default sampler'"
    )
    said = {"reference": tuple(map(int, stated.group(1, 2))), "default": tuple(map(int, stated.group(3, 4)))}
    real = {name: (sum(counts.values()), len(counts)) for name, counts in counted.items()}
    assert said == real, f"README says {said} (lines, files), the step runs {real}: {counted}"
    assert set(counted["default"]) - set(counted["reference"]) == {"plumbing/fast_rollout.py"}  # the one difference


def test_the_scripts_show_their_learning_settings():
    """Each trainer's docstring shows the settings that depend on the task, as options.DEFAULTS holds them."""
    sys.path.insert(0, ROOT)
    from plumbing.options import DEFAULTS

    for script in ("train_task.py", "train_sharpen.py"):
        doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, script)).read()))
        rows = re.findall(r"^    --([a-z-]+) +(\S+) +(\S+) +(\S+) ", doc, re.M)
        shown = {flag.replace("-", "_"): tuple(map(float, values)) for flag, *values in rows}
        held = {key: tuple(float(DEFAULTS[task][key]) for task in ("toy", "arith", "real")) for key in shown}
        assert set(shown) >= {"lr", "steps", "prompts_per_step", "warmup"} and shown == held, (script, shown, held)
        assert "x --group-size 8 samples each" in doc  # the parser's default G


if __name__ == "__main__":
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
    for name, argv in PATHS.items():
        with tempfile.TemporaryDirectory() as out:
            counts, spans = route(out, *argv)
        print(f"{name} path ({' '.join(argv) or 'the default'}): {sum(counts.values())} lines in {len(counts)} files")
        for file, n in counts.items():
            where = "whole" if file == SCRIPT else ", ".join(f"{a}-{b}" for a, b in sorted(spans[file]))
            print(f"  {file:26s} {n:4d}  (lines {where})")
