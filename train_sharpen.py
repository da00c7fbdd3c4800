"""
RL on the model's own preferences: distribution sharpening, tempered (power) sampling, and the other
self-rewards of the sharpening family. T = response length, H_t and z_t = pi_theta's entropy and logits at t:

    sharpen         R = alpha * log pi_ref(y|x)                  the paper's: optimum, the mode of pi_ref
    tempered        R = alpha * log pi_ref - log pi_theta        the paper's: optimum ∝ pi_ref^alpha
    entropy         R = -(1/T) sum_t H_t                         entropy minimisation, token form (RENT, EM-RL)
    entropy-seq     R = (1/T) sum_t log pi_theta(y_t)            entropy minimisation, sequence form (EM-RL)
    self-certainty  R = (1/T) sum_t [logsumexp(z_t) - mean z_t]  INTUITOR: distance of pi_theta from uniform
    majority        R = 1[answer = the group's commonest answer] TTRL: a vote of the G samples, no gold read

No task reward enters the update: r is computed only to log accuracy. log pi_ref(y|x) sums negative token
log-probs, EOS included, so every extra token lowers it: the mode of pi_ref favours short responses.

The algorithm, the paper's: take P prompts, sample a group of G = 8 responses to each from the current policy
at temperature 1, and score every response with its reward R. Turn rewards into advantages with a
leave-one-out baseline, A_i = R_i - mean_{j != i} R_j, and take one on-policy REINFORCE step (no ratio, no
clipping) on the token-level mean of -A_i * log pi_theta(y_t): AdamW, gradients clipped to norm 1. The two
trainers differ only in their reward: `diff train_sharpen.py train_task.py` shows it.

The learning settings that depend on the task (plumbing/options.py DEFAULTS; --help lists every option):

                          the toy         arith            the paper's
                          (a CPU, 1 min)  (SmolLM2, CPU)   (real models)
    --lr                  3e-4            1e-5             1e-6        AdamW, built below
    --warmup              5               1                50          steps from 0.1 x lr up to lr
    --steps               60              30               500         one update each
    --prompts-per-step    16              4                32          x --group-size 8 samples each
    --max-new-tokens      48              48               2048        tokens per response, at most

    python train_sharpen.py                                    # the toy task on a CPU, about a minute
    python train_sharpen.py --fixed-length                     # the paper's control: EOS ignored
    python train_sharpen.py --mode tempered --alpha 4          # RL toward pi_ref^4
    python train_sharpen.py --mode self-certainty              # or entropy, entropy-seq, majority
    python train_sharpen.py --model Qwen/Qwen2.5-3B-Instruct --dataset math_lighteval --eval-dataset math500
    torchrun --nproc_per_node=4 train_sharpen.py --model ... --dataset ...   # several GPUs, same global batch
"""

from plumbing import options  # first: a Ctrl-C while the imports below load exits quietly

# isort: split
import time

import torch

import rewards
import rollout
import trainer
from loss import group_advantages, policy_loss, token_weights
from model import micro_batches, response_logprobs
from plumbing import sharding

# -----------------------------------------------------------------------------
# config: the shared options (trainer.py) and this objective's own; --help lists them all with their defaults

p = trainer.parser(__doc__, out="runs/sharpen")
p.add("--mode", choices=("sharpen", "tempered", "entropy", "entropy-seq", "self-certainty", "majority"), default="sharpen")
p.add("--alpha", type=options.FINITE, default=1.0, help="power on pi_ref")

# -----------------------------------------------------------------------------
# the optimizer: AdamW with the paper's betas and eps; the learning rate warms up linearly from 0.1 x lr to lr over
# --warmup steps, then stays flat (sched.step() once per RL step). trainer.Run builds it on the loaded policy, before
# --resume restores its state.


def optimizer(policy, args):
    opt = torch.optim.AdamW(policy.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    warm = max(1, args.warmup)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, 0.1 + 0.9 * s / warm))


# -----------------------------------------------------------------------------
# setup: run folder, data, policy and its frozen copy pi_ref, the optimizer (and --resume); plumbing (trainer.py)

run = trainer.Run(p, optimizer)  # parses the options (--resume: the run's own, checked against these choices)
args, dist, tokenizer, policy, ref, opt, sched = run.args, run.dist, run.tokenizer, run.policy, run.ref, run.opt, run.sched
G = args.group_size
clip_eps = args.clip_eps if args.updates_per_batch > 1 else None  # PPO clipping only when a batch is reused
if run.start_step == 0:
    run.log(0, run.evaluate(0))  # step 0: the base model, where every curve starts

# -----------------------------------------------------------------------------
# the RL loop; tests run its lines, found by their first words: test_update, test_rewards, test_self_rewards

