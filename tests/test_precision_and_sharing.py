"""The two speed options of the real-model recipe, each against the plain version: --share-prompts (each distinct
prompt through the decoder once, plumbing/shared_prompts.py) gives the plain pass's log-probs, entropies and
gradients, and the same training step; --bf16 (autocast on a CPU) samples in the fast rollout what the plain
rollout samples under the same autocast, and is refused on a CPU without bf16 instructions."""

import pytest
import torch

import rollout as plain
from conftest import run_loop, tiny_qwen, trainer_setup
from model import _response_logprobs, autocast, micro_batches, use_bf16
from plumbing import fast_rollout, shared_prompts

# groups of 3 samples of 4 prompts of different lengths (left padding), and one prompt alone
PROMPTS = [[5, 6, 7]] * 3 + [[8, 9, 10, 11, 12, 13]] * 3 + [[14]] * 3 + [[20, 21, 22, 23]] * 3 + [[30, 31]]
BF16 = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no bf16 instructions")


def sampled(model, width=12):
    return fast_rollout.rollout(model, PROMPTS, width, [1], 0, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("width", [1, 12])
@pytest.mark.parametrize("micro_batch", [4, 64])
def test_shared_prompts_give_the_plain_passs_logprobs_entropies_and_gradients(width, micro_batch):
    model = tiny_qwen().train()
    roll = sampled(model, width)
    for rows, sequences, attention_mask, response_mask in micro_batches(roll, micro_batch):
        results = []
        for score in (_response_logprobs, shared_prompts.response_logprobs):
            model.zero_grad()
            logp, entropy = score(model, sequences, attention_mask, response_mask, entropy=True)
            (logp * torch.linspace(-1, 1, logp.numel()).view_as(logp)).sum().backward()  # every token weighs differently
            results.append((logp, entropy, [p.grad.clone() for p in model.parameters()]))
        (logp_a, entropy_a, grads_a), (logp_b, entropy_b, grads_b) = results
        assert logp_a.abs().sum() > 0
        torch.testing.assert_close(logp_b, logp_a, atol=1e-5, rtol=0)
        torch.testing.assert_close(entropy_b, entropy_a, atol=1e-5, rtol=0)
        for a, b in zip(grads_a, grads_b):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_shared_prompts_run_each_distinct_prompt_once():
    model = tiny_qwen()
    roll = sampled(model)
    calls = []
    model.model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape), with_kwargs=True)
    with torch.no_grad():
        shared_prompts.enable(model)
        ((_, sequences, attention_mask, response_mask),) = micro_batches(roll, 64)
        from model import response_logprobs

        response_logprobs(model, sequences, attention_mask, response_mask)
    P = sequences.shape[1] - response_mask.shape[1]
    assert calls == [(5, P), (len(PROMPTS), response_mask.shape[1] - 1)]  # 5 distinct prompts, then the responses


@pytest.mark.parametrize("mode", ["task", "tilted"])
def test_a_training_step_with_shared_prompts_is_the_same_step(tmp_path, keep_signals, mode):
    """train_task.py's own step (fresh log-probs for tilted: the scoring passes and the update all go through
    the shared pass), with and without --share-prompts: the same loss, gradient norm, metrics and weights."""
    argv = ["--device", "cpu", "--steps", "1", "--prompts-per-step", "4", "--max-new-tokens", "16", "--micro-batch", "8"]
    argv += ["--eval-problems", "4", "--mode", mode, "--alpha", "2", "--b", "1"]
    steps = []
    for extra in ([], ["--share-prompts"]):
        setup = trainer_setup("train_task.py", *argv, *extra, "--out", str(tmp_path / f"run{len(steps)}"))
        steps.append((run_loop("train_task.py", setup, step=0), setup["run"].policy))
    (a, policy_a), (b, policy_b) = steps
    assert torch.equal(a["roll"].sequences, b["roll"].sequences)  # the same samples: sampling shares nothing
    assert a["grad_norm"] > 0
    for key in ("loss_sum", "grad_norm"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6)
    for key in ("reward", "logp_ref", "kl", "entropy"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-4, abs=1e-5)
    # AdamW's first step moves each weight by about lr * g / |g| (3e-5 here, after the warm-up's 0.1): a gradient
    # element near 0 may round to another step, so weights agree to well within one step, not to float precision
    for p, q in zip(policy_a.parameters(), policy_b.parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
    assert any(not torch.equal(p, q) for p, q in zip(policy_a.parameters(), setup["run"].ref.parameters()))


def test_shared_prompts_and_fsdp_are_refused_together(tmp_path, keep_signals):
    with pytest.raises(SystemExit, match="--share-prompts does not combine with --fsdp"):
        trainer_setup("train_task.py", "--share-prompts", "--fsdp", "--device", "cpu", "--out", str(tmp_path / "run"))


@BF16
@pytest.mark.parametrize("case", ["sampled", "greedy"])
def test_under_bf16_the_fast_rollout_samples_what_the_plain_one_samples(case):
    """--bf16: the fast rollout casts the weights and keeps its KV cache in bf16 once (autocast would cast them
    at every token); the arithmetic is autocast's, so the plain rollout under autocast draws the same tokens."""
    model = use_bf16(tiny_qwen())
    kw = dict(temperature=0) if case == "greedy" else {}
    with autocast(model):
        a = plain.rollout(model, PROMPTS, 16, [1], 0, generator=torch.Generator().manual_seed(3), **kw)
        b = fast_rollout.rollout(model, PROMPTS, 16, [1], 0, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=2e-2, rtol=0)  # bf16's own rounding, kernel to kernel


@BF16
def test_bf16_changes_the_log_probs_only_by_its_rounding():
    model = tiny_qwen()
    roll = sampled(model)
    ((_, sequences, attention_mask, response_mask),) = micro_batches(roll, 64)
    with torch.no_grad():
        fp32, _ = _response_logprobs(model, sequences, attention_mask, response_mask)
        half, _ = _response_logprobs(use_bf16(tiny_qwen()), sequences, attention_mask, response_mask)
    difference = (fp32 - half)[response_mask].abs()
    assert 0 < difference.max() < 0.05  # changed (bf16 is on), and only by rounding


def test_bf16_is_refused_on_a_cpu_without_bf16_instructions(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(SystemExit, match="--bf16: this CPU has no bf16 instructions"):
        use_bf16(tiny_qwen())
