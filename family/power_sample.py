"""
Power sampling at inference (Karan & Du 2025, arXiv 2510.14901): responses from pi(y) ∝ p(y)^alpha with no
training, by Metropolis-Hastings over whole responses. p is the base model; p^alpha is the very distribution
the tempered regime of train_sharpen.py trains toward (R = alpha log pi_ref - log pi_theta). Two roads to
one target: family/theory_family.py checks both, and the two below, on a language small enough to list.

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

Two more roads to the same p^alpha, with no MCMC (below, after the MH chain):
    power_smc              Power-SMC (Azizi et al. 2026, arXiv 2602.10273): particles decode from q in one batch,
                           weighted token by token, resampled when the effective sample size falls
    scalable_power_sample  scalable power sampling (Ji et al. 2026, arXiv 2601.21590): each token from
                           p^alpha(.|y_<t) zeta(y_<=t), zeta estimated from rollouts of the future under p

    python evaluate.py --dataset toy --power-smc --alpha 4 --particles 8
    python evaluate.py --dataset toy --scalable-power --alpha 4 --candidates 4 --rollouts 4
"""

import math

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from model import position_ids_from_mask, rollout_logprobs
from rollout import left_pad, sampling_logprobs, to_rollout


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
# Power-SMC: importance weights instead of accept/reject


