#!/usr/bin/env bash
# The sharpening family against the task reward, from one base model, on the embedded toy task, on a CPU.
#
#   bash run_family.sh                 # the toy whose likeliest answer is short and wrong
#   bash run_family.sh toy-aligned     # the variant whose likeliest answer is the right one
#   bash run_family.sh toy 1           # another seed
#
# Trains seven arms with the same settings (task reward, random reward, sharpening, tempered alpha = 4,
# entropy minimisation, self-certainty, majority vote), evaluates them and the base model with 256 samples
# on 64 test problems, draws 32 power samples (pi_ref^4 by MCMC, no training) per problem, then prints one
# table and writes runs/family-<variant>-<seed>/family.json, family.png (training curves) and
# family_pass_at_k.png (pass@k vs k).
set -euo pipefail
cd "$(dirname "$0")"
variant=${1:-toy}
seed=${2:-0}
out=runs/family-$variant-$seed
source plumbing/jobs.sh  # train: a complete arm is kept, an interrupted one continued (--resume)
if [ -e "$out" ]; then
    echo "continuing the job in $out (its complete arms are kept)"
fi
common=(--dataset "$variant" --seed "$seed")
train train_task.py "$out/task" "${common[@]}"
train train_task.py "$out/random" "${common[@]}" --mode random
train train_sharpen.py "$out/sharpen" "${common[@]}"
train train_sharpen.py "$out/tempered" "${common[@]}" --mode tempered --alpha 4
train train_sharpen.py "$out/entropy" "${common[@]}" --mode entropy
train train_sharpen.py "$out/self-certainty" "${common[@]}" --mode self-certainty
train train_sharpen.py "$out/majority" "${common[@]}" --mode majority
python evaluate.py "${common[@]}" --n 256 --limit 64 --trials 200 --out "$out/trained.json" --compare \
    base="toy_models/$variant" task="$out/task" random="$out/random" sharpen="$out/sharpen" tempered="$out/tempered" \
    entropy="$out/entropy" self-certainty="$out/self-certainty" majority="$out/majority"
python evaluate.py "${common[@]}" --n 32 --limit 64 --trials 200 --out "$out/power.json" --compare power="toy_models/$variant" \
    --power-sample --alpha 4 --blocks 4 --mcmc-steps 4
python evaluate.py --merge "$out/trained.json" "$out/power.json" --out "$out/family.json"
