"""Benchmark: peak memory of the trainer's log-prob pass, chunked (model.response_logprobs) vs naive.

The pass is what every policy-gradient update does: the log-prob of each response token under the
policy, forward and backward (loss = -sum of the token log-probs). Two ways to compute it:

    naive     model(...).logits.log_softmax(-1).gather(...): the full [batch, tokens, vocab] logits, their
              log-softmax kept for the backward pass, and gradients of the same size
    chunked   model.response_logprobs: the decoder runs once, then the vocabulary projection and the
              log-softmax run over chunks of the response tokens under activation checkpointing

The model is a small random Qwen2 body (2 layers, hidden 256) with the real Qwen2 vocabulary (151936), so
that, as in practice, the logits dominate the memory. Each variant runs in a fresh subprocess, which
builds the model and inputs, then resets its peak-memory counter, runs the pass once and reports its
peak above what it held before the pass: on a CPU the kernel's high-water mark of resident memory
(VmHWM, reset by writing 5 to /proc/self/clear_refs), on CUDA torch.cuda.max_memory_allocated.

    python bench/bench_logprob_memory.py                  # batch 8 x 2048 response tokens
    python bench/bench_logprob_memory.py --batch 2        # where the naive pass does not fit in memory
    python bench/bench_logprob_memory.py --device cuda

The naive pass at batch 8 x 2048 needs about 3 x 10 GB (logits, their log-softmax, its gradient). On a
CPU the script does not start a variant whose estimated peak exceeds the memory available (it would
only summon the out-of-memory killer); it says so instead.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from model import autocast, position_ids_from_mask, response_logprobs  # noqa: E402

BODY = dict(
    hidden_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=1024,
    vocab_size=151936,
    tie_word_embeddings=True,
    max_position_embeddings=4096,
)
GB = 1e9


def build(args, device):
    """The random model and a batch of left-padded prompts followed by full-length responses."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**BODY, bos_token_id=None, eos_token_id=1, pad_token_id=0)).to(device).train()
    B, P, R = args.batch, args.prompt_tokens, args.response_tokens
    sequences = torch.randint(2, BODY["vocab_size"], (B, P + R), device=device)
    attention_mask = torch.ones_like(sequences)
    attention_mask[1::2, : P // 2] = 0  # every other prompt is shorter: left padding, as in a rollout
    response_mask = torch.ones((B, R), dtype=torch.bool, device=device)
    return model, sequences, attention_mask, response_mask


def naive(model, sequences, attention_mask, response_mask):
    R = response_mask.shape[1]
    logits = model(input_ids=sequences, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask)).logits
    logp = logits[:, -R - 1 : -1].float().log_softmax(-1)  # position p predicts token p+1
    return logp.gather(-1, sequences[:, -R:, None]).squeeze(-1) * response_mask


def chunked(model, sequences, attention_mask, response_mask):
    return response_logprobs(model, sequences, attention_mask, response_mask)[0]


VARIANTS = {"naive": naive, "chunked": chunked}


# -----------------------------------------------------------------------------
# the child: one variant, one pass, its peak memory


def proc_bytes(path, key):
    """A "key: N kB" line of a /proc file, in bytes: VmHWM (high-water mark of resident memory) and VmRSS
    (resident now) of /proc/self/status, MemAvailable of /proc/meminfo."""
    for line in open(path):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in {path}")


def child(args):
    device = torch.device(args.device)
    model, *batch = build(args, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = proc_bytes("/proc/self/status", "VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
    start = time.perf_counter()
    with autocast(model):
        logp = VARIANTS[args.child](model, *batch)
    (-logp.sum()).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = proc_bytes("/proc/self/status", "VmHWM")
    print(json.dumps({"peak_bytes": peak - base, "seconds": time.perf_counter() - start}))


# -----------------------------------------------------------------------------
# the parent: one subprocess per variant


def naive_estimate(args):
    """Three float32 tensors of [batch, prompt + response, vocab]: logits, log-softmax, gradient."""
    return 3 * 4 * args.batch * (args.prompt_tokens + args.response_tokens) * BODY["vocab_size"]


def run_variant(name, args):
    if args.device == "cpu" and name == "naive":
        available = proc_bytes("/proc/meminfo", "MemAvailable")
        if naive_estimate(args) > 0.8 * available:
            return f"not run: needs about {naive_estimate(args) / GB:.0f} GB, {available / GB:.0f} GB available"
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        name,
        "--device",
        args.device,
        "--batch",
        str(args.batch),
        "--prompt-tokens",
        str(args.prompt_tokens),
        "--response-tokens",
        str(args.response_tokens),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        reason = "out of memory" if "OutOfMemoryError" in done.stderr or done.returncode == -9 else "failed"
        return f"{reason} (exit {done.returncode}): {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--response-tokens", type=int, default=2048)
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    print(
        f"log-prob pass, forward + backward: batch {args.batch} x ({args.prompt_tokens} prompt + {args.response_tokens} "
        f"response) tokens, vocabulary {BODY['vocab_size']}, body {BODY['num_hidden_layers']} layers x {BODY['hidden_size']}, "
        f"{args.device}"
    )
    results = {}
    for name in VARIANTS:
        results[name] = r = run_variant(name, args)
        shown = (
            f"peak {r['peak_bytes'] / GB:7.3f} GB above the model and inputs ({r['seconds']:.1f} s)" if isinstance(r, dict) else r
        )
        print(f"  {name:<8} {shown}", flush=True)
    if not isinstance(results["chunked"], dict):
        return
    if isinstance(results["naive"], dict):
        ratio = results["chunked"]["peak_bytes"] / results["naive"]["peak_bytes"]
        print(f"  chunked / naive = {ratio:.3f} (goal <= 0.25: {'met' if ratio <= 0.25 else 'NOT met'})")
    else:  # the estimate counts only the three big tensors: where both ran, the naive peak measured above it
        ratio = results["chunked"]["peak_bytes"] / naive_estimate(args)
        print(f"  chunked / naive estimate = {ratio:.3f} (naive estimated, not measured; a smaller --batch measures both)")


if __name__ == "__main__":
    main()
