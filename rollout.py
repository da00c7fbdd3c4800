"""
Hand-written batched sampling on a stock transformers model, with a preallocated KV cache.

    prompts ──left-pad──> one prefill (KV cache filled, logits of the last position only)
            ──> decode loop: sample y_t, stop rows at EOS, feed y_t back, one position at a time

Why by hand rather than `model.generate`: RL needs more than the tokens. It needs the exact log-prob of
each sampled token under the sampling distribution, the response mask (EOS inside it: the decision to
stop is an action the policy is rewarded for), which rows ran out of budget, and a seeded generator so a
run can be reproduced. Writing the loop also shows there is no magic: a language model samples by
calling its forward pass once per token on a cache of past keys and values.

Speed: the cache is a transformers StaticCache, allocated once for prompt + max_new_tokens, so no step
concatenates tensors; the prefill computes logits for the last prompt position only; the loop checks
"all rows done?" only every `sync_every` tokens, because that check forces a host-device sync on a GPU;
and once at most half of the rows are still running, the finished rows are dropped from the batch and
from the cache, so long-tailed batches stop paying for rows that have already stopped.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model import position_ids_from_mask
from transformers import StaticCache


@dataclass
class Rollout:
    sequences: torch.Tensor  # [B, P+R] left-padded prompts then responses (pad after a row's EOS)
    attention_mask: torch.Tensor  # [B, P+R] 1 on real prompt tokens and on response tokens
    response_mask: torch.Tensor  # [B, R] bool, the response tokens, EOS included
    logprobs: torch.Tensor  # [B, R] log-prob of each sampled token under the sampling distribution
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
            truncated=torch.cat([p.truncated for p in parts]),
        )

    @property
    def responses(self):
        return self.sequences[:, -self.response_mask.shape[1] :]

    @property
    def lengths(self):
        return self.response_mask.sum(-1)


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
    logits = logits.float() / temperature
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


def _drop_finished(keep, cache, *tensors):
    """Remove finished rows from the running batch and from every layer of the KV cache."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[keep], layer.values[keep]
    return [t[keep] for t in tensors]


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
    sync_every=8,
):
    """
    Sample one response per prompt (repeat a prompt G times for a group). temperature=0 is greedy.
    ignore_eos=True is the paper's fixed-length control: EOS is sampled like any token but does not stop
    the row, so every response is exactly max_new_tokens long.
    """
    device = model.device
    B = len(prompt_ids)
    prompt, prompt_mask = left_pad(prompt_ids, pad_token_id, device)
    P = prompt.shape[1]
    eos = torch.tensor(eos_token_ids, device=device)
    cache = StaticCache(config=model.config, max_cache_len=P + max_new_tokens)
    # The attention mask of every step is a prefix of this one buffer: prompt mask, then ones.
    full_mask = torch.cat([prompt_mask, torch.ones((B, max_new_tokens), dtype=torch.long, device=device)], 1)
    tokens = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((B, max_new_tokens), device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)

    position = position_ids_from_mask(prompt_mask)
    out = model(input_ids=prompt, attention_mask=prompt_mask, position_ids=position, cache=cache, logits_to_keep=1)
    position = position[:, -1:]
    rows = torch.arange(B, device=device)  # which original row each running row is
    mask = full_mask
    for t in range(max_new_tokens):
        logp = sampling_logprobs(out.logits[:, -1], max(temperature, 1e-5), top_k, top_p)
        if temperature == 0:
            token = logp.argmax(-1)
        else:
            token = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
        is_done = done[rows]
        token = token.masked_fill(is_done, pad_token_id)
        tokens[rows, t] = token
        logprobs[rows, t] = logp.gather(-1, token[:, None]).squeeze(-1).masked_fill(is_done, 0.0)
        if not ignore_eos:
            done[rows] |= torch.isin(token, eos)
        if t + 1 == max_new_tokens:
            break
        if (t + 1) % sync_every == 0:
            running = ~done[rows]
            n = int(running.sum())  # the one host sync, every sync_every tokens
            if n == 0:
                break
            if n <= len(rows) // 2:
                rows, token, position, mask = _drop_finished(running, cache, rows, token, position, mask)
        position = position + 1
        out = model(input_ids=token[:, None], attention_mask=mask[:, : P + t + 1], position_ids=position, cache=cache)

    # Response mask: every token up to and including the first EOS (every token when EOS is ignored).
    sampled_eos = torch.isin(tokens, eos)
    truncated = ~sampled_eos.any(-1)  # with ignore_eos: the model itself would not have stopped
    if ignore_eos:
        response_mask = torch.ones_like(sampled_eos)
    else:
        response_mask = (sampled_eos.long().cumsum(-1) - sampled_eos.long()) == 0
    # Trim the columns no row used, so later passes over the batch do not pay for them.
    R = int(response_mask.sum(-1).max())
    tokens, response_mask, logprobs = tokens[:, :R], response_mask[:, :R], logprobs[:, :R]
    return Rollout(
        sequences=torch.cat([prompt, tokens], 1),
        attention_mask=torch.cat([prompt_mask, response_mask.long()], 1),
        response_mask=response_mask,
        logprobs=logprobs * response_mask,
        truncated=truncated,
    )