for step in run.steps():
    t0 = time.time()
    # 1. sample G responses per prompt from pi_theta (rollout.py, or its fast twin: --plain-rollout picks), then grade
    #    each against its gold answer: r in {0, 1}, and the answer it commits to
    problems = run.prompts(step)
    with sharding.full_weights(policy):  # --fsdp: the whole weights, gathered once for the rollout
        prompt_ids = [x["prompt_ids"] for x in problems]
        roll, texts = rollout.sample(
            policy, tokenizer, prompt_ids, G, ignore_eos=args.fixed_length, generator=run.generator(step), **run.sampling
        )
    r, answers = run.grader.grade(texts, [x["answer"] for x in problems for _ in range(G)], policy.device)

    # 2. per-token log-probs of the samples under the frozen pi_ref, and under pi_theta: the rollout's own where it
    #    sampled from pi_theta itself (temperature 1, nothing truncated; equal to a fresh pass, tested), a fresh pass
    #    where the reward or the PPO ratio needs the trainer's own, or the rollout sampled another distribution
    ref_logp = run.logprobs(ref, roll)
    fresh = args.mode == "tempered" or args.updates_per_batch > 1 or not run.sampled_from_policy
    logp, entropy = run.logprobs(policy, roll, entropy=True) if fresh else (roll.logprobs, roll.entropy)
    ref_sum, logp_pi = ref_logp.sum(-1), logp.sum(-1)  # log pi_ref(y|x) and log pi_theta(y|x), EOS included
    norm_ref = rewards.normalized_likelihood(ref_sum, roll.lengths, args.normalization, args.length_power)  # = ref_sum by default

    # 3. the reward (rewards.py, one function per formula): with `fresh`'s mode, the lines that differ from train_task.py;
    #    r is only logged (norm_ref is log pi_ref(y|x), or its --normalization by length; only the extra power is normalised)
    if args.mode == "sharpen":
        R = rewards.sharpening_reward(norm_ref, args.alpha)  # alpha * log pi_ref
    elif args.mode == "tempered":
        R = rewards.tempered_reward(norm_ref, ref_sum, logp_pi, args.alpha)  # (alpha - 1) * norm_ref + log pi_ref - log pi_theta
    elif args.mode == "entropy":
        R = rewards.entropy_reward(entropy, roll.lengths)  # -(1/T) sum_t H_t (H_t is zero past the response)
    elif args.mode == "entropy-seq":
        R = rewards.logprob_reward(logp, roll.lengths)  # (1/T) sum_t log pi_theta(y_t)
    elif args.mode == "self-certainty":
        R = rewards.self_certainty_reward(roll.certainty, roll.lengths)  # (1/T) sum_t [logsumexp(z_t) - mean z_t], pi_theta's z_t
    else:  # majority: 1[answer_i = the most common answer of its group], from the answers alone
        R = rewards.majority_vote(answers, G).to(r.device)

    # 4. advantages: leave-one-out A_i = R_i - mean_{j != i} R_j (--baseline mean: GRPO's R_i - mean_j R_j)
    A = group_advantages(R, G, args.baseline, args.std_normalize)

    # 5. the policy-gradient step: sum_it w_it * (-A_i * log pi_theta(y_it)), micro-batched; the gradients summed
    #    over ranks and clipped to --grad-clip; AdamW. The aggregation's totals are over the global batch (all
    #    micro-batches, all ranks): --aggregation token, w = 1 / (tokens in the global batch)
    mask = roll.response_mask
    w = token_weights(mask, args.aggregation, dist.sum(mask.sum()).item(), dist.sum(len(mask)).item(), args.max_new_tokens)
    for _ in range(args.updates_per_batch):
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for index, sequences, attention_mask, response_mask in micro_batches(roll, args.micro_batch):
            new_logp, _ = response_logprobs(policy, sequences, attention_mask, response_mask)
            cut = (index, slice(0, response_mask.shape[1]))  # these rows, up to their own longest response
            loss = policy_loss(new_logp, A[index], w[cut], logp[cut], clip_eps, ref_logp[cut], args.kl_coef)
            loss.backward()
            loss_sum += loss.item()
        if not args.fsdp:  # FSDP has summed each shard's gradients over the ranks during backward already
            dist.all_reduce_grads(policy)
        grad_norm = sharding.full(torch.nn.utils.clip_grad_norm_(policy.parameters(), args.grad_clip)).item()
        if run.skip_step(grad_norm):
            break  # a non-finite gradient: this batch is skipped (three in a row stop the run)
        opt.step()
        run.check_parameters()  # stop before anything is saved if the update left a non-finite weight
    metrics = run.metrics(roll, r, R, ref_logp, logp, entropy, answers, loss_sum, grad_norm, t0)
    sched.step()

    # 6. evaluate, log, save
    if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
        metrics |= run.evaluate(step + 1)
    run.log(step + 1, metrics)
    if (step + 1) % args.save_every == 0:
        run.save(step + 1)
    run.stop_if_signalled(step + 1)  # Ctrl-C or SIGTERM: save, then exit (--resume continues)

run.save_final()  # the last checkpoint, and the final model in --out/final
