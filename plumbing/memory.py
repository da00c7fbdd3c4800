"""
What fits before you rent it: bytes per GPU of an RL run, from the model's shape and the sharding.

    python -m plumbing.memory                      # the README's table: 0.5B, 3B (Qwen, Llama) and 4B at 1, 2, 4 and 8 GPUs
    python -m plumbing.memory --model Qwen/Qwen2.5-7B-Instruct --prompts-per-step 32 --max-new-tokens 2048

Per GPU, for N GPUs, P parameters, in GB (10^9 bytes):
    policy      fp32 weights, 4P; gradients, 4P (kept from the backward pass through the next rollout)
    optimizer   AdamW's two fp32 moments, 8P
    reference   bf16 weights, 2P
    --fsdp divides all of these by N (sharding.py) and adds the bf16 weights it gathers: two decoder layers at
                a time in training (the one computing and the next), and the whole model, 2P, during a rollout
    activations the training pass at --micro-batch with --gradient-checkpointing: each layer's bf16 input kept,
                one layer's recomputed internals, and the log-prob pass's vocabulary chunk (2^26 fp32 logits,
                with its softmax and gradient) -- an estimate, not a measurement
    KV cache    the rollout's preallocated bf16 keys and values: 2 x layers x kv_heads x head_dim x
                (prompt + max_new_tokens) per sequence, for the rows one GPU samples at once
    peak        the larger of the rollout (policy + optimizer + reference + gathered weights + KV cache) and
                the update (the same without the KV cache, plus activations)

The model shapes are those of the hub's config.json files (no download: a model built on the meta device
counts the parameters exactly). Nothing here was measured on a GPU.
"""

import argparse

import torch
from transformers import AutoConfig, AutoModelForCausalLM

GB = 1e9
SHAPES = {  # from each model's config.json on the hub
    "Qwen/Qwen2.5-0.5B-Instruct": dict(
        model_type="qwen2",
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "Qwen/Qwen2.5-3B-Instruct": dict(
        model_type="qwen2",
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "meta-llama/Llama-3.2-3B-Instruct": dict(
        model_type="llama",
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    "Qwen/Qwen3-4B-Instruct-2507": dict(
        model_type="qwen3",
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
}


def model_config(name):
    if name in SHAPES:
        shape = dict(SHAPES[name])
        return AutoConfig.for_model(shape.pop("model_type"), **shape)
    return AutoConfig.from_pretrained(name)  # any other model: its config.json (a download of a few KB)


def parameters(config):
    """(all parameters, the largest decoder layer's), counted on a model built on the meta device."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = model.get_decoder().layers
    return sum(p.numel() for p in model.parameters()), max(sum(p.numel() for p in layer.parameters()) for layer in layers)


def kv_cache_bytes(config, rows, tokens, dtype_bytes=2):
    """Keys and values of every layer for `rows` sequences of `tokens` positions (fast_rollout preallocates them)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * tokens * rows * dtype_bytes


def per_gpu(
    config,
    gpus,
    fsdp,
    prompts_per_step=32,
    group_size=8,
    prompt_tokens=256,
    max_new_tokens=2048,
    micro_batch=4,
    rollout_batch=512,
):
    """Bytes per GPU of each part, and the peak (see the module docstring)."""
    P, layer = parameters(config)
    share = gpus if fsdp else 1
    H, L = config.hidden_size, config.num_hidden_layers
    tokens = prompt_tokens + max_new_tokens
    rows = min(rollout_batch, prompts_per_step * group_size // gpus)
    out = {
        "policy": 8 * P / share,
        "optimizer": 8 * P / share,
        "reference": 2 * P / share,
        "gathered (rollout)": 2 * P if fsdp else 0,
        "gathered (update)": 2 * (2 * layer + (P - L * layer)) if fsdp else 0,
        "activations": micro_batch * tokens * (2 * H * L + 2 * (12 * H + 4 * config.intermediate_size)) + 3 * 4 * 2**26,
        "KV cache": kv_cache_bytes(config, rows, tokens),
    }
    states = out["policy"] + out["optimizer"] + out["reference"]
    rollout = states + out["gathered (rollout)"] + out["KV cache"]
    update = states + out["gathered (update)"] + out["activations"]
    out["peak"] = max(rollout, update)
    return out, P


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=list(SHAPES))
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--prompts-per-step", type=int, default=32)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=256, help="prompt length assumed for the KV cache and activations")
    p.add_argument("--max-new-tokens", type=int, default=2048)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--rollout-batch", type=int, default=512, help="sequences one rollout call samples at once")
    p.add_argument("--detail", action="store_true", help="every part, for both shardings")
    args = p.parse_args()
    settings = {
        k: getattr(args, k)
        for k in ("prompts_per_step", "group_size", "prompt_tokens", "max_new_tokens", "micro_batch", "rollout_batch")
    }
    if args.detail:
        print("| model | GPUs | sharding | policy + grads | AdamW | reference | gathered bf16 | activations | KV cache | peak |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    else:
        print("| model | params | GPUs | peak per GPU, replicas | peak per GPU, `--fsdp` | of which KV cache |")
        print("|---|---|---|---|---|---|")
    for name in args.model:
        config = model_config(name)
        for gpus in args.gpus:
            (rep, P), (fsdp, _) = (per_gpu(config, gpus, sharded, **settings) for sharded in (False, True))
            short = name.split("/")[-1]
            if not args.detail:
                print(
                    f"| {short} | {P / 1e9:.2f}B | {gpus} | {rep['peak'] / GB:.1f} GB | {fsdp['peak'] / GB:.1f} GB | {fsdp['KV cache'] / GB:.1f} GB |"
                )
                continue
            for label, m in (("replicas", rep), ("--fsdp", fsdp)):
                parts = ("policy", "optimizer", "reference", None, "activations", "KV cache", "peak")
                cells = [max(m["gathered (rollout)"], m["gathered (update)"]) if k is None else m[k] for k in parts]
                print(f"| {short} | {gpus} | {label} | " + " | ".join(f"{c / GB:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
