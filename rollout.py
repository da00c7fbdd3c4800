"""
Sampling responses by hand: a batch of prompts, left-padded, one forward pass per token on a KV cache.

    prompts ──left-pad──> prefill: one forward over every prompt, keys and values kept in the cache
            ──> loop: sample y_t from pi(. | x, y_<t), feed it back, stop a row at EOS

Why not `model.generate`: RL needs more than the tokens. It needs the log-prob of each sampled token under
the distribution it was sampled from, the response mask (EOS inside it: stopping is an action the policy is
rewarded for), which rows ran out of budget, and a seeded generator so a run can be reproduced. Writing the
loop also shows there is no magic: a language model samples by calling its forward pass once per token.

`rollout` is the reference. fast_rollout.py is its faster twin (a written-out decoding step, a preallocated cache,
finished rows dropped from the batch): same signature, and on CPU the same samples (tested); on a GPU the two
can differ in the last bits of a logit, and so, rarely, in a token. `sample` runs either one (the caller hands it
in: training and evaluation choose in one place, plumbing/options.py's sampling_settings) over a list of prompts,
a batch at a time, and decodes the responses.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from model import autocast, eos_ids


@dataclass
class Rollout:
    sequences: torch.Tensor  # [B, P+R] left-padded prompts, then responses (pad after a row's EOS)
    attention_mask: torch.Tensor  # [B, P+R] 1 on real prompt tokens and on response tokens
    response_mask: torch.Tensor  # [B, R] bool: the response tokens, EOS included
    logprobs: torch.Tensor  # [B, R] log-prob of each sampled token under the sampling distribution
    entropy: torch.Tensor  # [B, R] entropy of the sampling distribution at each response position
    certainty: torch.Tensor  # [B, R] self-certainty of the model's own logits z: logsumexp(z) - mean_j z_j
    truncated: torch.Tensor  # [B] bool: the row hit max_new_tokens without sampling EOS

    @property
    def responses(self):
        return self.sequences[:, -self.response_mask.shape[1] :]

    @property
    def lengths(self):
        return self.response_mask.sum(-1)


def left_pad(prompt_ids, pad_id, device):
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def sampling_logprobs(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Log-probs of the distribution we actually sample from: logits / T, then top-k, then top-p."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # the tokens ranked above already hold top_p
        drop[..., 0] = False  # the top token always stays: a top_p that rounds to 0 in float32 (< 1.4e-45) means it alone
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits.log_softmax(-1)


def self_certainty(logits):
    """KL(uniform || softmax(z)) + log V = logsumexp(z) - mean_j z_j, of the model's own logits (temperature 1,
    nothing truncated): how far the next-token distribution is from uniform (INTUITOR's reward, per token)."""
    logits = logits.float()
    return logits.logsumexp(-1) - logits.mean(-1)


def to_rollout(prompt, prompt_mask, tokens, logprobs, entropy, certainty, eos, ignore_eos):
    """The Rollout of sampled tokens [B, T]: the response is every token up to and including the first EOS
    (every token when EOS is ignored); columns that no row used are trimmed."""
    sampled_eos = torch.isin(tokens, eos)
    response_mask = torch.ones_like(sampled_eos) if ignore_eos else (sampled_eos.cumsum(-1) - sampled_eos.long()) == 0
    width = int(response_mask.sum(-1).max())
    tokens, response_mask = tokens[:, :width], response_mask[:, :width]
    truncated = ~sampled_eos.any(-1)  # with ignore_eos: the model itself would not have stopped
    return Rollout(
        sequences=torch.cat([prompt, tokens], 1),
        attention_mask=torch.cat([prompt_mask, response_mask.long()], 1),
        response_mask=response_mask,
        logprobs=logprobs[:, :width].masked_fill(~response_mask, 0),  # a pad's log-prob may be -inf
        entropy=entropy[:, :width].masked_fill(~response_mask, 0),
        certainty=certainty[:, :width].masked_fill(~response_mask, 0),
        truncated=truncated,
    )


@torch.no_grad()
def rollout(
    model, prompt_ids, max_new_tokens, eos_ids, pad_id, temperature=1.0, top_k=0, top_p=1.0, ignore_eos=False, generator=None
):
    """
    One response per prompt (repeat a prompt G times for a group of G). temperature=0 is greedy.
    ignore_eos=True is the paper's fixed-length control: EOS is sampled like any token but does not stop
    the row, so every response is exactly max_new_tokens long.
    """
    device = model.device
    prompt, prompt_mask = left_pad(prompt_ids, pad_id, device)
    eos = torch.tensor(eos_ids, device=device)
    mask = prompt_mask
    position = (mask.cumsum(-1) - 1).clamp(min=0)  # a left-padded row's first real token is at position 0
    cache = DynamicCache(config=model.config)
    logits = model(input_ids=prompt, attention_mask=mask, position_ids=position, cache=cache).logits[:, -1]
    finished = torch.zeros(len(prompt_ids), dtype=torch.bool, device=device)
    tokens, logprobs, entropy, certainty = [], [], [], []
    for t in range(max_new_tokens):
        logp = sampling_logprobs(logits, max(temperature, 1e-5), top_k, top_p)
        probs = logp.exp()
        running = ~finished
        token = torch.full_like(finished, pad_id, dtype=torch.long)  # a finished row only pads
        if temperature == 0:
            token[running] = logp[running].argmax(-1)
        else:  # one draw for each row still running, in row order
            # A model whose logits are not finite (a diverged run) still draws a token here, as fast_rollout.py does;
            # its log-prob is NaN, which evaluation refuses and which makes a training step's loss non-finite.
            token[running] = torch.multinomial(probs[running].nan_to_num(1.0), 1, generator=generator).squeeze(-1)
        tokens.append(token)
        logprobs.append(logp.gather(-1, token[:, None]).squeeze(-1))  # log pi(y_t | x, y_<t)
        entropy.append(torch.special.entr(probs).sum(-1))  # -sum_v p_v log p_v
        certainty.append(self_certainty(logits))
        if not ignore_eos:
            finished |= torch.isin(token, eos)
        if finished.all() or t + 1 == max_new_tokens:
            break
        mask = F.pad(mask, (0, 1), value=1)
        position = position[:, -1:] + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=position, cache=cache).logits[:, -1]
    tokens, logprobs, entropy, certainty = (torch.stack(x, 1) for x in (tokens, logprobs, entropy, certainty))
    return to_rollout(prompt, prompt_mask, tokens, logprobs, entropy, certainty, eos, ignore_eos)


