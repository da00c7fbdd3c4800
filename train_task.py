"""
RL with the task reward: learn from correctness.

    task    R = r                                          (--mode task, the paper's task-reward arm)
    tilted  R = r + (alpha * log pi_ref - log pi_theta)/b  (--mode tilted; optimum ∝ pi_ref^alpha * exp(b*r))

Algorithm (the paper's, notes section 3): for each of P prompts sample a group of G = 8 responses from
the current policy at temperature 1; grade each response (r in {0, 1}); turn rewards into advantages
with a leave-one-out baseline, A_i = R_i - mean_{j != i} R_j (no std normalisation); take one on-policy
REINFORCE step (no ratio, no clipping) on the token-level mean of -A_i * log pi_theta(y_t); AdamW,
gradients clipped to norm 1. train_sharpen.py is this file with another reward line:
`diff train_sharpen.py train_task.py` shows everything that differs.

    python train_task.py                                       # the toy task on a CPU, about a minute
    python train_task.py --fixed-length                        # the paper's control: EOS ignored
    python train_task.py --mode tilted --alpha 1 --b 10000     # KL-regularised RLVR
    python train_task.py --model Qwen/Qwen2.5-3B-Instruct --dataset math_lighteval --eval-dataset math500
    torchrun --nproc_per_node=4 train_task.py --model ... --dataset ...   # several GPUs, same global batch
"""

import time

from loss import group_advantages
from rewards import sequence_reward
from rl import Run, parser

# -----------------------------------------------------------------------------
# config: the shared options (rl.py) plus this objective's own

p = parser(__doc__, out="runs/task")
p.add_argument("--mode", choices=("task", "tilted"), default="task")
p.add_argument("--alpha", type=float, default=1.0, help="power on pi_ref (tilted only)")
p.add_argument("--b", type=float, default=1e4, help="1/beta, the inverse KL strength (tilted only)")
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

    # the objective: the only lines that differ from train_sharpen.py
    R = sequence_reward(args.mode, r, ref_logp.sum(-1), logp.sum(-1), roll.lengths, alpha=args.alpha, b=args.b,
                        normalization=args.normalization, length_power=args.length_power)

    A = group_advantages(R, G, args.baseline, args.std_normalize)  # A_i = R_i - mean_{j != i} R_j
    loss, grad_norm = run.update(roll, A, logp, ref_logp)
    metrics = run.metrics(roll, r, R, ref_logp, logp, entropy, no_answer, loss, grad_norm, t0)
    run.log(step, {**metrics, **run.evaluate(step)})
    run.save(step + 1)

run.close()
