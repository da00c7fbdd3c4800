#!/usr/bin/env bash
# The paper's whole grid on the embedded toy task, on a CPU: from one base model, sharpening (R = log pi_ref), the
# task reward (R = r), and for alpha in {0.5, 1, 1.25, 2, 4} x b in {0, 100, 10^4}: tempered RL (b = 0,
# R = alpha log pi_ref - log pi_theta, optimum ∝ pi_ref^alpha) and tilted RL (b > 0, R = r + (alpha log pi_ref
# - log pi_theta) / b, optimum ∝ pi_ref^alpha e^(b r)): 17 arms, as the authors' run_all.sh lays them out.
#
#   bash run_paper.sh                          # the toy whose likeliest answer is short and wrong
#   bash run_paper.sh toy-aligned 1            # the other variant, another seed
#   EVAL="--n 2 --limit 4" bash run_paper.sh toy 0 --steps 2 --eval-problems 8   # a smoke test: anything after
#                                              # the seed goes to every trainer; EVAL replaces the evaluation's size
#
# Then evaluates the base model and every arm (16 samples on 64 test problems), prints one table and writes
# runs/paper-<variant>-<seed>/grid.json and grid_paper.png: pass@1 and length against alpha, one line per b,
# sharpening, the task reward and the base model as reference lines (family/paper_figures.py grid). The commands of
# the same grid on the paper's three real models are printed at the end.
set -euo pipefail
cd "$(dirname "$0")"
variant=${1:-toy}
seed=${2:-0}
train=("${@:3}")
evaluation=(${EVAL:---n 16 --limit 64 --trials 200})
out=runs/paper-$variant-$seed
source plumbing/jobs.sh  # train: a complete arm is kept, an interrupted one continued (--resume)
if [ -e "$out" ]; then
    echo "continuing the job in $out (its complete arms are kept)"
fi
common=(--dataset "$variant" --seed "$seed")
arms=(base="toy_models/$variant")
train train_sharpen.py "$out/sharpen" "${common[@]}" "${train[@]}"
train train_task.py "$out/task" "${common[@]}" "${train[@]}"
arms+=(sharpen="$out/sharpen" task="$out/task")
for alpha in 0.5 1 1.25 2 4; do
    train train_sharpen.py "$out/a$alpha-b0" "${common[@]}" "${train[@]}" --mode tempered --alpha "$alpha"
    arms+=("a$alpha-b0=$out/a$alpha-b0")
    for b in 100 10000; do
        train train_task.py "$out/a$alpha-b$b" "${common[@]}" "${train[@]}" --mode tilted --alpha "$alpha" --b "$b"
        arms+=("a$alpha-b$b=$out/a$alpha-b$b")
    done
done
python evaluate.py "${common[@]}" "${evaluation[@]}" --out "$out/grid.json" --compare "${arms[@]}"
python -m family.paper_figures grid "$out/grid.json"

cat <<'COMMANDS'

The same grid on the paper's real models (4 GPUs each; none of it was run here). For each model, R as below, then
the 17 arms and one evaluation; `python -m family.paper_figures grid runs/<name>/grid.json` draws the same figure:

  R="--model meta-llama/Llama-3.2-3B-Instruct --dataset math_lighteval --eval-dataset math500 --gradient-checkpointing --fsdp --rollout-batch 32"
  R="--model Qwen/Qwen2.5-3B-Instruct --dataset math_lighteval --eval-dataset math500 --gradient-checkpointing --fsdp"
  R="--model Qwen/Qwen3-4B-Instruct-2507 --dataset deepscaler --eval-dataset aime24 --prompts-per-step 64 --max-new-tokens 4096 --steps 1000 --eval-problems 30 --gradient-checkpointing --fsdp --rollout-batch 32"

  name=llama   # qwen2.5, qwen3
  torchrun --nproc_per_node=4 train_sharpen.py $R --out runs/$name/sharpen
  torchrun --nproc_per_node=4 train_task.py $R --out runs/$name/task
  arms="sharpen=runs/$name/sharpen task=runs/$name/task"
  for alpha in 0.5 1 1.25 2 4; do
      torchrun --nproc_per_node=4 train_sharpen.py $R --mode tempered --alpha $alpha --out runs/$name/a$alpha-b0
      arms="$arms a$alpha-b0=runs/$name/a$alpha-b0"
      for b in 100 10000; do
          torchrun --nproc_per_node=4 train_task.py $R --mode tilted --alpha $alpha --b $b --out runs/$name/a$alpha-b$b
          arms="$arms a$alpha-b$b=runs/$name/a$alpha-b$b"
      done
  done
  torchrun --nproc_per_node=4 evaluate.py --dataset math500 --samples 16 --max-new-tokens 2048 \
      --compare base=<the model> $arms --out runs/$name/grid.json      # Qwen3-4B: --dataset aime24 --max-new-tokens 4096
COMMANDS
