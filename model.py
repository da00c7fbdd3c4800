"""
Models: load any Hugging Face causal LM (hub id or local folder), make the frozen reference copy, score
tokens under a model without ever holding the full-vocabulary logits of a whole batch, and (for Llama-style
models) one decoding step written out by hand, the rollout's fast path.

The embedded default models live in toy_models/<variant>/ (built by build_toy.py) and load exactly like
a hub model: `--model toy_models/toy` and `--model Qwen/Qwen2.5-3B-Instruct` take the same code path.

Precision: on CUDA the policy keeps fp32 master weights and runs its forward passes under bf16 autocast.
Plain bf16 weights would silently swallow the paper's lr=1e-6 AdamW updates (bf16 has 8 bits of mantissa,
so w + 1e-6*w rounds back to w). The frozen reference model is stored in bf16. On CPU everything is fp32.
"""

import contextlib
import copy
import functools
import os
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

TOY_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy_models")


# -----------------------------------------------------------------------------
# loading


def pick_device(name=None):
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_model_path(name, dataset=None):
    """No --model: the embedded toy model that matches a toy dataset."""
    if name:
        return name
    if dataset and dataset.startswith("toy"):
        return os.path.join(TOY_MODELS, dataset)
    raise SystemExit(f"--model is required for dataset {dataset!r} (a hub id such as Qwen/Qwen2.5-0.5B-Instruct or a local folder)")


def load_tokenizer(path):
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise SystemExit(f"could not load tokenizer {path!r}: expected a hub id or a local folder with tokenizer files ({type(err).__name__})")
    # Rollouts left-pad prompts, so a pad id is needed; EOS is the conventional stand-in.
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(path, device, dtype=torch.float32):
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as err:
        raise SystemExit(f"could not load model {path!r}: expected a hub id or a local folder with config.json and weights ({type(err).__name__})")
    return model.to(device)


def frozen_copy(model, dtype=None):
    """The reference model pi_ref: an exact copy of the starting policy that never trains."""
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    return ref.to(dtype) if dtype is not None else ref


def autocast(device):
    """bf16 autocast on CUDA (fp32 master weights), plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def eos_ids(tokenizer, model):
    """Every token id that ends a response (chat models often have several, e.g. <|im_end|> and <|endoftext|>)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


# -----------------------------------------------------------------------------
# scoring tokens


