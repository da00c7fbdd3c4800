"""Benchmark: seconds per RL step of this repo's trainer vs TRL's GRPOTrainer, on a CPU, on one of two workloads.

    --task toy     the embedded toy model (toy_models/toy, 0.42M parameters) on the toy task: 16 prompts x 8
                   samples, at most 48 new tokens, lr 3e-4, ours in micro-batches of 32 sorted by length
    --task arith   the real model SmolLM2-135M-Instruct (--model smollm2, the GGUF wheel) on the arith task
                   (tasks/arith.py, a 115-token few-shot prompt through its chat template): 4 prompts x 8 samples,
                   at most 48 new tokens, lr 1e-5 (the trainers' arith default), ours in one micro-batch of 32

Both take the same step: temperature 1 (no top-k, no top-p), reward = the task's correctness (the repo's
grader for both), no KL term and so no reference model in the loss, AdamW, gradients clipped to norm 1, one
optimizer step per batch of samples, without activation checkpointing. Precision: float32 on both sides by
default (TRL's GPU-minded default, bf16, turned off); with --bf16, bf16 autocast on both sides (TRL's bf16=True;
ours --bf16). --share-prompts gives ours its option of that name (each distinct prompt scored once; TRL has no
such option): run_real.sh trains with --bf16 --share-prompts. TRL runs all
sequences in one forward/backward pass (per_device_train_batch_size = the batch).

What each side does per step (everything between two steps is timed, nothing is left out):

    ours  train_task.py's own statements: its setup (everything above the loop but the step-0 evaluation),
          then the body of its loop once per step, as the script runs it: run.prompts -> rollout.sample
          (decode) and grade -> run.logprobs (log-probs of the samples under pi_ref: one forward pass
          without gradients, for the logged diagnostics logp_ref and kl; log pi_theta and the entropy come
          with the rollout) -> R = r -> group_advantages -> the update (forward + backward + AdamW, in
          length-sorted micro-batches of 32) -> run.metrics and one line of log.jsonl (no evaluation and
          no checkpoint: both fall after the last step timed)
    TRL   GRPOTrainer.train, one optimizer step: fetch and tokenize the prompts, model.generate, decode,
          reward, group-normalised advantages (scale_rewards="none": mean baseline, no std), one forward
          + backward with per-token log-probs and entropies ("dapo" token-level loss), AdamW, its own
          logging of metrics. With beta=0 and num_iterations=1 it computes neither reference nor old
          log-probs: ours does one forward pass (pi_ref) that TRL does not.

The two trainers take turns, step by step, in one process: a TrainerCallback runs one step of ours at each
of TRL's on_step_begin, and each TRL step is timed from one on_step_begin to the next (so its logging and
data loading count). The first --warmup steps of each are not counted; the medians of the rest are.

    pip install trl        # for this benchmark only: the repo itself never imports it
    python bench/bench_trl.py [--task toy|arith] [--bf16] [--share-prompts] [--steps 5] [--warmup 2] [--threads 1]

One CPU thread by default, for both: on a small shared machine several threads per process spin-wait
against each other and the timings become noise.
"""

import argparse
import ast
import os
import signal
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import rollout  # noqa: E402
import trainer  # noqa: E402
from plumbing.loading import load_model, load_tokenizer, resolve_model_path  # noqa: E402
from rewards import TaskGrader  # noqa: E402
from tasks.data import build_prompt, default_template, load_problems  # noqa: E402

# workload: (dataset, --model, prompts per step, group size, new tokens, lr, our micro-batch)
WORKLOADS = {"toy": ("toy", None, 16, 8, 48, 3e-4, 32), "arith": ("arith", "smollm2", 4, 8, 48, 1e-5, 32)}


SCRIPT = os.path.join(ROOT, "train_task.py")


def our_trainer(out, work, bf16, share_prompts):
    """train_task.py's own setup on the workload: (the names it defines, run included; the body of its loop,
    compiled: one RL step for the `step` in the names)."""
    dataset, model, prompts, group, tokens, lr, micro_batch = work
    statements = ast.parse(open(SCRIPT).read()).body
    loop = next(k for k, node in enumerate(statements) if isinstance(node, ast.For))
    setup = [node for node in statements[:loop] if not isinstance(node, ast.If)]  # all but the step-0 evaluation
    argv = ["--dataset", dataset, "--device", "cpu", "--out", out, "--group-size", str(group), "--prompts-per-step", str(prompts)]
    argv += ["--max-new-tokens", str(tokens), "--lr", str(lr), "--micro-batch", str(micro_batch)]
    argv += ["--model", model] if model else []
    argv += ["--bf16"] if bf16 else []
    argv += ["--share-prompts"] if share_prompts else []
    argv += ["--steps", "1000", "--eval-every", "1000", "--save-every", "1000"]  # no evaluation, no checkpoint
    names, saved = {"__doc__": "bench"}, sys.argv
    sys.argv = [SCRIPT, *argv]
    try:
        exec(compile(ast.Module(body=setup, type_ignores=[]), SCRIPT, "exec"), names)
    finally:
        sys.argv = saved
    for sig in (signal.SIGINT, signal.SIGTERM):  # Run defers these to a checkpoint; here Ctrl-C should just stop
        signal.signal(sig, signal.SIG_DFL)
    return names, compile(ast.Module(body=statements[loop].body, type_ignores=[]), SCRIPT, "exec")


PARTS = {"sample": 0.0, "score": 0.0}  # seconds in rollout.sample and in Run.logprobs (pi_ref), this step


def timed(function, part):
    def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            PARTS[part] += time.perf_counter() - start

    return call


