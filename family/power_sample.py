"""
Power sampling at inference (Karan & Du 2025, arXiv 2510.14901): responses from pi(y) ∝ p(y)^alpha with no
training, by Metropolis-Hastings over whole responses. p is the base model; p^alpha is the very distribution
the tempered regime of train_sharpen.py trains toward (R = alpha log pi_ref - log pi_theta). Two roads to
one target: theory.py checks both on a language small enough to list.

    proposal   q = the base model at temperature 1/alpha: log q(y_t) = log_softmax(alpha * z_t)[y_t]
    blocks     the response grows block by block (max_new_tokens / blocks tokens each, from q); after each extension,
               mcmc_steps times: pick a position t uniformly among the current response's tokens, resample
               everything from t on from q (to the block's end, or EOS), and accept with probability
               min(1, A):

    log A = alpha [log p(y'_{>=t}) - log p(y_{>=t})] + log q(y_{>=t}) - log q(y'_{>=t}) + log |y| - log |y'|

The last term is the Hastings correction for the position: t is drawn uniformly among |y| tokens going
forward and among |y'| coming back, and a proposal that ends at an early EOS is shorter than the response
it replaces. (The authors' code leaves it out, and compares an early-ending proposal with only the matching
prefix of the current suffix.) Every chain moves in every block, finished or not, so the last block's chain
has p^alpha over all responses of at most max_new_tokens tokens as its stationary distribution.

Cost: each MCMC step resamples on average half the response, so a response of T tokens costs about
T + blocks * mcmc_steps * T / 4 sampled tokens, plus a teacher-forced pass that scores each proposal under p.

    python evaluate.py --dataset toy --power-sample --alpha 4 --blocks 4 --mcmc-steps 4
    python evaluate.py --model Qwen/Qwen2.5-Math-7B --dataset math500 --power-sample --max-new-tokens 3072 \
        --blocks 16 --mcmc-steps 10 --n 1                       # the authors' setting
"""

import torch
import torch.nn.functional as F

from model import micro_batches, response_logprobs
from rollout import left_pad, to_rollout