def position_ids_from_mask(attention_mask):
    """Left-padded rows start counting positions at their first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _logprob_chunk(head, hidden, targets, softcap, with_entropy):
    logits = head(hidden).float()
    if softcap:  # Gemma-2 style final-logit soft-capping
        logits = softcap * torch.tanh(logits / softcap)
    logp = F.log_softmax(logits, dim=-1)
    token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return token_logp, None
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return token_logp, entropy


def response_logprobs(model, sequences, attention_mask, response_mask, chunk_elements=2**26, entropy=False):
    """
    log pi(y_t | x, y_<t) for every response token, and with entropy=True the entropy of pi at that position
    (two more passes over the vocabulary per token, so only when asked).

    sequences [B, P+R] are left-padded prompts followed by responses; response_mask [B, R] marks the
    response tokens (EOS included). Returns two [B, R] tensors, zero outside the mask (the second is None
    without entropy=True).

    Memory: the decoder's hidden states are computed once; the vocabulary projection then runs over the
    valid response tokens in chunks of about `chunk_elements` logits, each under activation
    checkpointing, so neither the forward nor the backward pass ever holds [B, R, V] logits.
    """
    R = response_mask.shape[1]
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    hidden = decoder(
        input_ids=sequences, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask)
    ).last_hidden_state
    # The hidden state at position p predicts token p+1: the response tokens are predicted by [P-1, P+R-1).
    hidden = hidden[:, -R - 1 : -1][response_mask]
    targets = sequences[:, -R:][response_mask]
    softcap = getattr(model.config, "final_logit_softcapping", None)
    rows = max(1, chunk_elements // head.out_features)
    token_logp, token_entropy = [], []
    for i in range(0, hidden.shape[0], rows):
        args = (head, hidden[i : i + rows], targets[i : i + rows], softcap, entropy)
        lp, ent = checkpoint(_logprob_chunk, *args, use_reentrant=False) if torch.is_grad_enabled() else _logprob_chunk(*args)
        token_logp.append(lp)
        token_entropy.append(ent)
    zeros = torch.zeros(response_mask.shape, dtype=torch.float32, device=sequences.device)
    out_logp = zeros.masked_scatter(response_mask, torch.cat(token_logp))
    return out_logp, zeros.masked_scatter(response_mask, torch.cat(token_entropy)) if entropy else None


# -----------------------------------------------------------------------------
# one decoding step of a Llama-style model, written out (rollout.py's fast path)


def llama_step(model, token, attention_mask, position, cache, plan):
    """
    The same step written out for a Llama-style decoder (Llama, Mistral, Qwen2, Qwen3): the model's own
    weights and the same arithmetic as its forward, without the machinery around it (module calls, mask
    building, rotary tables, output objects), which on a small model costs more than the arithmetic.
    `plan` (llama_plan) holds the weights, gathered once per rollout.

        h = embed(y_t)
        per layer:  a = norm_1(h);  q, k, v = a W_q, a W_k, a W_v  (split into heads of size D)
                    q, k = q cos + rotate_half(q) sin, ...   (rotary embedding of the row's position)
                    K, V = cache + [k], cache + [v]
                    h = h + softmax(q K^T * scale + mask) V W_o
                    h = h + (act(a' W_gate) * a' W_up) W_down,  a' = norm_2(h)
        logits = norm(h) W_head
    """
    h = F.embedding(token, plan.embed)  # [B, hidden]: one token per row
    B = h.shape[0]
    cos, sin = plan.cos[position[:, :, None]], plan.sin[position[:, :, None]]  # [B, 1, 1, D]
    for w, kv in zip(plan.layers, cache.layers):
        D = w.head_dim
        a = w.norm_1(h)
        q = F.linear(a, *w.q).view(B, -1, 1, D)  # [B, heads, 1, D]
        k = F.linear(a, *w.k).view(B, -1, 1, D)
        v = F.linear(a, *w.v).view(B, -1, 1, D)
        if w.q_norm is not None:  # Qwen3 normalises each head's query and key
            q, k = w.q_norm(q), w.k_norm(k)
        # rotate_half(x) = (-x2, x1) = roll(x, D/2) * (-1, 1): the sign lives in the `sin` table (llama_plan)
        q = q * cos + q.roll(D // 2, -1) * sin
        k = k * cos + k.roll(D // 2, -1) * sin
        K, V = kv.update(k, v)
        # Grouped-query attention: the query heads that share a key/value head attend as one block of queries.
        o = F.scaled_dot_product_attention(q.view(B, K.shape[1], -1, D), K, V, attn_mask=attention_mask, scale=w.scale)
        h = h + F.linear(o.reshape(B, -1), *w.o)  # reshape: on a GPU the attention output may not be contiguous
        a = w.norm_2(h)
        h = h + F.linear(w.act(F.linear(a, *w.gate)) * F.linear(a, *w.up), *w.down)
    return F.linear(plan.norm(h), *plan.head)


class LlamaLayer(NamedTuple):
    norm_1: Callable
    q: tuple  # a linear layer as (weight, bias)
    k: tuple
    v: tuple
    q_norm: Callable | None
    k_norm: Callable | None
    o: tuple
    norm_2: Callable
    gate: tuple
    up: tuple
    down: tuple
    act: Callable
    head_dim: int
    scale: float


class LlamaPlan(NamedTuple):
    embed: torch.Tensor
    layers: list
    norm: Callable
    head: tuple
    cos: torch.Tensor  # [positions, D]
    sin: torch.Tensor  # [positions, D], sign-folded for rotate_half


def llama_plan(model, length):
    """
    What llama_step reads, gathered once per rollout: read through the modules at every step (about a hundred
    nn.Module attribute lookups) they cost more than some of the kernels they feed (measured: ~15% of a toy
    rollout). Also the rotary cos and sin of every position the rollout can reach, from the model's own module.
    """
    body = model.model
    # RMSNorm as one fused call where that is the same arithmetic (fp32 throughout); else the module's forward.
    fused = all(p.dtype == torch.float32 for p in model.parameters()) and not torch.is_autocast_enabled(model.device.type)

    def norm(m):
        return functools.partial(F.rms_norm, normalized_shape=tuple(m.weight.shape), weight=m.weight, eps=m.variance_epsilon) if fused else m

    def linear(m):
        return m.weight, m.bias

    layers = []
    for layer in body.layers:
        attn, mlp = layer.self_attn, layer.mlp
        qk_norm = [norm(attn.q_norm), norm(attn.k_norm)] if hasattr(attn, "q_norm") else [None, None]
        layers.append(LlamaLayer(
            norm(layer.input_layernorm), linear(attn.q_proj), linear(attn.k_proj), linear(attn.v_proj), *qk_norm,
            linear(attn.o_proj), norm(layer.post_attention_layernorm), linear(mlp.gate_proj), linear(mlp.up_proj),
            linear(mlp.down_proj), F.silu if model.config.hidden_act == "silu" else mlp.act_fn, attn.head_dim, attn.scaling,
        ))
    positions = torch.arange(length, device=model.device)[None]
    cos, sin = body.rotary_emb(body.embed_tokens.weight, positions)  # the weight only gives dtype and device
    half = cos.shape[-1] // 2
    sin = torch.cat([-sin[0, :, :half], sin[0, :, half:]], -1)
    return LlamaPlan(body.embed_tokens.weight, layers, norm(body.norm), linear(model.lm_head), cos[0], sin)


LLAMA_STYLE = ("llama", "mistral", "qwen2", "qwen3")  # the architectures llama_step is written for
STATIC_ROPE = ("default", "linear", "llama3", "yarn")  # rotary embeddings that depend on the position only


def has_written_out_step(model):
    """Whether llama_step is exact for this model (with a full-attention KV cache: the caller checks that)."""
    body = getattr(model, "model", None)
    if model.config.model_type not in LLAMA_STYLE or type(getattr(model, "lm_head", None)) is not torch.nn.Linear:
        return False
    if getattr(body.rotary_emb, "rope_type", None) not in STATIC_ROPE or type(body.embed_tokens) is not torch.nn.Embedding:
        return False
    linears = [getattr(layer.self_attn, n, None) for layer in body.layers for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
    linears += [getattr(layer.mlp, n, None) for layer in body.layers for n in ("gate_proj", "up_proj", "down_proj")]
    # Plain linear layers only: a wrapped one (an adapter, a quantised layer) needs its own forward.
    return all(type(m) is torch.nn.Linear for m in linears)
