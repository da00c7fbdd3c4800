"""The house: the top level is the design card, imports flow one way, and one RL step reads in the number of
lines the README says. Run it (`python tests/test_house.py`) to print the route's line count."""

import ast
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One RL step of train_task.py, as a student follows it (the fast sampler and the plumbing behind run.* left
# out): each file whole, or the definitions the step reaches.
ROUTE = {
    "train_task.py": None,
    "rollout.py": None,
    "loss.py": None,
    "rewards.py": ["normalized_likelihood", "tempered_reward", "tilted_reward", "TaskGrader"],
    "model.py": [
        "autocast",
        "eos_ids",
        "position_ids_from_mask",
        "_logprob_chunk",
        "response_logprobs",
        "_response_logprobs",
        "head_logprobs",
        "micro_batches",
    ],  # fmt: skip
}
FOLDERS = ("family", "plumbing", "tasks", "toy_models")  # each one room in the import graph


def route_lines():
    counts = {}
    for file, names in ROUTE.items():
        source = open(os.path.join(ROOT, file)).read()
        if names is None:
            counts[file] = len(source.splitlines())
            continue
        defs = {node.name: node for node in ast.parse(source).body if hasattr(node, "name")}
        assert set(names) <= set(defs), f"{file} no longer defines {set(names) - set(defs)}: update ROUTE"
        counts[file] = sum(
            defs[n].end_lineno - min([defs[n].lineno] + [d.lineno for d in defs[n].decorator_list]) + 1 for n in names
        )
    return counts


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


def test_the_readme_states_the_routes_real_length():
    if any('NotImplementedError("exercise' in open(os.path.join(ROOT, f)).read() for f in ROUTE):
        pytest.skip("a student copy of the course: its blanked functions change the route's length")
    counts = route_lines()
    total = sum(counts.values())
    assert len(counts) <= 5 and total <= 500, counts
    readme = open(os.path.join(ROOT, "README.md")).read()
    stated = re.search(r"One RL step, in the order it runs, in (\w+) files and (\d+) lines", readme)
    assert stated, "README: the reading order must say 'One RL step, in the order it runs, in N files and M lines'"
    assert int(stated.group(2)) == total, f"README says {stated.group(2)} lines, the route has {total}: {counts}"


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    counts = route_lines()
    for file, n in counts.items():
        print(f"{file:15s} {n:4d}" + ("" if ROUTE[file] is None else f"  ({', '.join(ROUTE[file])})"))
    print(f"{'total':15s} {sum(counts.values()):4d}")