rollout.sample = timed(rollout.sample, "sample")
trainer.Run.logprobs = timed(trainer.Run.logprobs, "score")


def our_step(ours, step):
    """One step of train_task.py --mode task: the body of its loop. Returns the seconds of its parts."""
    names, body = ours
    PARTS.update(sample=0.0, score=0.0)
    start = time.perf_counter()
    names["step"] = step
    exec(body, names)
    total = time.perf_counter() - start
    return {**PARTS, "rest": total - PARTS["sample"] - PARTS["score"], "total": total}


def trl_trainer(out, steps, callback, work, bf16):
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    dataset, model, prompts, group, tokens, lr, _ = work
    path = resolve_model_path(model, dataset)
    tok = load_tokenizer(path)
    rows = load_problems(dataset, "train", limit=prompts * steps, seed=0)
    rows = (rows * (prompts * steps // len(rows) + 1))[: prompts * steps]  # arith's 85 problems, repeated if need be
    template = default_template(dataset)
    data = Dataset.from_list([{"prompt": build_prompt(tok, r["question"], template), "answer": r["answer"]} for r in rows])
    grader = TaskGrader(dataset)

    def correctness(completions, answer, **kwargs):
        return [grader.check(c, a)[0] for c, a in zip(completions, answer)]

    config = GRPOConfig(
        output_dir=out,
        use_cpu=True,
        use_vllm=False,
        max_steps=steps,
        seed=0,
        per_device_train_batch_size=prompts * group,
        gradient_accumulation_steps=1,
        num_generations=group,
        max_completion_length=tokens,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        beta=0.0,
        num_iterations=1,
        scale_rewards="none",
        loss_type="dapo",
        learning_rate=lr,
        lr_scheduler_type="constant",
        weight_decay=0.01,
        max_grad_norm=1.0,
        # TRL's GPU-minded defaults are bf16 autocast and activation checkpointing; here bf16 follows --bf16, as
        # ours does, and neither side checkpoints (it would only slow a CPU down).
        bf16=bf16,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=load_model(path, torch.device("cpu")),  # a GGUF file dequantised, as ours loads it
        reward_funcs=correctness,
        args=config,
        train_dataset=data,
        processing_class=tok,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # TRL still computes its metrics every step; they are just not printed
    generate = trainer.model.generate

    def timed_generate(*args, **kwargs):  # where TRL's time goes: its sampling, counted per step by the callback
        start = time.perf_counter()
        out = generate(*args, **kwargs)
        callback.trl_generate += time.perf_counter() - start
        return out

    trainer.model.generate = timed_generate
    return trainer


def take_turns_callback(ours, steps):
    """Runs one step of ours before each TRL step, and times each TRL step up to the next one's start."""
    from transformers import TrainerCallback

    class TakeTurns(TrainerCallback):
        def __init__(self):
            self.ours, self.trl, self.trl_start = [], [], None
            self.trl_generate, self.trl_generate_per_step = 0.0, []  # seconds in model.generate

        def on_step_begin(self, args, state, control, **kwargs):
            if self.trl_start is not None:
                self.trl.append(time.perf_counter() - self.trl_start)
                self.trl_generate_per_step.append(self.trl_generate)
            self.trl_generate = 0.0
            if len(self.ours) < steps:
                self.ours.append(our_step(ours, len(self.ours)))
            self.trl_start = time.perf_counter()

    return TakeTurns()


def seconds(values):
    return ", ".join(f"{v:.2f}" for v in values)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps of each trainer")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each trainer first")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--task", choices=WORKLOADS, default="toy")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides (ours: --bf16)")
    p.add_argument("--share-prompts", action="store_true", help="ours with --share-prompts (TRL has no such option)")
    args = p.parse_args()
    try:
        import trl
    except ImportError:
        raise SystemExit("bench_trl.py needs TRL, which the repo itself does not use: pip install trl")
    torch.set_num_threads(args.threads)
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        work = WORKLOADS[args.task]
        turns = take_turns_callback(our_trainer(os.path.join(tmp, "ours"), work, args.bf16, args.share_prompts), total)
        # One TRL step more than timed: a TRL step's time ends where the next one begins.
        trl_trainer(os.path.join(tmp, "trl"), total + 1, turns, work, args.bf16).train()
    ours, theirs = turns.ours[args.warmup :], turns.trl[args.warmup : total]
    part = {k: statistics.median(o[k] for o in ours) for k in ours[0]}
    print(
        f"RL step on the {args.task} task: {work[2]} prompts x {work[3]} samples, <= {work[4]} new tokens, "
        f"{'bf16 autocast' if args.bf16 else 'float32'}{', ours with --share-prompts' if args.share_prompts else ''}, CPU, "
        f"{torch.get_num_threads()} thread(s); TRL {trl.__version__}; median of {len(ours)} steps after {args.warmup} warm-up"
    )
    print(f"  ours {part['total']:7.2f} s/step   (each: {seconds(o['total'] for o in ours)})")
    print(
        f"       of which rollout.sample {part['sample']:.2f}, the pi_ref pass {part['score']:.2f} (TRL skips it), "
        f"the rest {part['rest']:.2f} (grading, advantages, the update, metrics, the log line)"
    )
    print(f"  TRL  {statistics.median(theirs):7.2f} s/step   (each: {seconds(theirs)})")
    print(f"       of which model.generate {statistics.median(turns.trl_generate_per_step[args.warmup : total]):.2f}")
    print(
        f"  TRL / ours = {statistics.median(theirs) / part['total']:.2f}: the median seconds per step of TRL's GRPOTrainer "
        f"over ours, on the same step, taken in turns"
    )


if __name__ == "__main__":
    main()