def power_sample(extend, n, alpha, max_new_tokens, blocks, mcmc_steps, generator, device="cpu", length_correction=True):
    """
    n chains targeting p^alpha. `extend(chains, tokens, starts, budgets)` samples, for each chain chains[i], a
    continuation of tokens[i, :starts[i]] of at most budgets[i] tokens from q, and returns (new tokens [n, w], their mask,
    log p and log q of each new token [n, w], whether each continuation ended in EOS [n]).
    Returns (tokens [n, W], lengths [n], log p per token [n, W], whether each response ended in EOS [n],
    the number of tokens sampled from q). length_correction=False drops the log |y| - log |y'| term, as the
    authors' code does: that chain settles elsewhere (theory_family.py measures where).
    """
    W, blocks = max_new_tokens, min(blocks, max_new_tokens)
    tokens = torch.zeros((n, W), dtype=torch.long, device=device)
    logp, logq = torch.zeros((n, W), device=device), torch.zeros((n, W), device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    sampled, everyone = 0, torch.arange(n, device=device)
    for block in range(blocks):
        end = round((block + 1) * W / blocks)  # blocks of (nearly) equal size
        # 1. grow every unfinished chain to the block's end (or EOS) with tokens from q: always kept
        grow = (~done).nonzero().squeeze(-1)
        if len(grow):
            new = extend(grow, tokens[grow], lengths[grow], end - lengths[grow])
            sampled += int(new[1].sum())
            tokens[grow], logp[grow], logq[grow], lengths[grow] = splice(
                tokens[grow], logp[grow], logq[grow], lengths[grow], *new[:4]
            )
            done[grow] = new[4]
        # 2. MCMC steps on every chain: resample the suffix from a uniform position, accept with min(1, A)
        for _ in range(mcmc_steps):
            t = (torch.rand(n, generator=generator, device=device) * lengths).long()  # uniform in [0, |y|)
            new_tokens, new_mask, new_logp, new_logq, new_done = extend(everyone, tokens, t, end - t)
            sampled += int(new_mask.sum())
            old = suffix_mask(t, lengths, W)
            log_a = acceptance(
                alpha,
                (new_logp * new_mask).sum(-1),
                (logp * old).sum(-1),
                (new_logq * new_mask).sum(-1),
                (logq * old).sum(-1),
                lengths if length_correction else t + new_mask.sum(-1),
                t + new_mask.sum(-1),
            )
            accept = torch.rand(n, generator=generator, device=device).log() < log_a
            proposal = splice(tokens, logp, logq, t, new_tokens, new_mask, new_logp, new_logq)
            tokens, logp, logq, lengths = (
                torch.where(_rows(accept, x), y, x) for x, y in zip((tokens, logp, logq, lengths), proposal)
            )
            done = torch.where(accept, new_done, done)
    return tokens, lengths, logp, done, sampled


def acceptance(alpha, new_logp, old_logp, new_logq, old_logq, old_length, new_length):
    """log A of replacing the suffix y_{>=t} (log p and log q summed over it) by y'_{>=t}."""
    return alpha * (new_logp - old_logp) + old_logq - new_logq + old_length.float().log() - new_length.float().log()


def suffix_mask(t, lengths, width):
    position = torch.arange(width, device=t.device)
    return (position >= t[:, None]) & (position < lengths[:, None])


def splice(tokens, logp, logq, t, new_tokens, new_mask, new_logp, new_logq):
    """Each row's first t tokens, then its new ones: (tokens, log p, log q, lengths)."""
    W, w = tokens.shape[1], max(new_tokens.shape[1], 1)
    position = torch.arange(W, device=tokens.device)
    offset = (position - t[:, None]).clamp(0, w - 1)  # where position p reads in the new tokens
    new_length = new_mask.sum(-1)
    keep, take = position < t[:, None], position < (t + new_length)[:, None]

    def pick(old, new):
        new = F.pad(new, (0, w - new.shape[1])).gather(1, offset)
        return torch.where(keep, old, torch.where(take, new, torch.zeros_like(old)))

    return pick(tokens, new_tokens), pick(logp, new_logp), pick(logq, new_logq), t + new_length


def _rows(accept, x):
    return accept if x.dim() == 1 else accept[:, None]


# -----------------------------------------------------------------------------
# the proposal of a language model: this repo's rollout at temperature 1/alpha, scored under p


def model_extender(model, prompt_ids, eos_ids, pad_id, alpha, sampler, generator, micro_batch=64):
    """extend() for a transformers model: continue prompt + response prefix with `sampler` (rollout.rollout or
    fast_rollout.rollout) at temperature 1/alpha; log p of each new token from a teacher-forced pass."""
    eos = torch.tensor(eos_ids, device=model.device)

    def extend(chains, tokens, starts, budgets):
        prefixes = [prompt_ids[c] + row[:s].tolist() for c, row, s in zip(chains.tolist(), tokens, starts.tolist())]
        roll = sampler(model, prefixes, int(budgets.max()), eos_ids, pad_id, 1.0 / alpha, generator=generator)
        width = roll.response_mask.shape[1]
        mask = roll.response_mask & (torch.arange(width, device=model.device) < budgets[:, None])  # each its own budget
        roll.response_mask, roll.attention_mask[:, -width:] = mask, mask.long()
        logp = torch.zeros_like(roll.logprobs)
        for rows, seq, attention, response in micro_batches(roll, micro_batch):
            logp[rows, : response.shape[1]] = response_logprobs(model, seq, attention, response)[0]
        ended = (torch.isin(roll.responses, eos) & mask).any(-1)
        return roll.responses.masked_fill(~mask, pad_id), mask, logp, roll.logprobs * mask, ended

    return extend


@torch.no_grad()
def power_rollout(model, prompt_ids, max_new_tokens, eos_ids, pad_id, alpha, blocks, mcmc_steps, sampler, generator):
    """One p^alpha sample per prompt (repeat a prompt for several): the prompts and responses as rollout.py's
    Rollout would hold them (response log-probs under p; entropies not tracked: NaN), and the tokens sampled."""
    extend = model_extender(model, prompt_ids, eos_ids, pad_id, alpha, sampler, generator)
    tokens, lengths, logp, _, sampled = power_sample(
        extend, len(prompt_ids), alpha, max_new_tokens, blocks, mcmc_steps, generator, model.device
    )
    prompt, prompt_mask = left_pad(prompt_ids, pad_id, model.device)
    inside = torch.arange(tokens.shape[1], device=model.device) < lengths[:, None]
    tokens = tokens.masked_fill(~inside, pad_id)
    untracked = torch.full_like(logp, float("nan"))
    roll = to_rollout(prompt, prompt_mask, tokens, logp, untracked, untracked, torch.tensor(eos_ids, device=model.device), False)
    return roll, sampled
