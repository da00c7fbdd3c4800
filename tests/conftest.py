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


@pytest.fixture(scope="session")
def toy_path():
    return os.path.join(ROOT, "toy_models", "toy")


def reward_lines(script):
    """A trainer's own reward lines, compiled from the script: the loop's statements that build the reward's
    inputs (ref_sum, logp_pi, norm_ref) and its `if args.mode == ...` chain. Tests run these, not a copy."""
    tree = ast.parse(open(os.path.join(ROOT, script)).read())
    loop = next(node for node in tree.body if isinstance(node, ast.For))
    inputs = {"ref_sum", "logp_pi", "norm_ref"}

    def wanted(node):
        if isinstance(node, ast.Assign):
            names = {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            return bool(names & inputs)
        return isinstance(node, ast.If) and "args.mode ==" in ast.unparse(node.test)

    body = [node for node in loop.body if wanted(node)]
    assert len(body) == 3, f"{script}: expected the two input lines and the reward chain, found {len(body)} statements"
    return compile(ast.Module(body=body, type_ignores=[]), script, "exec")


def trainer_reward(script, mode, args=None, **inputs):
    """R from the trainer's reward lines, on the given tensors (ref_logp and logp per token, roll, r, ...)."""
    import rewards

    options = dict(mode=mode, alpha=1.0, b=1.0, normalization="sum", length_power=0.5) | (args or {})
    scope = dict(args=SimpleNamespace(**options), torch=torch, rewards=rewards, **inputs)
    exec(reward_lines(script), scope)
    return scope["R"]


def sample_step(run, step, n=None):
    """Step 1 of train_task.py / train_sharpen.py on a trainer.Run: (Rollout, r, answers)."""
    import rollout
    from plumbing import sharding

    problems, G = run.prompts(step), n or run.args.group_size
    with sharding.full_weights(run.policy):
        prompt_ids = [x["prompt_ids"] for x in problems]
        roll, texts = rollout.sample(
            run.policy,
            run.tokenizer,
            prompt_ids,
            G,
            ignore_eos=run.args.fixed_length,
            generator=run.generator(step),
            **run.sampling,
        )
    r, answers = run.grader.grade(texts, [x["answer"] for x in problems for _ in range(G)], run.policy.device)
    return roll, r, answers


def policy_gradient_step(run, roll, A, logp, ref_logp):
    """Step 5 of train_task.py / train_sharpen.py, line for line, on a trainer.Run: (loss, grad norm or None)."""
    from loss import policy_loss, token_weights
    from model import micro_batches, response_logprobs
    from plumbing import sharding

    args, dist, policy, opt = run.args, run.dist, run.policy, run.opt
    clip_eps = args.clip_eps if args.updates_per_batch > 1 else None
    mask = roll.response_mask
    w = token_weights(mask, args.aggregation, dist.sum(mask.sum()).item(), dist.sum(len(mask)).item(), args.max_new_tokens)
    for _ in range(args.updates_per_batch):
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for index, sequences, attention_mask, response_mask in micro_batches(roll, args.micro_batch):
            new_logp, _ = response_logprobs(policy, sequences, attention_mask, response_mask)
            cut = (index, slice(0, response_mask.shape[1]))
            loss = policy_loss(new_logp, A[index], w[cut], logp[cut], clip_eps, ref_logp[cut], args.kl_coef)
            loss.backward()
            loss_sum += loss.item()
        if not args.fsdp:
            dist.all_reduce_grads(policy)
        grad_norm = sharding.full(torch.nn.utils.clip_grad_norm_(policy.parameters(), args.grad_clip)).item()
        if run.skip_step(grad_norm):
            return loss_sum, None
        opt.step()
        run.check_parameters()
    return loss_sum, grad_norm


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
