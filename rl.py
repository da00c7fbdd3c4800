"""
The parts of the RL loop that train_task.py and train_sharpen.py share, so that the two trainers differ
only in their objective. Each piece is a small function or method, in the order the loop calls them:

    setup          options, process group, seed, tokenizer, policy + frozen reference, AdamW, data, resume
    prompts        this rank's prompts for a step (a seeded shuffle per epoch, so a resumed run sees the same)
    sample         G responses per prompt with the hand-written rollout, decoded and graded
    score          per-token log pi_ref, log pi_theta and entropy of the samples (no grad, micro-batched)
    update         the shared policy-gradient loss, micro-batched, gradients summed over ranks, clipped
    log / evaluate / checkpoint
"""

import argparse
import functools
import json
import math
import os
import random
import shutil
import signal
import time
import warnings

import numpy as np
import torch
from tqdm import tqdm

import checkpoint
import distributed
from data import build_prompt, default_template, load_or_exit
from evaluate import decode_responses, sample_and_grade
from loss import AGGREGATIONS, BASELINES, policy_loss, token_weights
from model import autocast, eos_ids, frozen_copy, load_model, load_tokenizer, pick_device, resolve_model_path, response_logprobs
from rewards import NORMALIZATIONS, POLICY_TERM, TaskGrader
from rollout import Rollout, rollout

# The paper's settings for real models (notes section 3), and settings that work for the toy on a CPU.
PAPER_DEFAULTS = dict(steps=500, prompts_per_step=32, lr=1e-6, warmup=50, max_new_tokens=2048, micro_batch=4,
                      eval_every=20, eval_problems=500, save_every=20)
TOY_DEFAULTS = dict(steps=60, prompts_per_step=16, lr=3e-4, warmup=5, max_new_tokens=48, micro_batch=32,
                    eval_every=10, eval_problems=256, save_every=20)
MAX_BAD_STEPS = 3  # consecutive non-finite losses before a run is stopped


def parser(description, out):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", help="hub id or folder (default: the toy model of a toy dataset)")
    a("--dataset", default="toy", help="training set: toy, toy-aligned, math_lighteval, deepscaler, gsm8k, or a file")
    a("--eval-dataset", help="in-training evaluation set (default: the training set's test split)")
    a("--question-key", help="question column of a local data file")
    a("--answer-key", help="answer column of a local data file")
    a("--template", help="prompt template with {problem} (default: the dataset's)")
    a("--grader", default="builtin", help="builtin or math_verify")
    # RL
    a("--steps", type=int, help="RL steps (one optimizer step each)")
    a("--prompts-per-step", type=int, help="prompts per step, over all ranks")
    a("--group-size", type=int, default=8, help="samples per prompt, G")
    a("--max-new-tokens", type=int)
    a("--temperature", type=float, default=1.0)
    a("--top-p", type=float, default=1.0)
    a("--top-k", type=int, default=0)
    a("--fixed-length", action="store_true", help="ignore EOS: every sample runs to --max-new-tokens (the paper's control)")
    a("--baseline", choices=BASELINES, default="leave_one_out")
    a("--std-normalize", action="store_true", help="GRPO: divide advantages by the group's reward std")
    a("--aggregation", choices=AGGREGATIONS, default="token", help="token (paper), sequence (GRPO), constant (Dr. GRPO)")
    a("--kl-coef", type=float, default=0.0, help="k3 KL penalty to the reference, per token (paper: 0)")
    a("--updates-per-batch", type=int, default=1, help=">1 reuses each batch with PPO ratio clipping")
    a("--clip-eps", type=float, default=0.2, help="PPO clip range, used only when --updates-per-batch > 1")
    a("--normalization", choices=NORMALIZATIONS, default="sum", help="length normalisation of log pi_ref")
    a("--length-power", type=float, default=0.5, help="w in log pi_ref / L^w for --normalization power")
    # optimisation and memory
    a("--lr", type=float)
    a("--warmup", type=int, help="linear warm-up from 0.1x lr over this many steps")
    a("--weight-decay", type=float, default=0.01)
    a("--grad-clip", type=float, default=1.0)
    a("--micro-batch", type=int, help="sequences per forward/backward pass")
    a("--rollout-batch", type=int, default=512, help="sequences per rollout call")
    a("--gradient-checkpointing", action="store_true")
    a("--ref-on-cpu", action="store_true", help="keep the reference model in CPU memory between uses")
    # bookkeeping
    a("--out", default=out, help="run folder: log.jsonl, checkpoints, final/")
    a("--eval-every", type=int)
    a("--eval-problems", type=int)
    a("--save-every", type=int)
    a("--keep", type=int, default=2, help="checkpoints kept")
    a("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")
    a("--seed", type=int, default=0)
    a("--device", help="cpu, cuda, ... (default: cuda if available)")
    return p


