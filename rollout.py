"""
Hand-written batched sampling on a stock transformers model, with a preallocated KV cache.

    prompts ──left-pad──> one prefill (KV cache filled, logits of the last position only)
            ──> decode loop: sample y_t, stop rows at EOS, feed y_t back, one position at a time

Why by hand rather than `model.generate`: RL needs more than the tokens. It needs the exact log-prob of
each sampled token under the sampling distribution, the response mask (EOS inside it: the decision to
stop is an action the policy is rewarded for), which rows ran out of budget, and a seeded generator so a
run can be reproduced. Writing the loop also shows there is no magic: a language model samples by
calling its forward pass once per token on a cache of past keys and values.

Speed (measured in bench/bench_rollout.py):
* one KV buffer per layer, allocated once for prompt + max_new_tokens and written in place, so no step
  concatenates tensors; an eager step attends only to the positions written so far (_PrefixLayer);
* one prefill per distinct prompt (the G samples of a group share theirs), logits of the last position only;
* the decoding step of Llama-style models (Llama, Mistral, Qwen2, Qwen3) written out by hand
  (model.llama_step): the model's weights, gathered once per rollout, and its arithmetic, without the
  module calls, mask building and output objects of model.forward, which cost more than the arithmetic on
  a small model; any other model steps through its own forward (_model_step);
* the attention mask of every step is a slice of one 4D mask built up front;
* the loop looks at "which rows are done?" every `sync_every` tokens (8 on a GPU, where that look makes
  the host wait for the device; every token on a CPU, where it is free); at each look, finished rows
  leave the batch and the KV cache (_compact: only the rows that move are copied), so long-tailed
  batches stop paying for rows that have already stopped;
* optionally (compile=True) the decoding step goes through torch.compile.
"""

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from model import has_written_out_step, llama_plan, llama_step, position_ids_from_mask
from transformers import StaticCache
from transformers.cache_utils import StaticLayer


@dataclass
class Rollout:
    sequences: torch.Tensor  # [B, P+R] left-padded prompts then responses (pad after a row's EOS)
    attention_mask: torch.Tensor  # [B, P+R] 1 on real prompt tokens and on response tokens
    response_mask: torch.Tensor  # [B, R] bool, the response tokens, EOS included
    logprobs: torch.Tensor  # [B, R] log-prob of each sampled token under the sampling distribution
    entropy: torch.Tensor  # [B, R] entropy of the sampling distribution at each response position
    truncated: torch.Tensor  # [B] bool, the row hit max_new_tokens without sampling EOS

    @staticmethod
    def cat(parts, pad_token_id):
        """Join rollouts of different prompt and response widths: pad prompts left, responses right."""
        P = max(p.sequences.shape[1] - p.response_mask.shape[1] for p in parts)
        R = max(p.response_mask.shape[1] for p in parts)

        def pad(x, p, value):
            r = p.response_mask.shape[1]
            prompt, response = x[:, : x.shape[1] - r], x[:, x.shape[1] - r :]
            return torch.cat([F.pad(prompt, (P - prompt.shape[1], 0), value=value), F.pad(response, (0, R - r), value=value)], 1)

        return Rollout(
            sequences=torch.cat([pad(p.sequences, p, pad_token_id) for p in parts]),
            attention_mask=torch.cat([pad(p.attention_mask, p, 0) for p in parts]),
            response_mask=torch.cat([F.pad(p.response_mask, (0, R - p.response_mask.shape[1])) for p in parts]),
            logprobs=torch.cat([F.pad(p.logprobs, (0, R - p.logprobs.shape[1])) for p in parts]),
            entropy=torch.cat([F.pad(p.entropy, (0, R - p.entropy.shape[1])) for p in parts]),
            truncated=torch.cat([p.truncated for p in parts]),
        )

    @property
    def responses(self):
        return self.sequences[:, -self.response_mask.shape[1] :]

    @property
    def lengths(self):
        return self.response_mask.sum(-1)

    def micro_batches(self, size):
        """
        Groups of at most `size` rows for the forward passes of scoring and training, rows of similar length
        together, each cut to its own longest prompt and response: the padding one long sample forces on a
        whole batch is never computed (a third of the toy step's tokens). Yields (rows, sequences,
        attention_mask, response_mask); the caller writes results back with out[rows, :width].
        """
        P = self.sequences.shape[1] - self.response_mask.shape[1]
        for rows in torch.argsort(self.attention_mask.sum(-1), stable=True).split(size):
            mask = self.attention_mask[rows]
            start = P - int(mask[:, :P].sum(-1).max())  # prompts are left-padded: the longest one starts here
            R = int(self.response_mask[rows].sum(-1).max())
            yield rows, self.sequences[rows, start : P + R], mask[:, start : P + R], self.response_mask[rows, :R]


