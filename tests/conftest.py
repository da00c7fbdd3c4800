import os
import sys

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
    """trainer.Run installs SIGINT/SIGTERM handlers (and a finished run ignores both): give pytest its own back."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="session")
def toy_path():
    return os.path.join(ROOT, "toy_models", "toy")


def policy_gradient_step(run, roll, A, logp, ref_logp):
    """Step 5 of train_task.py / train_sharpen.py, line for line, on a trainer.Run: (loss, grad norm or None)."""
    from loss import policy_loss
    from model import micro_batches, response_logprobs

    args = run.args
    clip_eps = args.clip_eps if args.updates_per_batch > 1 else None
    weights = run.token_weights(roll)
    run.policy.train()
    for _ in range(args.updates_per_batch):
        run.opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for rows, sequences, attention_mask, response_mask in micro_batches(roll, args.micro_batch):
            new_logp, _ = response_logprobs(run.policy, sequences, attention_mask, response_mask)
            cut = (rows, slice(0, response_mask.shape[1]))  # these rows, up to their own longest response
            loss = policy_loss(new_logp, A[rows], weights[cut], logp[cut], clip_eps, ref_logp[cut], args.kl_coef)
            loss.backward()
            loss_sum += loss.item()
        grad_norm = run.sync_gradients()
        if grad_norm is None:
            break
        run.opt.step()
        run.check_parameters()
    return loss_sum, grad_norm


# -----------------------------------------------------------------------------
# the course: `pytest -m exercise_N` selects the tests that grade exercise N (exercises/course.py)

sys.path.insert(0, os.path.join(ROOT, "exercises"))  # course.py, make_handout.py
from course import EXERCISES, graded_by  # noqa: E402


def pytest_configure(config):
    for exercise in EXERCISES:
        config.addinivalue_line("markers", f"exercise_{exercise.number}: the tests that grade exercises/{exercise.handout}")


def pytest_collection_modifyitems(items):
    for item in items:
        for number in graded_by(item.nodeid):
            item.add_marker(f"exercise_{number}")
