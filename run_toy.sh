#!/usr/bin/env bash
# The main job: base model vs sharpening vs task reward on the embedded toy task, on a CPU.
#
#   bash run_toy.sh                    # the toy whose likeliest answer is short and wrong
#   bash run_toy.sh toy-aligned        # the variant whose likeliest answer is the right one
#   bash run_toy.sh toy 1              # another seed
#
# Trains both arms from the same base model with the same settings, then evaluates all three side by
# side (16 samples per test problem) and plots the training curves: runs/<variant>-<seed>/compare.{json,png}.
set -euo pipefail
cd "$(dirname "$0")"
variant=${1:-toy}
seed=${2:-0}
out=runs/$variant-$seed
if [ -e "$out" ]; then  # a previous main job: never overwritten
    echo "error: $out holds a previous run of this job: move or remove it (rm -r $out), or use another seed" >&2
    exit 1
fi
python train_sharpen.py --dataset "$variant" --seed "$seed" --out "$out/sharpen"
python train_task.py --dataset "$variant" --seed "$seed" --out "$out/task"
python evaluate.py --dataset "$variant" --seed "$seed" --out "$out/compare.json" \
    --compare base="toy_models/$variant" sharpen="$out/sharpen" task="$out/task"
