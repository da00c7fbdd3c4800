"""
model.response_logprobs with each distinct prompt through the decoder once (`--share-prompts`): the same
log-probs and gradients (up to float rounding: tests/test_precision_and_sharing.py), fewer tokens computed.

A group's G samples share their prompt, and the plain pass recomputes that prompt G times, for the no-grad
scoring passes and for the forward and backward of the update. When prompts are long against responses (a
few-shot prompt of 115 tokens, answers of 20) that is most of a step's arithmetic. Here:

    prompt pass     the decoder over each distinct prompt once, keeping its keys and values (a KV cache)
    copy            every row gets its prompt's keys and values (an index_select: in the backward pass the
                    G rows' gradients are summed into the one prompt pass)
    response pass   the decoder over the responses only, attending to the copied prompt and to themselves

The hidden state of the prompt's last token predicts the first response token; the response pass's hidden
states predict the rest; model.head_logprobs turns them into log-probs as the plain pass does.
"""

import torch
from transformers import DynamicCache

from model import autocast, head_logprobs, position_ids_from_mask
from plumbing.fast_rollout import distinct_rows


def enable(model):
    """Route model.response_logprobs(model, ...) through response_logprobs below."""
    model.scorer = response_logprobs
    return model


def response_logprobs(model, sequences, attention_mask, response_mask, chunk_elements=2**26, entropy=False):
    """model.response_logprobs's pass (same arguments, same result), each distinct prompt computed once."""
    width = response_mask.shape[1]
    P = sequences.shape[1] - width
    positions = position_ids_from_mask(attention_mask)
    # Rows share a prompt when its tokens and its padding agree (two equal prompts always pad alike in one batch).
    firsts, inverse = distinct_rows(torch.cat([sequences[:, :P], attention_mask[:, :P]], 1).tolist())
    firsts, inverse = torch.tensor(firsts, device=sequences.device), torch.tensor(inverse, device=sequences.device)
    decoder = model.get_decoder()
    cache = DynamicCache(config=model.config)
    with autocast(model):
        prompt = decoder(
            input_ids=sequences[firsts, :P],
            attention_mask=attention_mask[firsts, :P],
            position_ids=positions[firsts, :P],
            cache=cache,
            use_cache=True,
        ).last_hidden_state
        hidden = prompt[inverse, -1:]  # predicts each row's first response token
        if width > 1:
            cache.reorder_cache(inverse)  # row i attends to the keys and values of its own prompt
            responses = decoder(
                input_ids=sequences[:, P:-1],  # y_0 .. y_{R-2}, which predict y_1 .. y_{R-1}
                attention_mask=attention_mask[:, :-1],
                position_ids=positions[:, P:-1],
                cache=cache,
                use_cache=True,
            ).last_hidden_state
            hidden = torch.cat([hidden, responses], 1)
    return head_logprobs(model, hidden, sequences[:, P:], response_mask, chunk_elements, entropy)
