"""
The model side of one RL step: the frozen reference copy pi_ref, the precision of every forward pass, the tokens
that end a response, and per-token log-probs of sampled responses, computed without ever holding the
full-vocabulary logits of a whole batch. (Loading a model from what --model names: plumbing/loading.py.)

Precision: on CUDA the policy keeps fp32 master weights and runs its forward passes under bf16 autocast.
Plain bf16 weights would silently swallow the paper's lr=1e-6 AdamW updates (bf16 has 8 bits of mantissa,
so w + 1e-6*w rounds back to w). The frozen reference model is stored in bf16. On a CPU everything is fp32,
unless --bf16 asks for the same autocast there (use_bf16): on a CPU with bf16 matrix units (avx512_bf16, AMX)
its matrix products run 2-3 times faster, and the log-probs move by a few hundredths of a nat (tested).
"""

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


@torch.no_grad()
def frozen_copy(model, dtype=None):
    """The reference model pi_ref: an exact copy of the starting policy that never trains."""
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    return ref.to(dtype) if dtype is not None else ref


def use_bf16(model):
    """--bf16: this model's forward passes run under bf16 autocast on a CPU too (its weights stay as they are)."""
    if model.device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise SystemExit("error: --bf16: this CPU has no bf16 instructions (avx512_bf16 or AMX): it would be slower, not faster")
    model.bf16_autocast = True  # read by autocast(); copied with the model (frozen_copy)
    return model


def autocast(model):
    """The precision of `model`'s forward passes: bf16 autocast on CUDA (fp32 master weights) and under --bf16,
    plain fp32 elsewhere."""
    if model.device.type == "cuda" or getattr(model, "bf16_autocast", False):
        return torch.autocast(model.device.type, dtype=torch.bfloat16)
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
    if hasattr(model, "sharded_scorer"):  # --fsdp: the pass runs inside FSDP's root unit (sharding.py)
        return model.sharded_scorer(sequences, attention_mask, response_mask, chunk_elements=chunk_elements, entropy=entropy)
    # --share-prompts: plumbing/shared_prompts.py's pass, the same log-probs with each distinct prompt computed once
    score = getattr(model, "scorer", _response_logprobs)
    return score(model, sequences, attention_mask, response_mask, chunk_elements, entropy)


def _response_logprobs(model, sequences, attention_mask, response_mask, chunk_elements=2**26, entropy=False):
    width = response_mask.shape[1]
    with autocast(model):
        hidden = model.get_decoder()(
            input_ids=sequences, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask)
        ).last_hidden_state
    # The hidden state at position p predicts token p+1: the response tokens are predicted by [P-1, P+R-1).
    return head_logprobs(model, hidden[:, -width - 1 : -1], sequences[:, -width:], response_mask, chunk_elements, entropy)


def head_logprobs(model, hidden, targets, response_mask, chunk_elements=2**26, entropy=False):
    """log pi(y_t) [B, R] of the tokens `targets` [B, R] from the decoder's hidden states [B, R, H] that predict
    them, over the positions of response_mask (and their entropies): the output head in vocabulary chunks."""
    hidden, targets = hidden[response_mask], targets[response_mask]
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    rows = max(1, chunk_elements // head.out_features)
    token_logp, token_entropy = [], []
    for i in range(0, hidden.shape[0], rows):
        args = (head, hidden[i : i + rows], targets[i : i + rows], softcap, entropy)
        with autocast(model):
            lp, ent = checkpoint(_logprob_chunk, *args, use_reentrant=False) if torch.is_grad_enabled() else _logprob_chunk(*args)
        token_logp.append(lp)
        token_entropy.append(ent)
    zeros = torch.zeros(response_mask.shape, dtype=torch.float32, device=targets.device)
    out_logp = zeros.masked_scatter(response_mask, torch.cat(token_logp))
    return out_logp, zeros.masked_scatter(response_mask, torch.cat(token_entropy)) if entropy else None


def micro_batches(roll, size):
    """
    The rows of a Rollout in groups of at most `size` for the forward passes of scoring and training, rows of
    similar length together, each group cut to its own longest prompt and response: the padding one long
    sample forces on a whole batch is never computed (a third of the toy step's tokens). Yields (rows,
    sequences, attention_mask, response_mask); the caller writes results back with out[rows, :width].
    """
    P = roll.sequences.shape[1] - roll.response_mask.shape[1]
    for rows in torch.argsort(roll.attention_mask.sum(-1), stable=True).split(size):
        mask = roll.attention_mask[rows]
        start = P - int(mask[:, :P].sum(-1).max())  # prompts are left-padded: the longest one starts here
        width = int(roll.response_mask[rows].sum(-1).max())
        yield (rows, roll.sequences[rows, start : P + width], mask[:, start : P + width], roll.response_mask[rows, :width])


@torch.no_grad()
def rollout_logprobs(model, roll, size, entropy=False):
    """log pi(y_t | x, y_<t) [N, R] of a Rollout's samples under `model`, no grad, `size` rows at a time
    (micro_batches), and with entropy=True the entropies (else None)."""
    logp = torch.zeros_like(roll.logprobs)
    ent = torch.zeros_like(roll.logprobs) if entropy else None
    for rows, sequences, attention_mask, response_mask in micro_batches(roll, size):
        lp, e = response_logprobs(model, sequences, attention_mask, response_mask, entropy=entropy)
        logp[rows, : lp.shape[1]] = lp
        if entropy:
            ent[rows, : e.shape[1]] = e
    return logp, ent