def _distinct(prompt_ids):
    """The first row of each distinct prompt, and for every row the index of its prompt among those."""
    index, firsts, inverse = {}, [], []
    for row, p in enumerate(prompt_ids):
        if tuple(p) not in index:
            index[tuple(p)] = len(firsts)
            firsts.append(row)
        inverse.append(index[tuple(p)])
    return firsts, inverse


def left_pad(prompt_ids, pad_id, device):
    P = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), P), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, P - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, P - len(p) :] = 1
    return ids.to(device), mask.to(device)


def sampling_logprobs(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Log-probs of the distribution we actually sample from: logits / T, then top-k, then top-p."""
    logits = logits.float()
    if temperature != 1.0:  # x / 1 == x: skip a pass over [rows, vocab] in the common case
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass (the first always stays).
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits.log_softmax(-1)


def draw(probs, generator=None):
    """
    One token per row from probabilities [rows, vocab], by the exponential race: with E_i ~ Exp(1) independent,
    argmax_i p_i / E_i is token i with probability p_i. torch.multinomial(probs, 1) draws this way too (on a
    CPU the very same token from the same generator, tested); written out, sampling is no black box. The
    floor on E keeps a banned token (p_i = 0) from ever winning by 0 / 0.
    """
    e = torch.empty_like(probs).exponential_(generator=generator).clamp_(min=torch.finfo(probs.dtype).tiny)
    return (probs / e).argmax(-1)


class _PrefixLayer(StaticLayer):
    """
    A full-attention cache layer: one buffer allocated for the whole rollout and written in place, like
    transformers' StaticLayer, but attention reads only the filled prefix. StaticLayer hands attention the
    whole buffer, masked: the fixed shape a compiled step needs, at the price of attending at every step to
    all the positions not yet written (on average half of the response budget).
    """

    is_compileable = False  # the prefix grows by one position a step: a new shape at every step

    def __init__(self, max_cache_len):
        super().__init__(max_cache_len)
        self.length = 0  # a host int, so slicing the prefix never waits for the device

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, self.length = self.length, self.length + key_states.shape[-2]
        self.keys[:, :, start : self.length] = key_states
        self.values[:, :, start : self.length] = value_states
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def get_mask_sizes(self, query_length):
        return self.length + query_length, 0

    def get_seq_length(self):
        return self.length


def _kv_cache(model, max_len, static):
    """
    Preallocated KV cache: transformers' StaticCache, whose full-attention layers (all of them, for most
    models) become _PrefixLayers unless `static` shapes are needed (the compiled decode step).
    """
    cache = StaticCache(config=model.config, max_cache_len=max_len)
    if not static:
        cache.layers = [_PrefixLayer(max_len) if type(layer) is StaticLayer else layer for layer in cache.layers]
    return cache


# -----------------------------------------------------------------------------
# one decoding step: the logits of the next token of every running row


def _model_step(model, token, attention_mask, position, cache, plan=None):
    """Through the model's own forward: right for any architecture."""
    return model(input_ids=token[:, None], attention_mask=attention_mask, position_ids=position, cache=cache).logits[:, -1]


def _decoding_step(model, own_mask):
    """model.llama_step where it is exact (a Llama-style model with full attention in every layer), else _model_step."""
    return llama_step if own_mask and has_written_out_step(model) else _model_step


