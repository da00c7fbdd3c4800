#!/usr/bin/env bash
# Four roads to pi_ref^4 on the embedded toy task, on a CPU: three at inference with no training (power_sample.py:
# Metropolis-Hastings, Power-SMC, scalable power sampling) and tempered RL (R = 4 log pi_ref - log pi_theta),
# next to the base model.
#
#   bash run_roads.sh                  # the toy whose likeliest answer is short and wrong
#   bash run_roads.sh toy-aligned      # the variant whose likeliest answer is the right one
#   bash run_roads.sh toy 1            # another seed
#
# A small budget, to fit a shared 2-core machine: 16 samples on each of 16 test problems per road; MH with 4
# blocks x 4 steps, Power-SMC with 8 particles, scalable power sampling with the top 4 tokens x 4 futures.
# Writes runs/roads-<variant>-<seed>/roads.json (pass@k up to 16, tokens and seconds per answer) and
# roads_pass_at_k.png; `python -m family.paper_figures roads runs/roads-*/roads.json` puts the runs in one table and
# draws accuracy against cost.
set -euo pipefail
cd "$(dirname "$0")"
variant=${1:-toy}
seed=${2:-0}
out=runs/roads-$variant-$seed
source plumbing/jobs.sh  # train: a complete arm is kept, an interrupted one continued (--resume)
if [ -e "$out" ]; then
    echo "continuing the job in $out (its complete arms are kept)"
fi
common=(--dataset "$variant" --seed "$seed")
eval=(--n 16 --limit 16 --trials 200)
train train_sharpen.py "$out/tempered" "${common[@]}" --mode tempered --alpha 4
python evaluate.py "${common[@]}" "${eval[@]}" --out "$out/plain.json" --compare base="toy_models/$variant" tempered="$out/tempered"
python evaluate.py "${common[@]}" "${eval[@]}" --out "$out/mh.json" --compare mh="toy_models/$variant" \
    --power-sample --alpha 4 --blocks 4 --mcmc-steps 4
python evaluate.py "${common[@]}" "${eval[@]}" --out "$out/smc.json" --compare smc="toy_models/$variant" \
    --power-smc --alpha 4 --particles 8
python evaluate.py "${common[@]}" "${eval[@]}" --out "$out/scalable.json" --compare scalable="toy_models/$variant" \
    --scalable-power --alpha 4 --candidates 4 --rollouts 4
python evaluate.py --merge "$out/plain.json" "$out/mh.json" "$out/smc.json" "$out/scalable.json" --out "$out/roads.json"
