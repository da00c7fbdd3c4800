#!/usr/bin/env bash
# The main job: base model vs sharpening vs task reward on the embedded toy task, on a CPU.
#
#   bash run_toy.sh                    # the toy whose likeliest answer is short and wrong
#   bash run_toy.sh toy-aligned        # the variant whose likeliest answer is the right one
#   bash run_toy.sh toy 1              # another seed
#
# Trains both arms from the same base model with the same settings, then evaluates all three side by
# side (16 samples per test problem) and plots the training curves: runs/<variant>-<seed>/compare.{json,png}.
# Interrupted (Ctrl-C, a closed terminal, a reboot)? Run the same command again: it continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")"
variant=${1:-toy}
seed=${2:-0}
out=runs/$variant-$seed
source plumbing/jobs.sh  # train: a complete arm is kept, an interrupted one continued (--resume)
if [ -e "$out" ]; then
    echo "continuing the job in $out (its complete arms are kept)"
fi
train train_sharpen.py "$out/sharpen" --dataset "$variant" --seed "$seed"
train train_task.py "$out/task" --dataset "$variant" --seed "$seed"
python evaluate.py --dataset "$variant" --seed "$seed" --out "$out/compare.json" \
    --compare base="toy_models/$variant" sharpen="$out/sharpen" task="$out/task"