@functools.cache
def _compiled(step):
    """
    A decoding step through torch.compile: its many small kernels fused into fewer. Not as a CUDA graph
    (mode="reduce-overhead"): a graph replays on fixed buffers, and every rollout allocates a new KV cache,
    so each call would record a new graph; keeping one cache alive between calls instead would hold the KV
    of a whole rollout batch through the training step.
    """
    return torch.compile(step)


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
    eos_token_ids,
    pad_token_id,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    ignore_eos=False,
    generator=None,
    sync_every=None,
    compile=False,
):
    """
    Sample one response per prompt (repeat a prompt G times for a group). temperature=0 is greedy.
    ignore_eos=True is the paper's fixed-length control: EOS is sampled like any token but does not stop
    the row, so every response is exactly max_new_tokens long.

    sync_every: look for finished rows every this many tokens (default: every token on a CPU, where looking
    is free; every 8 on a GPU, where each look makes the host wait for the device).

    compile=True runs the one-token decoding step through torch.compile (see _compiled). A compiled
    step needs the same shapes at every step, so it reads the whole static cache and keeps finished rows in
    the batch; the first call compiles for a minute or more, and a call with a new batch size or length
    once more (for shapes that vary from then on). Off by default: it can pay where the step is bound by
    kernel launches (small models on a GPU); on a CPU it gains little (bench/bench_rollout.py --compile).
    """
    device = model.device
    sync_every = sync_every or (1 if device.type == "cpu" else 8)
    B = len(prompt_ids)
    prompt, prompt_mask = left_pad(prompt_ids, pad_token_id, device)
    P = prompt.shape[1]
    eos = torch.tensor(eos_token_ids, device=device)
    # Inference mode, lighter per operation than no_grad (no version counters: ~8% of a toy rollout); what
    # leaves the block below is built outside it, as ordinary tensors that training may use. Attention without
    # cuDNN's kernel, which builds a new plan for every new shape (~12 ms a call on an H100, measured), and a
    # rollout's shapes change at every step (one more key) and at every compaction (fewer rows).
    with torch.inference_mode(), sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        cache = _kv_cache(model, P + max_new_tokens, static=compile)
        # A full-attention model gets our own 4D mask [rows, 1, 1, keys] (True = attend), so transformers does not
        # build one at every step. An eager step reads a prefix of it, every key of which is written; a compiled
        # step reads all of it, so a key is unmasked when its token is written. (A sliding-window model keeps
        # transformers' masks, built from the 2D one, whose causal part hides the keys not yet written.)
        own_mask = all(type(layer) in (StaticLayer, _PrefixLayer) for layer in cache.layers)
        mask = F.pad(prompt_mask, (0, max_new_tokens), value=0 if compile and own_mask else 1)
        if own_mask:
            mask = mask.bool()[:, None, None]
        step = _decoding_step(model, own_mask)
        plan = llama_plan(model, P + max_new_tokens) if step is llama_step else None
        decode = _compiled(step) if compile else step
        tokens = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((B, max_new_tokens), device=device)
        entropy = torch.zeros((B, max_new_tokens), device=device)

        position = position_ids_from_mask(prompt_mask)
        # The G samples of a group share their prompt: prefill each distinct prompt once, then copy its keys and
        # values to every row that has it (with the cache's own reorder, the one beam search uses).
        firsts, inverse = _distinct(prompt_ids)
        out = model(input_ids=prompt[firsts], attention_mask=prompt_mask[firsts], position_ids=position[firsts], cache=cache, logits_to_keep=1)
        logits = out.logits[:, -1]
        if len(firsts) < B:
            inverse = torch.tensor(inverse, device=device)
            cache.reorder_cache(inverse)
            logits = logits[inverse]
        position = position[:, -1:]
        rows = torch.arange(B, device=device)  # which original row each running row is
        finished = torch.zeros(B, dtype=torch.bool, device=device)  # per running row
        for t in range(max_new_tokens):
            logp = sampling_logprobs(logits, max(temperature, 1e-5), top_k, top_p)
            probs = logp.exp()
            token = logp.argmax(-1) if temperature == 0 else draw(probs, generator)
            token = token.masked_fill(finished, pad_token_id)
            tokens[rows, t] = token
            logprobs[rows, t] = logp.gather(-1, token[:, None]).squeeze(-1)  # zeroed outside the response below
            entropy[rows, t] = torch.special.entr(probs).sum(-1)  # -sum_v p_v log p_v (entr(0) = 0: banned tokens add 0)
            if not ignore_eos:
                finished |= torch.isin(token, eos)
            if t + 1 == max_new_tokens:
                break
            if (t + 1) % sync_every == 0:
                running = (~finished).cpu()  # the one host-device sync, every sync_every tokens
                if not running.any():
                    break
                if not compile and not running.all():
                    rows, token, position, mask, finished = _compact(running, cache, rows, token, position, mask, finished)
            position = position + 1
            if compile and own_mask:
                mask[..., P + t] = True  # the key this step writes
            logits = decode(model, token, mask if compile else mask[..., : P + t + 1], position, cache, plan)

    # Response mask: every token up to and including the first EOS (every token when EOS is ignored).
    sampled_eos = torch.isin(tokens, eos)
    truncated = ~sampled_eos.any(-1)  # with ignore_eos: the model itself would not have stopped
    if ignore_eos:
        response_mask = torch.ones_like(sampled_eos)
    else:
        response_mask = (sampled_eos.long().cumsum(-1) - sampled_eos.long()) == 0
    # Trim the columns no row used, so later passes over the batch do not pay for them.
    R = int(response_mask.sum(-1).max())
    tokens, response_mask, logprobs, entropy = tokens[:, :R], response_mask[:, :R], logprobs[:, :R], entropy[:, :R]
    return Rollout(
        sequences=torch.cat([prompt, tokens], 1),
        attention_mask=torch.cat([prompt_mask, response_mask.long()], 1),
        response_mask=response_mask,
        logprobs=logprobs * response_mask,
        entropy=entropy * response_mask,
        truncated=truncated,
    )
