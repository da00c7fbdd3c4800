"""
The rollout of rollout.py, made fast: same signature, same samples (on a CPU the same seeded tokens, in fp32
log-probs and entropies to 1e-5: tests/test_rollout.py; on a GPU, where torch.multinomial draws otherwise, the
same distribution), used by default. Nothing here changes what is sampled; read rollout.py first. What makes it faster (measured in bench/bench_rollout.py):

* one KV buffer per layer, allocated once for prompt + max_new_tokens and written in place, so no step
  concatenates tensors; attention reads only the positions written so far (_PrefixLayer);
* one prefill per distinct prompt (the G samples of a group share theirs), logits of the last position only;
* the decoding step of Llama-style models (Llama, Mistral, Qwen2, Qwen3) written out by hand (llama_step):
  the model's weights, gathered once per rollout, and its arithmetic, without the module calls, mask
  building and output objects of model.forward, which cost more than the arithmetic on a small model; any
  other model steps through its own forward (_model_step);
* the attention mask of every step is a slice of one 4D mask built up front;
* the loop looks at "which rows are done?" every `sync_every` tokens (8 on a GPU, where that look makes the
  host wait for the device; every token on a CPU, where it is free); at each look, finished rows leave the
  batch and the KV cache (_compact: only the rows that move are copied), so long-tailed batches stop paying
  for rows that have already stopped. Each running row still gets the random numbers rollout.py gives it (draw).

It leans on transformers' cache internals (StaticCache's layers, StaticLayer.lazy_initialization): a newer
transformers may break it; rollout.py uses only the model's forward and DynamicCache. `--plain-rollout` on the
command line takes the reference instead (the one choice: `sampler=` in trainer.sampling_settings and evaluate.py).
"""

import functools
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import StaticCache
from transformers.cache_utils import StaticLayer

from model import position_ids_from_mask
from rollout import left_pad, sampling_logprobs, self_certainty, to_rollout


def distinct_rows(rows):
    """The first row of each distinct row (a list of token lists: prompts), and for every row the index of its own
    among those. Also shared_prompts.py's, for its prompt pass."""
    index, firsts, inverse = {}, [], []
    for row, p in enumerate(rows):
        if tuple(p) not in index:
            index[tuple(p)] = len(firsts)
            firsts.append(row)
        inverse.append(index[tuple(p)])
    return firsts, inverse


def draw(probs, rank=None, generator=None):
    """
    One token per running row from probabilities [running rows, vocab], by the exponential race: with
    E_i ~ Exp(1) independent, argmax_i p_i / E_i is token i with probability p_i. The noise rows are handed out
    in the rows' original order (`rank`: each running row's place in it; None when the batch is still in
    order), so the generator gives each row what rollout.py's torch.multinomial over the running rows gives it,
    which on a CPU draws this very token (tested). The floor on E keeps a banned token (p_i = 0) from ever
    winning by 0 / 0.
    """
    e = torch.empty_like(probs).exponential_(generator=generator).clamp_(min=torch.finfo(probs.dtype).tiny)
    return (probs / (e if rank is None else e[rank])).argmax(-1)


class _PrefixLayer(StaticLayer):
    """
    A full-attention cache layer: one buffer allocated for the whole rollout and written in place, like
    transformers' StaticLayer, but attention reads only the filled prefix. StaticLayer hands attention the
    whole buffer, masked: the fixed shape a compiled step needs, at the price of attending at every step to
    all the positions not yet written (on average half of the response budget).
    """

    def __init__(self, max_cache_len, dtype=None):
        super().__init__(max_cache_len)
        self.length = 0  # a host int, so slicing the prefix never waits for the device
        self.dtype = dtype  # None: the dtype of the first keys and values

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            dtype = self.dtype or key_states.dtype
            self.lazy_initialization(key_states.to(dtype), value_states.to(dtype))
        start, self.length = self.length, self.length + key_states.shape[-2]
        self.keys[:, :, start : self.length] = key_states
        self.values[:, :, start : self.length] = value_states
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def get_mask_sizes(self, query_length):
        return self.length + query_length, 0

    def get_seq_length(self):
        return self.length


