"""
RL on the base model's own likelihood: distribution sharpening and tempered (power) sampling.

    sharpen   R = alpha * log pi_ref(y|x)                 (--mode sharpen; optimum: the mode of pi_ref)
    tempered  R = alpha * log pi_ref - log pi_theta       (--mode tempered; optimum ∝ pi_ref^alpha)

No task reward enters the update: r is computed only to log accuracy. log pi_ref(y|x) sums negative
token log-probs, EOS included, so every extra token lowers it: the mode of pi_ref favours short responses.

Algorithm (the paper's, notes section 3): for each of P prompts sample a group of G = 8 responses from
the current policy at temperature 1; score each response under the frozen base model; turn rewards into
advantages with a leave-one-out baseline, A_i = R_i - mean_{j != i} R_j (no std normalisation); take one
on-policy REINFORCE step (no ratio, no clipping) on the token-level mean of -A_i * log pi_theta(y_t);
AdamW, gradients clipped to norm 1. train_task.py is this file with another reward line:
`diff train_sharpen.py train_task.py` shows everything that differs.

    python train_sharpen.py                                    # the toy task on a CPU, about a minute
    python train_sharpen.py --fixed-length                     # the paper's control: EOS ignored
    python train_sharpen.py --mode tempered --alpha 4          # RL toward pi_ref^4
    python train_sharpen.py --model Qwen/Qwen2.5-3B-Instruct --dataset math_lighteval --eval-dataset math500
    torchrun --nproc_per_node=4 train_sharpen.py --model ... --dataset ...   # several GPUs, same global batch
"""

import time

from loss import group_advantages
from rewards import sequence_reward
from rl import Run, parser

# -----------------------------------------------------------------------------
# config: the shared options (rl.py) plus this objective's own

p = parser(__doc__, out="runs/sharpen")
p.add_argument("--mode", choices=("sharpen", "tempered"), default="sharpen")
p.add_argument("--alpha", type=float, default=1.0, help="power on pi_ref")
args = p.parse_args()

# -----------------------------------------------------------------------------
# setup: model, frozen reference, optimizer, data (and --resume)

run = Run(args)
G = args.group_size

# -----------------------------------------------------------------------------
# the RL loop

for step in run.steps():
    t0 = time.time()
    rows = run.prompts(step)  # this rank's prompts
    roll, r, no_answer = run.sample(rows, step)  # G responses per prompt, graded: r in {0, 1}
    ref_logp, logp, entropy = run.score(roll, args.mode)  # per token: log pi_ref, log pi_theta, entropy

    # the objective: the only lines that differ from train_task.py (r is not used)
    R = sequence_reward(args.mode, r, ref_logp.sum(-1), logp.sum(-1), roll.lengths, alpha=args.alpha,
                        normalization=args.normalization, length_power=args.length_power)

    A = group_advantages(R, G, args.baseline, args.std_normalize)  # A_i = R_i - mean_{j != i} R_j
    loss, grad_norm = run.update(roll, A, logp, ref_logp)
    metrics = run.metrics(roll, r, R, ref_logp, logp, entropy, no_answer, loss, grad_norm, t0)
    run.log(step, {**metrics, **run.evaluate(step)})
    run.save(step + 1)

run.close()