def power_smc(step, n, particles, alpha, max_new_tokens, eos, pad, generator, ess_threshold=0.5, device="cpu"):
    """
    n answers, each from its own group of `particles` particles that decode together (rows i*particles + j).
    `step(tokens, ancestors)` returns the logits z_t [rows, V] of every row's next token, after putting each row
    on its ancestor's state (resampling) and feeding it `tokens` [rows] (None, None: the prompts' first logits).

        proposal   q_t = softmax(alpha z_t): rollout.py's temperature 1/alpha
        weight     w *= p_t(y_t)^alpha / q_t(y_t) = sum_v p_t(v)^alpha     (the tempered distribution's normaliser)
        resample   when ESS = (sum w)^2 / sum w^2 < ess_threshold * particles: ancestors ~ w, then equal weights
        answer     one particle per group, drawn by its final weight

    sum_v p_t(v)^alpha does not depend on the token drawn: the weights are those of the prefix-only proposal of
    least variance. Over a whole response the weight is p(y)^alpha / q(y), so the weighted particles target p^alpha
    (the draw by weight converges to it as particles grow; one particle is plain temperature-1/alpha sampling).
    A finished particle keeps its weight; resampling is multinomial. Returns (tokens [n, W], inside [n, W], log p
    per token [n, W], the tokens sampled).
    """
    rows, W = n * particles, max_new_tokens
    tokens = torch.full((rows, W), pad, dtype=torch.long, device=device)
    inside = torch.zeros((rows, W), dtype=torch.bool, device=device)
    logp = torch.zeros((rows, W), device=device)
    log_w = torch.zeros(n, particles, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    z, sampled = step(None, None), 0
    for t in range(W):
        log_p, log_q = z.float().log_softmax(-1), sampling_logprobs(z, 1.0 / alpha)
        running = ~done
        token = torch.full_like(done, pad, dtype=torch.long)
        token[running] = torch.multinomial(log_q[running].exp(), 1, generator=generator).squeeze(-1)  # as rollout.py draws
        log_w += ((alpha * log_p).logsumexp(-1) * running).view(n, particles)  # log w += log sum_v p_t(v)^alpha
        tokens[:, t], inside[:, t] = token, running
        logp[:, t] = log_p.gather(-1, token[:, None]).squeeze(-1) * running
        done |= torch.isin(token, eos)
        sampled += int(running.sum())
        if done.all() or t + 1 == W:
            break
        ess = (2 * log_w.logsumexp(-1) - (2 * log_w).logsumexp(-1)).exp()  # (sum w)^2 / sum w^2
        low = ess < ess_threshold * particles
        ancestors = None
        if low.any():
            picks = torch.arange(rows, device=device).view(n, particles)
            picks[low] = torch.multinomial(log_w[low].softmax(-1), particles, replacement=True, generator=generator)
            ancestors = (picks + particles * torch.arange(n, device=device)[:, None] * low[:, None]).flatten()
            log_w[low] = 0.0  # the resampled particles stand for the group with equal weights
            tokens, inside, logp, done = tokens[ancestors], inside[ancestors], logp[ancestors], done[ancestors]
        z = step(tokens[:, t], ancestors)
    pick = torch.multinomial(log_w.softmax(-1), 1, generator=generator).squeeze(-1) + particles * torch.arange(n, device=device)
    return tokens[pick], inside[pick], logp[pick], sampled


# -----------------------------------------------------------------------------
# scalable power sampling: the token-level conditional of p^alpha, its future estimated by rollouts


def scalable_power_sample(step, extend, n, alpha, max_new_tokens, candidates, rollouts, eos, pad, generator, device="cpu"):
    """
    n answers, token by token. `step(tokens, None)` returns the logits z_t [n, V] of each row's next token after
    feeding it `tokens` [n] (None: the prompts' first logits); `extend` is power_sample's, at alpha = 1: futures
    drawn from p itself, with log p of each token. The conditional of p^alpha, exactly:

        p^alpha(y_t | y_<t) ∝ p_t(y_t)^alpha zeta(y_<=t),  zeta(y_<=t) = E_{f ~ p(.|y_<=t)}[p(f | y_<=t)^(alpha - 1)]

    (f: the rest of the response, to EOS or the budget; an EOS candidate has only the empty future: zeta = 1).
    Each step takes the top-`candidates` tokens under p^alpha(.|y_<t) (those of p_t), estimates zeta of each from
    `rollouts` futures, zeta_hat = (1/M) sum_m p(f_m)^(alpha - 1), and draws the token from p^alpha zeta_hat
    renormalised over the candidates, with the jackknife correction of that ratio's O(1/M) bias (jackknife).
    Without zeta it would be low-temperature sampling, a different distribution. All candidates and M -> inf: p^alpha.
    Returns (tokens [n, W], inside [n, W], log p per token [n, W], the tokens sampled).
    """
    W, K, M = max_new_tokens, candidates, rollouts
    tokens = torch.full((n, W), pad, dtype=torch.long, device=device)
    inside = torch.zeros((n, W), dtype=torch.bool, device=device)
    logp = torch.zeros((n, W), device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    z, sampled = step(None, None), 0
    for t in range(W):
        log_p = z.float().log_softmax(-1)
        running = (~done).nonzero().squeeze(-1)
        top_logp, top = log_p[running].topk(K, -1)  # [r, K]
        # M futures of each candidate: rows running[i] with y_t = top[i, k], rollout m at i*K*M + k*M + m
        chains = running.repeat_interleave(K * M)
        prefixes = tokens[chains].clone()
        prefixes[:, t] = top.flatten().repeat_interleave(M)
        budgets = torch.where(torch.isin(prefixes[:, t], eos), 0, W - t - 1)
        log_f = torch.zeros(len(running), K, M, device=device)  # log p(f_m | y_<t, candidate k): 0 for the empty future
        live = budgets > 0
        if live.any():
            _, mask, future_logp, _, _ = extend(chains[live], prefixes[live], torch.full_like(chains[live], t + 1), budgets[live])
            log_f.view(-1)[live] = (future_logp * mask).sum(-1)
            sampled += int(mask.sum())
        pick = torch.multinomial(jackknife(alpha * top_logp, (alpha - 1) * log_f), 1, generator=generator).squeeze(-1)
        token = torch.full_like(done, pad, dtype=torch.long)
        token[running] = top.gather(-1, pick[:, None]).squeeze(-1)
        tokens[:, t], inside[:, t] = token, ~done
        logp[:, t] = log_p.gather(-1, token[:, None]).squeeze(-1) * ~done
        sampled += len(running)
        done |= torch.isin(token, eos)
        if done.all() or t + 1 == W:
            break
        z = step(token, None)
    return tokens, inside, logp, sampled


def jackknife(log_head, log_x):
    """
    The candidates' probabilities [r, K] from log p^alpha of each (log_head [r, K]) and log x_m = (alpha - 1) log p(f_m)
    of its M futures (log_x [r, K, M]): pi_hat(k) = head_k zeta_hat_k / sum_j head_j zeta_hat_j, zeta_hat = mean_m x_m.
    With M >= 2, the jackknife: pi_JK = M pi_hat - (M - 1) mean_m pi_hat_(-m), pi_hat_(-m) computed without each
    candidate's m-th future; its entries sum to 1, negative ones are cut to 0 and the rest renormalised.
    """
    M = log_x.shape[-1]
    pi = (log_head + log_x.logsumexp(-1) - math.log(M)).softmax(-1)
    if M == 1:
        return pi
    others = torch.eye(M, device=log_x.device).logical_not()  # row m: the futures other than m
    log_loo = log_x[..., None, :].masked_fill(~others, float("-inf")).logsumexp(-1) - math.log(M - 1)  # [r, K, M]
    pi_loo = (log_head[..., None] + log_loo).softmax(-2)  # over the candidates, for each left-out m
    pi_jk = (M * pi - (M - 1) * pi_loo.mean(-1)).clamp(min=0)
    return pi_jk / pi_jk.sum(-1, keepdim=True)


# -----------------------------------------------------------------------------
# the proposal of a language model: this repo's rollout at temperature 1/alpha, scored under p


def model_extender(model, prompt_ids, eos_ids, pad_id, alpha, sampler, generator, micro_batch=64):
    """extend() for a transformers model: continue prompt + response prefix with `sampler` (rollout.rollout or
    fast_rollout.rollout) at temperature 1/alpha; log p of each new token from a teacher-forced pass (at alpha = 1,
    the sampler's own)."""
    eos = torch.tensor(eos_ids, device=model.device)

    def extend(chains, tokens, starts, budgets):
        prefixes = [prompt_ids[c] + row[:s].tolist() for c, row, s in zip(chains.tolist(), tokens, starts.tolist())]
        roll = sampler(model, prefixes, int(budgets.max()), eos_ids, pad_id, 1.0 / alpha, generator=generator)
        width = roll.response_mask.shape[1]
        mask = roll.response_mask & (torch.arange(width, device=model.device) < budgets[:, None])  # each its own budget
        roll.response_mask, roll.attention_mask[:, -width:] = mask, mask.long()
        # at alpha = 1, q is p itself: the sampler's own log-probs are log p; else one pass of p over the samples
        logp = roll.logprobs * mask if alpha == 1 else rollout_logprobs(model, roll, micro_batch)[0]
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
    inside = torch.arange(tokens.shape[1], device=model.device) < lengths[:, None]
    return as_rollout(prompt_ids, tokens, inside, logp, eos_ids, pad_id, model.device), sampled


def as_rollout(prompt_ids, tokens, inside, logp, eos_ids, pad_id, device):
    """The prompts and responses (tokens [n, W] where `inside`, log p of each) as rollout.py's Rollout holds them;
    entropies and self-certainty are not tracked: NaN."""
    prompt, prompt_mask = left_pad(prompt_ids, pad_id, device)
    untracked = torch.full_like(logp, float("nan"))
    tokens, logp = tokens.masked_fill(~inside, pad_id), logp * inside
    return to_rollout(prompt, prompt_mask, tokens, logp, untracked, untracked, torch.tensor(eos_ids, device=device), False)


def model_decoder(model, prompt_ids, pad_id):
    """step() of power_smc and scalable_power_sample for a transformers model: rollout.py's loop, one forward per
    token on one KV cache; resampling puts each row on its ancestor's cache (DynamicCache.reorder_cache)."""
    prompt, mask = left_pad(prompt_ids, pad_id, model.device)
    position, cache = position_ids_from_mask(mask), DynamicCache(config=model.config)

    def step(tokens, ancestors):
        nonlocal mask, position
        if tokens is None:  # the prompts
            return model(input_ids=prompt, attention_mask=mask, position_ids=position, cache=cache).logits[:, -1]
        if ancestors is not None:
            cache.reorder_cache(ancestors)
            mask, position = mask[ancestors], position[ancestors]
        mask, position = F.pad(mask, (0, 1), value=1), position[:, -1:] + 1
        return model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position, cache=cache).logits[:, -1]

    return step


@torch.no_grad()
def smc_rollout(model, prompt_ids, max_new_tokens, eos_ids, pad_id, alpha, particles, generator, ess_threshold=0.5):
    """power_rollout's answer and cost, by Power-SMC: `particles` particles per answer, decoded in one batch."""
    group = [p for p in prompt_ids for _ in range(particles)]
    eos = torch.tensor(eos_ids, device=model.device)
    step, n = model_decoder(model, group, pad_id), len(prompt_ids)
    tokens, inside, logp, sampled = power_smc(
        step, n, particles, alpha, max_new_tokens, eos, pad_id, generator, ess_threshold, model.device
    )
    return as_rollout(prompt_ids, tokens, inside, logp, eos_ids, pad_id, model.device), sampled


@torch.no_grad()
def scalable_rollout(model, prompt_ids, max_new_tokens, eos_ids, pad_id, alpha, candidates, rollouts, sampler, generator):
    """power_rollout's answer and cost, by scalable power sampling: futures drawn with `sampler` at temperature 1."""
    eos = torch.tensor(eos_ids, device=model.device)
    extend = model_extender(model, prompt_ids, eos_ids, pad_id, 1.0, sampler, generator)
    step, n = model_decoder(model, prompt_ids, pad_id), len(prompt_ids)
    tokens, inside, logp, sampled = scalable_power_sample(
        step, extend, n, alpha, max_new_tokens, candidates, rollouts, eos, pad_id, generator, model.device
    )
    return as_rollout(prompt_ids, tokens, inside, logp, eos_ids, pad_id, model.device), sampled


ROADS = {
    "mh": power_rollout,
    "smc": smc_rollout,
    "scalable": scalable_rollout,
}  # evaluate.py's --power-sample, --power-smc, --scalable-power (roads.py)
