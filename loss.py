"""
The one policy-gradient loss both trainers share: REINFORCE with a group baseline, and its GRPO cousins.

For each prompt we sample a group of G responses y_1..y_G with per-sequence rewards R_1..R_G.

Advantages (one number per response, the same for all its tokens):
    leave-one-out (the paper, RLOO):  A_i = R_i - 1/(G-1) * sum_{j != i} R_j
    group mean (GRPO, Dr. GRPO):       A_i = R_i - mean_j R_j
    + std normalisation (GRPO):        A_i <- A_i / (std_j R_j + eps)
The leave-one-out baseline never uses R_i itself, so it leaves the policy gradient unbiased. A
group whose rewards are all equal has A = 0: it teaches nothing (logged as `zero_std_groups`).

Per-token loss, with l_t = log pi_theta(y_t | x, y_<t):
    on-policy (the paper):    loss_t = -A * l_t                    gradient = -A * grad l_t
    clipped (PPO, reused):    loss_t = -min(rho_t * A, clip(rho_t, 1-eps, 1+eps) * A),
                              rho_t = exp(l_t - l_t_old), for a batch reused for several optimizer steps
    k3 KL penalty (optional): + k * (exp(q_t) - q_t - 1),  q_t = log pi_ref(y_t) - l_t  (>= 0, = 0 at pi = pi_ref),
                              k = --kl-coef (kl_coef below)

Aggregation over the batch (`token_weights`), with L_i the length of response i and N responses:
    "token"     sum_{i,t} loss_it / sum_i L_i          (the paper, DAPO: every token counts the same)
    "sequence"  1/N sum_i (1/L_i) sum_t loss_it       (GRPO: every response counts the same)
    "constant"  sum_{i,t} loss_it / (N * max_len)      (Dr. GRPO: no length bias in either direction)
The denominators are totals over the *global* batch (all micro-batches, all ranks), so that gradient
accumulation and data parallelism give exactly the gradient of one big batch.
"""

import torch

AGGREGATIONS = ("token", "sequence", "constant")
BASELINES = ("leave_one_out", "mean")


def group_advantages(rewards, group_size, baseline="leave_one_out", std_normalize=False, eps=1e-6):
    """rewards [N] ordered group by group (G consecutive samples per prompt) -> advantages [N]."""
    R = rewards.view(-1, group_size)
    if baseline == "leave_one_out":
        A = R - (R.sum(1, keepdim=True) - R) / (group_size - 1)  # A_i = R_i - mean_{j != i} R_j
    elif baseline == "mean":
        A = R - R.mean(1, keepdim=True)  # A_i = R_i - mean_j R_j
    else:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {BASELINES}")
    if std_normalize:
        A = A / (R.std(1, keepdim=True) + eps)  # GRPO: A_i / (std_j R_j + eps)
    return A.reshape(-1)


def token_weights(response_mask, aggregation, total_tokens, total_sequences, max_len):
    """w_it such that sum_{i,t} w_it * loss_it is the chosen aggregation; totals are global."""
    mask = response_mask.float()
    if aggregation == "token":
        return mask / total_tokens  # 1 / sum_i L_i
    if aggregation == "sequence":
        return mask / (mask.sum(-1, keepdim=True).clamp(min=1) * total_sequences)  # 1 / (L_i * N)
    if aggregation == "constant":
        return mask / (total_sequences * max_len)  # 1 / (N * max_len)
    raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")


def k3_kl(logp, ref_logp):
    """Schulman's k3 estimator of KL(pi || pi_ref) per token: exp(q) - q - 1 with q = log pi_ref - log pi."""
    q = (ref_logp - logp).clamp(-20, 20)  # clamped: one far-off token must not overflow exp
    return torch.exp(q) - q - 1


def policy_loss(logp, advantages, weights, old_logp=None, clip_eps=None, ref_logp=None, kl_coef=0.0):
    """
    logp [N, T] (with grad), advantages [N], weights [N, T] from token_weights.
    Returns the scalar loss; its gradient is the policy-gradient estimate (plus the KL term).
    """
    A = advantages[:, None]
    if clip_eps is None:
        per_token = -A * logp  # on-policy REINFORCE
    else:
        ratio = torch.exp(logp - old_logp)
        per_token = -torch.min(ratio * A, ratio.clamp(1 - clip_eps, 1 + clip_eps) * A)
    if kl_coef:
        per_token = per_token + kl_coef * k3_kl(logp, ref_logp)
    return (weights * per_token).sum()
