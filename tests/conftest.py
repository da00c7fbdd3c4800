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
    """R from the trainer's own reward lines (the loop's statements from the reward's inputs, ref_sum and
    norm_ref, to its `if args.mode == ...` chain), on the given tensors (ref_logp and logp per token, roll, r, ...)."""
    import rewards

    options = dict(mode=mode, alpha=1.0, b=1.0, normalization="sum", length_power=0.5) | (args or {})
    scope = dict(args=SimpleNamespace(**options), torch=torch, rewards=rewards, **inputs)
    exec(loop_lines(script, "ref_sum, logp_pi =", "if args.mode =="), scope)
    return scope["R"]


def _statements(script):
    return ast.parse(open(os.path.join(ROOT, script)).read()).body


def loop_lines(script, first, last):
    """A trainer's own statements, compiled from its RL loop: from the one whose source starts with `first` to the
    one that starts with `last`, both included. Tests run these, not a copy."""
    body = next(node for node in _statements(script) if isinstance(node, ast.For)).body
    sources = [ast.unparse(node) for node in body]
    i = next(k for k, s in enumerate(sources) if s.startswith(first))
    j = next(k for k, s in enumerate(sources) if s.startswith(last))
    return compile(ast.Module(body=body[i : j + 1], type_ignores=[]), script, "exec")


def trainer_setup(script, *argv):
    """A trainer's own setup lines on the command line `argv`: its imports, its options, trainer.Run and the names
    its loop reads (args, policy, ref, opt, sched, G, clip_eps); the step-0 evaluation is left out. Returns them."""
    statements = _statements(script)
    loop = next(k for k, node in enumerate(statements) if isinstance(node, ast.For))
    body = [node for node in statements[:loop] if not isinstance(node, ast.If)]
    scope = {"__doc__": script}
    saved, sys.argv = sys.argv, [script, *argv]
    try:
        exec(compile(ast.Module(body=body, type_ignores=[]), script, "exec"), scope)
    finally:
        sys.argv = saved
    return scope


def trainer_scope(script, run):
    """The same names around a trainer.Run that a test built itself: the script's imports, and its assignments
    between `run = trainer.Run(...)` and the loop."""
    statements = _statements(script)
    at = next(k for k, node in enumerate(statements) if ast.unparse(node).startswith("run = trainer.Run("))
    loop = next(k for k, node in enumerate(statements) if isinstance(node, ast.For))
    body = [node for node in statements if isinstance(node, (ast.Import, ast.ImportFrom))]
    body += [node for node in statements[at + 1 : loop] if isinstance(node, ast.Assign)]
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