def _kv_cache(model, max_len):
    """Preallocated KV cache: transformers' StaticCache, its full-attention layers (all, for most models) as _PrefixLayers.
    Under --bf16 on a CPU they hold bf16, the precision autocast gives attention: kept at the model's fp32, the whole
    cache would be cast again at every token (measured: a sixth of a SmolLM2 rollout)."""
    cache = StaticCache(config=model.config, max_cache_len=max_len)
    dtype = torch.get_autocast_dtype("cpu") if model.device.type == "cpu" and torch.is_autocast_enabled("cpu") else None
    cache.layers = [_PrefixLayer(max_len, dtype) if type(layer) is StaticLayer else layer for layer in cache.layers]
    return cache


# -----------------------------------------------------------------------------
# one decoding step: the logits of the next token of every running row


def _model_step(model, token, attention_mask, position, cache, plan=None):
    """Through the model's own forward: right for any architecture."""
    return model(input_ids=token[:, None], attention_mask=attention_mask, position_ids=position, cache=cache).logits[:, -1]


def _decoding_step(model, own_mask):
    """llama_step where it is exact (a Llama-style model with full attention in every layer), else _model_step."""
    return llama_step if own_mask and has_written_out_step(model) else _model_step


def _compact(running, cache, *tensors):
    """
    Drop the finished rows from the running batch and from every layer of the KV cache, in place: the last
    running rows move into the slots of finished ones, then every tensor keeps its first n rows (a view).
    Only the moved rows are copied, and no second copy of the cache is ever allocated.
    """
    n = int(running.sum())  # `running` is on the host: deciding what moves where costs the device nothing
    device = tensors[0].device
    holes = (~running[:n]).nonzero().squeeze(1).to(device)
    sources = (running[n:].nonzero().squeeze(1) + n).to(device)

    def move(x):
        x[holes] = x[sources]
        return x[:n]

    for layer in cache.layers:
        layer.keys, layer.values = move(layer.keys), move(layer.values)
    return [move(t) for t in tensors]


