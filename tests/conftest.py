import ast
import os
import sys
from types import SimpleNamespace

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def tiny_qwen(vocab_size=64, seed=0, **overrides):
    """A randomly initialised stock Qwen2, small enough for CPU tests (eos = 1, pad = 0)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=1,
        pad_token_id=0,
        bos_token_id=None,
    )
    config.update(overrides)
    return Qwen2ForCausalLM(Qwen2Config(**config)).eval()


@pytest.fixture
def model():
    return tiny_qwen()


@pytest.fixture
def keep_signals():
    """trainer.Run installs SIGINT/SIGTERM/SIGHUP handlers (and a finished run ignores them): give pytest its own back."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="session")
def toy_path():
    return os.path.join(ROOT, "toy_models", "toy")


def trainer_reward(script, mode, args=None, **inputs):
    """R from the trainer's own lines, from the reward's inputs (ref_sum and norm_ref) up to the advantages (the
    `if args.mode == ...` chain and any statement after it), on the given tensors (ref_logp and logp per token, roll,
    r, ...)."""
    import rewards

    options = dict(mode=mode, alpha=1.0, b=1.0, normalization="sum", length_power=0.5) | (args or {})
    scope = dict(args=SimpleNamespace(**options), torch=torch, rewards=rewards, **inputs)
    exec(loop_lines(script, "ref_sum, logp_pi =", "A = group_advantages", last_included=False), scope)
    return scope["R"]


def _statements(script):
    return ast.parse(open(os.path.join(ROOT, script)).read()).body


def _find(script, sources, start):
    """The index of the one statement whose source starts with `start`; a clear failure when there is none or several."""
    found = [k for k, s in enumerate(sources) if s.startswith(start)]
    if len(found) != 1:
        raise AssertionError(
            f"{script}: {len(found)} statements start with {start!r}, not one: the script changed, update the test"
        )
    return found[0]


def loop_lines(script, first, last, last_included=True):
    """A trainer's own statements, compiled from its RL loop: from the one whose source starts with `first` to the
    one that starts with `last` (included, or not with last_included=False). Tests run these, not a copy."""
    body = next(node for node in _statements(script) if isinstance(node, ast.For)).body
    sources = [ast.unparse(node) for node in body]
    i, j = _find(script, sources, first), _find(script, sources, last) + last_included
    return compile(ast.Module(body=body[i:j], type_ignores=[]), script, "exec")


# The one setup statement the cutters leave out: the step-0 evaluation of the base model (slow; a test takes its
# own steps). Any other statement is run, or, where it cannot be, named in a failure: nothing is dropped silently.
STEP_ZERO = "if run.start_step == 0:\n    run.log(0, run.evaluate(0))"


def _setup(script):
    """The script's statements before its RL loop, without STEP_ZERO (which must be there: else the script changed)."""
    statements = _statements(script)
    loop = next(k for k, node in enumerate(statements) if isinstance(node, ast.For))
    setup = [node for node in statements[:loop] if ast.unparse(node) != STEP_ZERO]
    if len(setup) != loop - 1:
        raise AssertionError(f"{script}: no statement `{STEP_ZERO}` before the loop: update conftest.STEP_ZERO")
    return setup


def trainer_setup(script, *argv):
    """A trainer's own setup lines on the command line `argv`: every statement before its loop (imports, options,
    trainer.Run and the names the loop reads: args, policy, ref, opt, sched, G, clip_eps) but the step-0
    evaluation. Returns the names they set."""
    scope = {"__doc__": script}
    saved, sys.argv = sys.argv, [script, *argv]
    try:
        exec(compile(ast.Module(body=_setup(script), type_ignores=[]), script, "exec"), scope)
    finally:
        sys.argv = saved
    return scope


def trainer_scope(script, run):
    """The same names around a trainer.Run that a test built itself: the script's imports, and its statements between
    `run = trainer.Run(...)` and the loop (but the step-0 evaluation), which must be assignments: any other statement
    there (a call, a branch) fails here by name, for the test to say whether it runs on a Run built elsewhere."""
    statements = _setup(script)
    at = _find(script, [ast.unparse(node) for node in statements], "run = trainer.Run(")
    body = [node for node in statements if isinstance(node, (ast.Import, ast.ImportFrom))]
    for node in statements[at + 1 :]:
        if not isinstance(node, ast.Assign):
            raise AssertionError(
                f"{script}:{node.lineno}: `{ast.unparse(node)}` is not an assignment: say in conftest.trainer_scope what to do with it"
            )
        body.append(node)
    scope = {"run": run}
    exec(compile(ast.Module(body=body, type_ignores=[]), script, "exec"), scope)
    return scope


def run_loop(script, scope, first="t0 =", last="run.stop_if_signalled", **names):
    """Run a trainer's loop statements `first`..`last` (default: one whole step) in `scope` (trainer_setup's or
    trainer_scope's) with `names` (step, or the values of the statements skipped); returns every name they set
    (roll, r, R, A, loss_sum, grad_norm, metrics, ...)."""
    scope = scope | names
    exec(loop_lines(script, first, last), scope)
    return scope


def sample_step(run, step, script="train_task.py"):
    """The trainers' step 1, their own lines (sample G responses per prompt through rollout.py, grade them) on a
    trainer.Run: (Rollout, r, answers)."""
    scope = run_loop(script, trainer_scope(script, run), "problems =", "r, answers =", step=step)
    return scope["roll"], scope["r"], scope["answers"]


def trainer_update(run, roll, A, logp, ref_logp, script="train_task.py"):
    """The trainers' step 5, their own lines (token weights, micro-batched loss and backward, gradient sync and
    clipping, AdamW) on a trainer.Run and a given batch: (loss, the grad norm: non-finite when the step was skipped)."""
    names = dict(roll=roll, A=A, logp=logp, ref_logp=ref_logp)
    scope = run_loop(script, trainer_scope(script, run), "mask = roll.response_mask", "for _ in range", **names)
    return scope["loss_sum"], scope["grad_norm"]


# -----------------------------------------------------------------------------
# the course: `pytest -m exercise_N` selects the tests that grade exercise N (exercises/course.py)

sys.path.insert(0, os.path.join(ROOT, "exercises"))  # course.py, make_handout.py
from course import EXERCISES, graded_by, together  # noqa: E402


def pytest_configure(config):
    for exercise in EXERCISES:
        config.addinivalue_line("markers", f"exercise_{exercise.number}: the tests that grade exercises/{exercise.handout}")
    config.addinivalue_line("markers", "together: the tests that need several exercises done (exercises/course.py TOGETHER)")


def pytest_collection_modifyitems(items):
    for item in items:
        for number in graded_by(item.nodeid):
            item.add_marker(f"exercise_{number}")
        if together(item.nodeid):
            item.add_marker("together")