# -----------------------------------------------------------------------------
# many prompts: batches of rollouts, joined, and their texts


def sample(
    model, tokenizer, prompt_ids, n, max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, ignore_eos=False, generator=None,
    batch_size=256, sampler=rollout,
):  # fmt: skip
    """n responses to each prompt (token ids), consecutive in the batch, drawn `batch_size` sequences at a time by
    `sampler` (`rollout` above, or any function with its signature). Returns (Rollout, the response texts)."""
    training = model.training
    model.eval()  # sampling needs the KV cache, which gradient checkpointing turns off in train mode
    prompts = [p for p in prompt_ids for _ in range(n)]
    eos, pad = eos_ids(tokenizer, model), tokenizer.pad_token_id
    parts = []
    for i in range(0, len(prompts), batch_size):
        with autocast(model):
            batch = prompts[i : i + batch_size]
            parts.append(sampler(model, batch, max_new_tokens, eos, pad, temperature, top_k, top_p, ignore_eos, generator))
    model.train(training)
    roll = cat_rollouts(parts, pad)
    ids = roll.responses.masked_fill(~roll.response_mask, pad)
    return roll, tokenizer.batch_decode(ids, skip_special_tokens=True)


def cat_rollouts(parts, pad_id):
    """Join rollouts of different prompt and response widths: prompts padded on the left, responses on the right."""
    P = max(p.sequences.shape[1] - p.response_mask.shape[1] for p in parts)
    R = max(p.response_mask.shape[1] for p in parts)
    both = lambda x, p, value: F.pad(x, (P + p.response_mask.shape[1] - x.shape[1], R - p.response_mask.shape[1]), value=value)
    right = lambda x, p: F.pad(x, (0, R - p.response_mask.shape[1]))
    per_token = ("response_mask", "logprobs", "entropy", "certainty")
    return Rollout(
        sequences=torch.cat([both(p.sequences, p, pad_id) for p in parts]),
        attention_mask=torch.cat([both(p.attention_mask, p, 0) for p in parts]),
        **{name: torch.cat([right(getattr(p, name), p) for p in parts]) for name in per_token},
        truncated=torch.cat([p.truncated for p in parts]),
    )