@torch.no_grad()
def rollout(
    model,
    prompt_ids,
    max_new_tokens,
    eos_ids,
    pad_id,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    ignore_eos=False,
    generator=None,
    sync_every=None,
):
    """rollout.rollout, faster. sync_every: look for finished rows every this many tokens (default: every
    token on a CPU, where looking is free; every 8 on a GPU, where each look makes the host wait)."""
    device = model.device
    sync_every = sync_every or (1 if device.type == "cpu" else 8)
    B = len(prompt_ids)
    prompt, prompt_mask = left_pad(prompt_ids, pad_id, device)
    P = prompt.shape[1]
    eos = torch.tensor(eos_ids, device=device)
    # Inference mode, lighter per operation than no_grad (no version counters: ~8% of a toy rollout); what
    # leaves the block below is built outside it, as ordinary tensors that training may use. Attention without
    # cuDNN's kernel, which builds a new plan for every new shape (~12 ms a call on an H100, measured), and a
    # rollout's shapes change at every step (one more key) and at every compaction (fewer rows).
    with torch.inference_mode(), sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        cache = _kv_cache(model, P + max_new_tokens)
        # A full-attention model gets our own 4D mask [rows, 1, 1, keys] (True = attend), so transformers does not
        # build one at every step; a step reads a prefix of it, every key of which is written. (A sliding-window
        # model keeps transformers' masks, built from the 2D one.)
        own_mask = all(type(layer) is _PrefixLayer for layer in cache.layers)
        mask = F.pad(prompt_mask, (0, max_new_tokens), value=1)
        if own_mask:
            mask = mask.bool()[:, None, None]
        step = _decoding_step(model, own_mask)
        plan = llama_plan(model, P + max_new_tokens) if step is llama_step else None
        tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((B, max_new_tokens), device=device)
        entropy = torch.zeros((B, max_new_tokens), device=device)
        certainty = torch.zeros((B, max_new_tokens), device=device)

        position = position_ids_from_mask(prompt_mask)
        # The G samples of a group share their prompt: prefill each distinct prompt once, then copy its keys and
        # values to every row that has it (with the cache's own reorder, the one beam search uses).
        firsts, inverse = distinct_rows(prompt_ids)
        out = model(
            input_ids=prompt[firsts],
            attention_mask=prompt_mask[firsts],
            position_ids=position[firsts],
            cache=cache,
            logits_to_keep=1,
        )
        logits = out.logits[:, -1]
        if len(firsts) < B:
            inverse = torch.tensor(inverse, device=device)
            cache.reorder_cache(inverse)
            logits = logits[inverse]
        position = position[:, -1:]
        rows = torch.arange(B, device=device)  # which original row each running row is
        rank = None  # each running row's place among them in the original order (None: they are in order)
        finished = torch.zeros(B, dtype=torch.bool, device=device)  # per running row
        for t in range(max_new_tokens):
            logp = sampling_logprobs(logits, max(temperature, 1e-5), top_k, top_p)
            probs = logp.exp()
            token = logp.argmax(-1) if temperature == 0 else draw(probs, rank, generator)
            token = token.masked_fill(finished, pad_id)
            tokens[rows, t] = token
            logprobs[rows, t] = logp.gather(-1, token[:, None]).squeeze(-1)
            entropy[rows, t] = torch.special.entr(probs).sum(-1)
            certainty[rows, t] = self_certainty(logits)
            if not ignore_eos:
                finished |= torch.isin(token, eos)
            if t + 1 == max_new_tokens:
                break
            if (t + 1) % sync_every == 0:
                running = (~finished).cpu()  # the one host-device sync, every sync_every tokens
                if not running.any():
                    break
                if not running.all():
                    rows, token, position, mask, finished = _compact(running, cache, rows, token, position, mask, finished)
                    rank = rows.argsort().argsort()
            position = position + 1
            logits = step(model, token, mask[..., : P + t + 1], position, cache, plan)
    return to_rollout(prompt, prompt_mask, tokens, logprobs, entropy, certainty, eos, ignore_eos)


# -----------------------------------------------------------------------------
# one decoding step of a Llama-style model, written out


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
        return (
            functools.partial(F.rms_norm, normalized_shape=tuple(m.weight.shape), weight=m.weight, eps=m.variance_epsilon)
            if fused
            else m
        )

    # Under --bf16 on a CPU, the matrices are cast to bf16 once here: autocast would cast every weight again at
    # every token, which on a CPU takes back all that bf16 gains (measured). The result is autocast's arithmetic.
    # (On a GPU autocast's own cache keeps them; a second copy there would cost memory the calculator omits.)
    cast = model.device.type == "cpu" and torch.is_autocast_enabled("cpu")

    def linear(m):
        if cast:
            dtype = torch.get_autocast_dtype("cpu")
            return m.weight.to(dtype), None if m.bias is None else m.bias.to(dtype)
        return m.weight, m.bias

    layers = []
    for layer in body.layers:
        attn, mlp = layer.self_attn, layer.mlp
        qk_norm = [norm(attn.q_norm), norm(attn.k_norm)] if hasattr(attn, "q_norm") else [None, None]
        layers.append(
            LlamaLayer(
                norm(layer.input_layernorm),
                linear(attn.q_proj),
                linear(attn.k_proj),
                linear(attn.v_proj),
                *qk_norm,
                linear(attn.o_proj),
                norm(layer.post_attention_layernorm),
                linear(mlp.gate_proj),
                linear(mlp.up_proj),
                linear(mlp.down_proj),
                F.silu if model.config.hidden_act == "silu" else mlp.act_fn,
                attn.head_dim,
                attn.scaling,
            )
        )
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
