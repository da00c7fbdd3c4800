"""
Build the embedded base model from scratch: a character tokenizer and a ~0.4M-parameter Qwen2, trained by
supervised next-token prediction on the toy task's mixture of long and short solutions (toytask.py).

    python -m toy_models.build_toy                          # both variants -> toy_models/toy, toy_models/toy-aligned
    python -m toy_models.build_toy --variant toy --steps 50 --out /tmp/toy   # a quick smoke build

Both are saved with save_pretrained, so they load exactly like a hub model. The checkpoints ship in the
repo so the main job starts at once; this script is how they were made (same seed, same model).
"""

import os
import random
import time

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from model import response_logprobs
from plumbing import options
from plumbing.loading import TOY_MODELS
from rollout import left_pad
from tasks import toytask

SPECIAL = ["<pad>", "<eos>"]


def build_tokenizer():
    """One token per character of the task, plus <pad> and <eos>."""
    vocab = {t: i for i, t in enumerate(SPECIAL + list(toytask.CHARSET))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def build_model(tokenizer, seed):
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=96,
        intermediate_size=384,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return Qwen2ForCausalLM(config)


def sft_batch(tokenizer, variant, rng, batch_size):
    """Left-padded prompts + right-padded responses (with EOS), the same layout a rollout returns."""
    pairs = [toytask.sft_example(variant, rng) for _ in range(batch_size)]
    prompts, _ = left_pad([tokenizer.encode(p) for p, _ in pairs], tokenizer.pad_token_id, "cpu")
    responses = [tokenizer.encode(r) + [tokenizer.eos_token_id] for _, r in pairs]
    R = max(map(len, responses))
    resp = torch.full((batch_size, R), tokenizer.pad_token_id)
    for i, r in enumerate(responses):
        resp[i, : len(r)] = torch.tensor(r)
    response_mask = resp != tokenizer.pad_token_id
    sequences = torch.cat([prompts, resp], 1)
    attention_mask = torch.cat([prompts != tokenizer.pad_token_id, response_mask], 1).long()
    return sequences, attention_mask, response_mask


def train(variant, steps, batch_size, lr, seed, log_every=100):
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    t0 = time.time()
    for step in range(1, steps + 1):
        sequences, attention_mask, response_mask = sft_batch(tokenizer, variant, rng, batch_size)
        logp, _ = response_logprobs(model, sequences, attention_mask, response_mask)
        loss = -logp.sum() / response_mask.sum()  # mean negative log-likelihood per response token
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        if step % log_every == 0 or step == steps:
            print(f"{variant} step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
    return model, tokenizer


def main():
    p = options.Parser(__doc__)
    p.add("--variant", choices=sorted(toytask.VARIANTS), action="append", help="default: all variants")
    p.add("--steps", type=options.COUNT, default=1500)
    p.add("--batch-size", type=options.COUNT, default=64)
    p.add("--lr", type=options.POSITIVE, default=3e-3)
    p.add("--seed", type=options.SEED, default=0)
    p.add("--out", default=TOY_MODELS, help="folder that receives one sub-folder per variant")
    args = p.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for variant in args.variant or sorted(toytask.VARIANTS):
        model, tokenizer = train(variant, args.steps, args.batch_size, args.lr, args.seed)
        path = os.path.join(args.out, variant)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        print(f"saved {path} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters)")


if __name__ == "__main__":
    main()
