"""Benchmark: seconds per RL step of this repo's trainer vs TRL's GRPOTrainer, on the toy task, on a CPU.

Both train the embedded toy model (toy_models/toy) on the toy task with the same step: 16 prompts x 8
samples, at most 48 new tokens, temperature 1 (no top-k, no top-p), reward = toy correctness
(toytask.grade), no KL term and so no reference model in the loss, AdamW at lr 3e-4, gradients clipped
to norm 1, one optimizer step per batch of samples, float32 without activation checkpointing (TRL's
defaults, bf16 autocast and checkpointing, are turned off). TRL runs all 128 sequences in one forward/backward
pass (per_device_train_batch_size 128); ours in the toy default of micro-batches of 32, sorted by length.

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
    python bench/bench_trl.py [--steps 5] [--warmup 2] [--threads 1]

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
from plumbing.loading import TOY_MODELS, load_model, load_tokenizer  # noqa: E402
from tasks import toytask  # noqa: E402
from tasks.data import build_prompt, load_problems  # noqa: E402

PROMPTS, GROUP, MAX_NEW_TOKENS, LR = 16, 8, 48, 3e-4


SCRIPT = os.path.join(ROOT, "train_task.py")


def our_trainer(out):
    """train_task.py's own setup with the toy defaults (16 prompts per step, 48 tokens, micro-batches of 32, lr 3e-4):
    (the names it defines, run included; the body of its loop, compiled: one RL step for the `step` in the names)."""
    statements = ast.parse(open(SCRIPT).read()).body
    loop = next(k for k, node in enumerate(statements) if isinstance(node, ast.For))
    setup = [node for node in statements[:loop] if not isinstance(node, ast.If)]  # all but the step-0 evaluation
    argv = ["--dataset", "toy", "--device", "cpu", "--out", out, "--group-size", str(GROUP), "--prompts-per-step", str(PROMPTS)]
    argv += ["--max-new-tokens", str(MAX_NEW_TOKENS), "--lr", str(LR)]
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


def trl_trainer(out, steps, callback):
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    path = os.path.join(TOY_MODELS, "toy")
    tok = load_tokenizer(path)
    rows = load_problems("toy", "train", limit=PROMPTS * steps, seed=0)
    data = Dataset.from_list(
        [{"prompt": build_prompt(tok, r["question"], toytask.PROMPT_TEMPLATE), "answer": r["answer"]} for r in rows]
    )

    def correctness(completions, answer, **kwargs):
        return [toytask.grade(c, a) for c, a in zip(completions, answer)]

    config = GRPOConfig(
        output_dir=out,
        use_cpu=True,
        use_vllm=False,
        max_steps=steps,
        seed=0,
        per_device_train_batch_size=PROMPTS * GROUP,
        gradient_accumulation_steps=1,
        num_generations=GROUP,
        max_completion_length=MAX_NEW_TOKENS,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        beta=0.0,
        num_iterations=1,
        scale_rewards="none",
        loss_type="dapo",
        learning_rate=LR,
        lr_scheduler_type="constant",
        weight_decay=0.01,
        max_grad_norm=1.0,
        # TRL's GPU-minded defaults are bf16 autocast and activation checkpointing; ours runs fp32 without
        # checkpointing on a CPU, and so does TRL here (both settings would only slow it down).
        bf16=False,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=load_model(path, torch.device("cpu")),
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
    args = p.parse_args()
    try:
        import trl
    except ImportError:
        raise SystemExit("bench_trl.py needs TRL, which the repo itself does not use: pip install trl")
    torch.set_num_threads(args.threads)
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        turns = take_turns_callback(our_trainer(os.path.join(tmp, "ours")), total)
        # One TRL step more than timed: a TRL step's time ends where the next one begins.
        trl_trainer(os.path.join(tmp, "trl"), total + 1, turns).train()
    ours, theirs = turns.ours[args.warmup :], turns.trl[args.warmup : total]
    part = {k: statistics.median(o[k] for o in ours) for k in ours[0]}
    print(
        f"RL step on the toy task: {PROMPTS} prompts x {GROUP} samples, <= {MAX_NEW_TOKENS} new tokens, CPU, "
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