def fill_defaults(args):
    defaults = TOY_DEFAULTS if args.dataset.startswith("toy") else PAPER_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


@functools.lru_cache(maxsize=2)
def epoch_order(seed, epoch, n):
    """The order of the training set in `epoch`: a seeded shuffle, so a resumed run sees the same prompts."""
    return random.Random(seed * 100_003 + epoch).sample(range(n), n)


class Run:
    """Everything a training run holds. Built once by `setup`, then used by the loop."""

    def __init__(self, args):
        self.args = args = fill_defaults(args)
        self.dist = dist = distributed.setup(pick_device(args.device))
        if args.prompts_per_step % dist.world:
            raise SystemExit(f"--prompts-per-step {args.prompts_per_step} must be divisible by the {dist.world} ranks")
        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        keys = dict(question_key=args.question_key, answer_key=args.answer_key)
        self.train_rows = load_or_exit(args.dataset, "train", seed=args.seed, **keys)
        self.eval_rows = load_or_exit(args.eval_dataset or args.dataset, "test", args.eval_problems, args.seed, **keys)
        args.model = resolve_model_path(args.model, args.dataset)
        self.tokenizer = load_tokenizer(args.model)
        base = load_model(args.model, dist.device)
        self.ref = frozen_copy(base, torch.bfloat16 if dist.device.type == "cuda" else None)
        self.ref_device = dist.device
        if args.ref_on_cpu:
            self.ref.to("cpu")
        self.eos = eos_ids(self.tokenizer, base)
        self.grader = TaskGrader(args.dataset, args.grader)
        self.eval_grader = TaskGrader(args.eval_dataset or args.dataset, args.grader)
        self.template = args.template or default_template(args.dataset)
        self.start_step = 0
        if args.resume:
            path = checkpoint.latest(args.out)
            state = checkpoint.load_trainer_state(path)
            base = load_model(path, dist.device)
            self.start_step = state["step"]
        self.policy = base.train()
        if args.gradient_checkpointing:
            self.policy.activation_checkpointing_enable()
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
        warm = max(1, args.warmup)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, 0.1 + 0.9 * s / warm))
        if args.resume:
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            checkpoint.set_rng_state(state["rng"])
            if dist.is_main:
                print(f"resumed from {path} at step {self.start_step}")
        self.bad_steps = 0
        self.saved_step = self.start_step  # never write the same checkpoint twice
        self.stop_signal = None
        for sig in (signal.SIGINT, signal.SIGTERM):  # save a checkpoint, then exit
            signal.signal(sig, lambda signum, frame: setattr(self, "stop_signal", signum))
        if dist.is_main:
            os.makedirs(args.out, exist_ok=True)
            self._prepare_out_dir()
            with open(os.path.join(args.out, "config.json"), "w") as f:
                json.dump(vars(args), f, indent=1)

    # -------------------------------------------------------------------------
    def steps(self):
        bar = tqdm(range(self.start_step, self.args.steps), initial=self.start_step, total=self.args.steps,
                   disable=not self.dist.is_main, dynamic_ncols=True)
        self.bar = bar
        for step in bar:
            yield step
            if self.stop_signal is not None:
                self.save(step + 1, force=True)
                raise SystemExit(f"stopped by signal {self.stop_signal} after step {step + 1}; --resume continues")

    def prompts(self, step):
        """This rank's prompts for `step`: walk a seeded shuffle of the training set, one epoch at a time."""
        n, rows = self.args.prompts_per_step, self.train_rows
        picked = []
        for i in range(step * n, (step + 1) * n):
            epoch, j = divmod(i, len(rows))
            picked.append(rows[epoch_order(self.args.seed, epoch, len(rows))[j]])
        return picked[self.dist.rank :: self.dist.world]

    def sample(self, rows, step):
        """
        G samples per prompt, consecutive in the batch, graded. Returns the rollout, the task reward
        r in {0, 1} of each sample, and which samples gave no answer at all (they score 0).
        """
        a = self.args
        ids = [self.tokenizer.encode(build_prompt(self.tokenizer, r["question"], self.template), add_special_tokens=False) for r in rows]
        ids = [p for p in ids for _ in range(a.group_size)]
        # Seeded by (seed, step, rank): a resumed run draws the same samples as an uninterrupted one.
        gen = torch.Generator(self.dist.device).manual_seed(a.seed * 1_000_003 + step * 1009 + self.dist.rank)
        self.policy.eval()
        parts = []
        for i in range(0, len(ids), a.rollout_batch):
            with autocast(self.dist.device):
                parts.append(rollout(self.policy, ids[i : i + a.rollout_batch], a.max_new_tokens, self.eos, self.tokenizer.pad_token_id,
                                     a.temperature, a.top_k, a.top_p, ignore_eos=a.fixed_length, generator=gen))
        roll = Rollout.cat(parts, self.tokenizer.pad_token_id)
        texts = decode_responses(self.tokenizer, roll)
        golds = [r["answer"] for r in rows for _ in range(a.group_size)]
        checks = [self.grader.check(text, gold) for text, gold in zip(texts, golds)]
        r = torch.tensor([score for score, _ in checks], device=self.dist.device)
        no_answer = torch.tensor([answer is None for _, answer in checks], device=self.dist.device)
        return roll, r, no_answer

    @torch.no_grad()
    def score(self, roll, mode):
        """
        Per-token log pi_ref, log pi_theta (the policy before this step's update) and entropy of pi_theta.
        Sampled at temperature 1 without top-k/top-p, the rollout's own log-probs and entropies are pi_theta's
        (equal to teacher forcing to 1e-5 in fp32, tests/test_rollout.py), so the policy pass is skipped unless
        the numbers feed the objective: the -log pi_theta of the reward `mode`s that have one and the PPO
        ratio come from the trainer's forward, as in the paper (rollout and trainer kernels differ in bf16).
        """
        a = self.args
        if a.ref_on_cpu:
            self.ref.to(self.ref_device)
        ref_logp = self._forward(self.ref, roll, entropy=False)[0]
        if a.ref_on_cpu:
            self.ref.to("cpu")
        sampled_from_policy = a.temperature == 1 and not a.top_k and a.top_p == 1
        if sampled_from_policy and mode not in POLICY_TERM and a.updates_per_batch == 1:
            return ref_logp, roll.logprobs, roll.entropy
        logp, entropy = self._forward(self.policy, roll, entropy=True)
        return ref_logp, logp, entropy

    def _forward(self, model, roll, entropy):
        """No-grad per-token log-probs (and entropies, if asked) of the samples under `model`."""
        logp = torch.zeros_like(roll.logprobs)
        ent = torch.zeros_like(roll.logprobs) if entropy else None
        for rows, sequences, attention_mask, response_mask in roll.micro_batches(self.args.micro_batch):
            with autocast(self.dist.device):
                lp, e = response_logprobs(model, sequences, attention_mask, response_mask, entropy=entropy)
            logp[rows, : lp.shape[1]] = lp
            if entropy:
                ent[rows, : e.shape[1]] = e
        return logp, ent

    def update(self, roll, advantages, old_logp, ref_logp):
        """One or more optimizer steps on the shared loss. Returns (loss, grad_norm); skips non-finite steps."""
        a, dist = self.args, self.dist
        mask = roll.response_mask
        weights = token_weights(mask, a.aggregation, dist.sum(mask.sum()).item(), dist.sum(mask.shape[0]).item(), a.max_new_tokens)
        clip_eps = a.clip_eps if a.updates_per_batch > 1 else None
        self.policy.train()
        for _ in range(a.updates_per_batch):
            self.opt.zero_grad(set_to_none=True)
            total = 0.0
            for rows, sequences, attention_mask, response_mask in roll.micro_batches(a.micro_batch):
                with autocast(dist.device):
                    logp, _ = response_logprobs(self.policy, sequences, attention_mask, response_mask)
                R = response_mask.shape[1]
                loss = policy_loss(logp, advantages[rows], weights[rows, :R], old_logp[rows, :R], clip_eps, ref_logp[rows, :R], a.kl_coef)
                loss.backward()
                total += loss.item()
            dist.all_reduce_grads(self.policy)
            total = dist.sum(total).item()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), a.grad_clip).item()
            if not (math.isfinite(total) and math.isfinite(grad_norm)):
                self.bad_steps += 1
                warnings.warn(f"non-finite loss {total} / grad norm {grad_norm}: step skipped ({self.bad_steps} in a row)")
                if self.bad_steps >= MAX_BAD_STEPS:
                    raise SystemExit(f"{MAX_BAD_STEPS} non-finite steps in a row: stopping (checkpoints already written are intact)")
                self.opt.zero_grad(set_to_none=True)
                break
            self.bad_steps = 0
            self.opt.step()
        self.sched.step()
        return total, grad_norm

    # -------------------------------------------------------------------------
    def metrics(self, roll, r, R, ref_logp, logp, entropy, no_answer, loss, grad_norm, t0):
        """Every diagnostic of a step, averaged over all ranks. What each one tells you is in the README."""
        a, dist = self.args, self.dist
        mask = roll.response_mask.float()
        lengths = mask.sum(-1)
        G = a.group_size
        per_seq = {
            "reward": R, "reward_sq": R**2, "accuracy": r.float(), "no_answer": no_answer.float(),
            "logp_ref": ref_logp.sum(-1), "length": lengths, "truncated": roll.truncated.float(),
            "kl": (logp - ref_logp).sum(-1),  # k1 estimate of KL(pi_theta || pi_ref) per sequence
        }
        sums = {k: dist.sum(v.sum()).item() for k, v in per_seq.items()}
        n = dist.sum(len(R)).item()
        tokens = dist.sum(mask.sum()).item()
        m = {k: v / n for k, v in sums.items() if k != "reward_sq"}
        m["reward_std"] = math.sqrt(max(0.0, sums["reward_sq"] / n - m["reward"] ** 2))
        m["logp_ref_per_token"] = dist.sum((ref_logp * mask).sum()).item() / tokens
        m["entropy"] = dist.sum((entropy * mask).sum()).item() / tokens
        m["zero_std_groups"] = dist.sum((R.view(-1, G).std(1) < 1e-8).float().sum()).item() / (n / G)
        m.update(loss=loss, grad_norm=grad_norm, lr=self.sched.get_last_lr()[0])
        m["step_time"] = time.time() - t0
        m["tokens_per_s"] = tokens / m["step_time"]
        return m

    def log(self, step, metrics):
        metrics = {"step": step + 1, **metrics}
        if self.dist.is_main:
            with open(os.path.join(self.args.out, "log.jsonl"), "a") as f:
                f.write(json.dumps(metrics) + "\n")
            show = ("reward", "accuracy", "length", "logp_ref", "eval_accuracy")
            self.bar.set_postfix({k: f"{metrics[k]:.3g}" for k in show if k in metrics})

    def _prepare_out_dir(self):
        """
        A fresh run starts from an empty folder (old checkpoints would be picked up by a later --resume).
        A resumed run drops log lines written after its checkpoint, so the log reads as one clean run.
        """
        out, path = self.args.out, os.path.join(self.args.out, "log.jsonl")
        if not self.args.resume:
            stale = [d for d in os.listdir(out) if d.startswith("step_") or d == "final"]
            for d in stale:
                shutil.rmtree(os.path.join(out, d))
            if stale:
                print(f"fresh run: removed {len(stale)} old checkpoint folder(s) from {out}")
        if not os.path.exists(path):
            return
        lines = open(path).read().splitlines() if self.args.resume else []
        with open(path, "w") as f:
            f.writelines(line + "\n" for line in lines if json.loads(line)["step"] <= self.start_step)

    def evaluate(self, step):
        """Held-out accuracy and length, 1 sample per problem at the training temperature (as the paper)."""
        a = self.args
        if not ((step + 1) % a.eval_every == 0 or step + 1 == a.steps):
            return {}
        rows = self.eval_rows[self.dist.rank :: self.dist.world]
        recs = sample_and_grade(self.policy, self.tokenizer, rows, self.eval_grader, 1, self.template, a.max_new_tokens,
                                a.temperature, a.top_p, a.top_k, a.rollout_batch, seed=a.seed + 7919 * (step + 1) + self.dist.rank)
        recs = self.dist.gather_lists(recs)
        return {"eval_accuracy": float(np.mean([r["scores"][0] for r in recs])),
                "eval_length": float(np.mean([r["lengths"][0] for r in recs]))}

    def save(self, step, force=False):
        """A checkpoint every --save-every steps (or now, when forced); rank 0 writes it."""
        if self.dist.is_main and step != self.saved_step and (force or step % self.args.save_every == 0):
            self.saved_step = step
            state = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "config": vars(self.args)}
            checkpoint.save(self.args.out, step, self.policy, self.tokenizer, state, self.args.keep)

    def close(self):
        """The last checkpoint, and the final model in out/final (what evaluate.py --compare loads)."""
        self.save(self.args.steps, force=True)
        if self.dist.is_main:
            self.policy.save_pretrained(os.path.join(self.args.out, "final"))
            self.tokenizer.save_pretrained(os.path.join(self.args.out, "final"))
        self.dist.close()
