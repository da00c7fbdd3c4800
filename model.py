"""
Models: load any Hugging Face causal LM (hub id or local folder), make the frozen reference copy, score
tokens under a model without ever holding the full-vocabulary logits of a whole batch.

The embedded default models live in toy_models/<variant>/ (built by build_toy.py) and load exactly like
a hub model: `--model toy_models/toy` and `--model Qwen/Qwen2.5-3B-Instruct` take the same code path.

Precision: on CUDA the policy keeps fp32 master weights and runs its forward passes under bf16 autocast.
Plain bf16 weights would silently swallow the paper's lr=1e-6 AdamW updates (bf16 has 8 bits of mantissa,
so w + 1e-6*w rounds back to w). The frozen reference model is stored in bf16. On CPU everything is fp32.
"""

import contextlib
import copy
import os

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

from tasks.toytask import is_toy

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
    if dataset and is_toy(dataset):
        return os.path.join(TOY_MODELS, dataset)
    raise SystemExit(
        f"--model is required for dataset {dataset!r} (a hub id such as Qwen/Qwen2.5-0.5B-Instruct or a local folder)"
    )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


def load_tokenizer(path):
    # transformers builds an empty one-token tokenizer from a folder without tokenizer files: refuse that here
    if os.path.isdir(path) and not any(os.path.exists(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise SystemExit(
            f"error: {path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...): copy them "
            f"from the base model's folder"
        )
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # a folder's tokenizer.json or config.json damaged, a hub id offline, ...
        raise SystemExit(
            f"error: could not load tokenizer {path!r}: expected a hub id or a local folder with whole tokenizer files "
            f"and config.json ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    # Rollouts left-pad prompts, so a pad id is needed; EOS is the conventional stand-in.
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(path, device, dtype=torch.float32):
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as err:  # a missing folder, a weights file cut short (SafetensorError), a foreign pickle, ...
        raise SystemExit(
            f"error: could not load model {path!r}: expected a hub id or a local folder with config.json and whole "
            f"weights ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    return model.to(device)


@torch.no_grad()
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
    if hasattr(model, "sharded_scorer"):  # --fsdp: the pass runs inside FSDP's root unit (sharding.py)
        return model.sharded_scorer(sequences, attention_mask, response_mask, chunk_elements=chunk_elements, entropy=entropy)
    return _response_logprobs(model, sequences, attention_mask, response_mask, chunk_elements, entropy)


def _response_logprobs(model, sequences, attention_mask, response_mask, chunk_elements=2**26, entropy=False):
    width = response_mask.shape[1]
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    with autocast(model.device):
        hidden = decoder(
            input_ids=sequences, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask)
        ).last_hidden_state
    # The hidden state at position p predicts token p+1: the response tokens are predicted by [P-1, P+R-1).
    hidden = hidden[:, -width - 1 : -1][response_mask]
    targets = sequences[:, -width:][response_mask]
    softcap = getattr(model.config, "final_logit_softcapping", None)
    rows = max(1, chunk_elements // head.out_features)
    token_logp, token_entropy = [], []
    for i in range(0, hidden.shape[0], rows):
        args = (head, hidden[i : i + rows], targets[i : i + rows], softcap, entropy)
        with autocast(model.device):
            lp, ent = checkpoint(_logprob_chunk, *args, use_reentrant=False) if torch.is_grad_enabled() else _logprob_chunk(*args)
        token_logp.append(lp)
        token_entropy.append(ent)
    zeros = torch.zeros(response_mask.shape, dtype=torch.float32, device=sequences.device)
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
