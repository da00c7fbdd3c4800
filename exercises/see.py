"""
See what one exercise's function does, using only that function (every other exercise may still be blank):

    python exercises/see.py N        # N = 1..9 (not 6: that one is your own run)

Each handout's "See it" step is this command; tests/test_exercises.py runs it in the student copy with only
exercise N done.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo's modules


def row(x):
    return " ".join(f"{v:+.3f}" for v in x.tolist())


def see_1():
    from loss import group_advantages

    R = torch.tensor([1.0, 0.0, 0.0, 0.0])  # one group of G = 4: one right answer
    print(f"rewards {row(R)}")
    for name, options in (
        ("leave-one-out", {}),
        ("mean (GRPO)", dict(baseline="mean")),
        ("mean / std", dict(baseline="mean", std_normalize=True)),
    ):
        A = group_advantages(R, 4, **options)
        print(f"{name:14s} A = {row(A)}   sum over the group {round(A.sum().item(), 6) + 0.0:+.3f}")
    # zero_std_groups in the logs: groups whose G rewards are all equal get A = 0 and teach nothing
    G, g = 8, torch.Generator().manual_seed(0)
    print(f"\naccuracy p | groups with every A = 0 (20000 groups of {G}) | p^G + (1 - p)^G")
    for p in (0.05, 0.3, 0.5, 0.7, 0.95, 0.99):
        A = group_advantages(torch.bernoulli(torch.full((20000 * G,), p), generator=g), G).view(-1, G)
        print(f"{p:10.2f} | {(A == 0).all(1).float().mean():44.3f} | {p**G + (1 - p) ** G:.3f}")


def see_2():
    from loss import AGGREGATIONS, token_weights

    lengths, max_len = torch.tensor([2, 4, 16]), 16
    mask = torch.arange(max_len) < lengths[:, None]
    print(f"three responses of lengths {lengths.tolist()}, max_len {max_len}")
    print("aggregation | weight of one token, per response | total weight of each response")
    for aggregation in AGGREGATIONS:
        w = token_weights(mask, aggregation, int(mask.sum()), len(lengths), max_len)
        print(f"{aggregation:11s} | {row(w[:, 0]):33s} | {row(w.sum(1))}")


def see_3():
    from rewards import sequence_reward

    # two responses at the start of training (pi_theta = pi_ref): a short, likely, wrong one and a long, right one
    ref_sum, lengths, r = torch.tensor([-1.0, -3.6]), torch.tensor([2, 12]), torch.tensor([0.0, 1.0])
    print("short wrong (log pi_ref -1.0, 2 tokens) vs long right (log pi_ref -3.6, 12 tokens), alpha = 4, b = 2")
    print("regime   | normalization | R short | R long")
    for mode in ("sharpen", "tempered", "tilted"):
        for normalization in ("sum", "mean"):
            R = sequence_reward(mode, r, ref_sum, ref_sum, lengths, alpha=4.0, b=2.0, normalization=normalization)
            print(f"{mode:8s} | {normalization:13s} | {R[0]:+7.3f} | {R[1]:+7.3f}")


def see_4():
    from evaluate import pass_at_k

    n = 16
    print(f"n = {n} samples, c right: unbiased pass@k against the with-replacement 1 - (1 - c/n)^k")
    for c in (1, 4):
        for k in (1, 4, 8, 16):
            print(f"c = {c:2d} k = {k:2d} | {pass_at_k(n, c, k):.4f} | {1 - (1 - c / n) ** k:.4f}")
    print(f"n = 256, c = 3, k = 128: {pass_at_k(256, 3, 128):.6f} (C(256, 128) is about 5.8e75)")


def see_5():
    import theory as T

    ref = T.reference()
    for fixed in (False, True):
        tokens, _ = T.all_responses(fixed)
        print(f"{'EOS ignored' if fixed else 'EOS stops'}: {len(tokens)} responses")
    _, _, ref_logp, length, _ = T.space(ref, T.correct_long, False)
    _, _, fixed_logp, fixed_length, _ = T.space(ref, T.correct_long, True)
    print("alpha | E[len] under pi_ref^alpha, EOS stops | E[len], EOS ignored")
    for alpha in (0.5, 1, 2, 4, 8):
        print(
            f"{alpha:5g} | {(T.power(ref_logp, alpha) * length).sum():36.3f} | {(T.power(fixed_logp, alpha) * fixed_length).sum():.3f}"
        )


def see_7():
    from loss import k3_kl, policy_loss

    # a bandit: four one-token responses, rewards R(a); sample 8, A = R - 0.5 (a constant baseline), one Adam step each
    rewards, torch_gen = torch.tensor([0.0, 0.2, 1.0, 0.6]), torch.Generator().manual_seed(0)
    start = torch.tensor([2.0, 1.0, 0.0, 0.5])
    for kl_coef in (0.0, 0.5):
        logits = torch.nn.Parameter(start.clone())
        opt = torch.optim.Adam([logits], lr=0.05)
        for _ in range(300):
            a = torch.multinomial(logits.detach().softmax(0), 8, replacement=True, generator=torch_gen)
            logp = logits.log_softmax(0)[a][:, None]  # [N, T = 1]
            ref_logp = start.log_softmax(0)[a][:, None]
            loss = policy_loss(logp, rewards[a] - 0.5, torch.full((8, 1), 1 / 8), ref_logp=ref_logp, kl_coef=kl_coef)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"kl_coef {kl_coef}: pi_ref = {row(start.softmax(0))} -> pi = {row(logits.detach().softmax(0))}")
    # the clip: a batch reused after the policy moved; with A > 0, past 1 + eps the gradient is cut
    logp = torch.tensor([[-1.0]], requires_grad=True)
    for ratio in (0.7, 1.0, 1.1, 1.5):
        old = logp.detach() - torch.tensor(ratio).log()
        (grad,) = torch.autograd.grad(policy_loss(logp, torch.tensor([1.0]), torch.ones(1, 1), old, clip_eps=0.2), logp)
        print(f"ratio {ratio:.1f}, A = +1, eps = 0.2: d loss / d log pi = {grad.item():+.3f}")
    print(
        f"k3 KL of log pi = -1, log pi_ref = -2 and the reverse: {k3_kl(torch.tensor(-1.0), torch.tensor(-2.0)):.4f}, "
        f"{k3_kl(torch.tensor(-2.0), torch.tensor(-1.0)):.4f}"
    )


def see_8():
    from rewards import entropy_reward, majority_vote

    answers, gold = ["20", "20", "17", "20", None, "17", "20", "9"], "17"
    r = [float(a == gold) for a in answers]
    print(f"one group's answers {answers}, gold {gold!r}")
    print(f"task reward r       {r}")
    print(f"majority vote R     {majority_vote(answers, 8).tolist()}   (no gold read)")
    entropy = torch.tensor([[0.1, 0.1, 0.0, 0.0], [1.2, 0.9, 1.5, 1.1]])  # per token, zero past the end
    print(
        f"entropy reward of a confident 2-token and an unsure 4-token response: {row(entropy_reward(entropy, torch.tensor([2, 4])))}"
    )


def see_9():
    from collections import Counter

    import theory as T
    from family import theory_family as F
    from family.power_sample import power_sample

    ref, chains = T.reference(), 4000
    print(f"theory.py's language (at most {T.L} tokens): E[len] of {chains} samples, and their total variation from")
    print(f"pi_ref^alpha (over every response). E[len] under pi_ref: {power_moments(ref, 1.0)[1]:.3f}")
    # the TV of 4000 exact draws from pi_ref^alpha (family/theory_family.exact_sample_tv): no sampler does better
    for alpha, floor in ((2.0, 0.017), (4.0, 0.002)):
        log_z, length = power_moments(ref, alpha)
        print(f"\nalpha = {alpha:g}: exact E[len] under pi_ref^alpha {length:.3f}; {chains} exact draws are TV {floor} off")
        for name, steps, correction in (
            ("q = temperature 1/alpha", 0, True),
            ("MCMC toward pi_ref^alpha", 16, True),
            ("MCMC, no length term", 16, False),
        ):
            g = torch.Generator().manual_seed(0)
            tokens, lengths, _, _, _ = power_sample(
                F.table_extender(ref, alpha, g), chains, alpha, T.L, T.L, steps, g, length_correction=correction
            )
            inside = torch.arange(T.L) < lengths[:, None]
            target = (alpha * T.token_logp(ref, tokens, inside).sum(-1) - log_z).exp()  # pi_ref^alpha(y) of each sample
            seen = Counter(tuple(t[:n].tolist()) for t, n in zip(tokens, lengths))
            p = {tuple(t[:n].tolist()): q.item() for t, n, q in zip(tokens, lengths, target)}
            tv = 0.5 * (sum(abs(k / chains - p[y]) for y, k in seen.items()) + 1 - sum(p.values()))  # unseen: all of theirs
            print(f"sampled: {name:26s} E[len] {lengths.float().mean():.3f}   TV {tv:.3f}")


def power_moments(ref, alpha):
    """log Z and E[len] under pi_ref^alpha / Z, summed over the prefix tree from its leaves up (no list of responses)."""
    import theory as T

    logp, depth = ref.log_softmax(-1), T.prefix_depths()
    Z, S = torch.zeros(len(ref)), torch.zeros(len(ref))  # per prefix: sum of pi_ref^alpha, and of pi_ref^alpha * len, below it
    for prefix in reversed(range(len(ref))):  # children are numbered after their parents
        weights = (alpha * logp[prefix]).exp()
        Z[prefix], S[prefix] = weights[T.EOS], weights[T.EOS]  # EOS: the response ends here, one more token
        for token in range(T.V - 1):
            if depth[prefix] == T.L - 1:  # the last token: the response is cut off
                Z[prefix] += weights[token]
                S[prefix] += weights[token]
            else:
                c = T.child(prefix, token)
                Z[prefix] += weights[token] * Z[c]
                S[prefix] += weights[token] * (Z[c] + S[c])
    return Z[0].log().item(), (S[0] / Z[0]).item()


SEE = {1: see_1, 2: see_2, 3: see_3, 4: see_4, 5: see_5, 7: see_7, 8: see_8, 9: see_9}

if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) not in SEE:
        raise SystemExit(f"usage: python exercises/see.py N, with N one of {sorted(SEE)}")
    torch.set_num_threads(1)
    SEE[int(sys.argv[1])]()
