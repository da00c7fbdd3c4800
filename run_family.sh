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
if [ -e "$out" ]; then  # a previous run of this job: never overwritten
    echo "error: $out holds a previous run of this job: move or remove it (rm -r $out), or use another seed" >&2
    exit 1
fi
common=(--dataset "$variant" --seed "$seed")
python train_task.py "${common[@]}" --out "$out/task"
python train_task.py "${common[@]}" --mode random --out "$out/random"
python train_sharpen.py "${common[@]}" --out "$out/sharpen"
python train_sharpen.py "${common[@]}" --mode tempered --alpha 4 --out "$out/tempered"
python train_sharpen.py "${common[@]}" --mode entropy --out "$out/entropy"
python train_sharpen.py "${common[@]}" --mode self-certainty --out "$out/self-certainty"
python train_sharpen.py "${common[@]}" --mode majority --out "$out/majority"
python evaluate.py "${common[@]}" --n 256 --limit 64 --trials 200 --out "$out/trained.json" --compare \
    base="toy_models/$variant" task="$out/task" random="$out/random" sharpen="$out/sharpen" tempered="$out/tempered" \
    entropy="$out/entropy" self-certainty="$out/self-certainty" majority="$out/majority"
python evaluate.py "${common[@]}" --n 32 --limit 64 --trials 200 --out "$out/power.json" --compare power="toy_models/$variant" \
    --power-sample --alpha 4 --blocks 4 --mcmc-steps 4
python evaluate.py --merge "$out/trained.json" "$out/power.json" --out "$out/family.json"
