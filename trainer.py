"""
The plumbing of train_task.py and train_sharpen.py, each piece behind a one-line call, so that the scripts show
the algorithm: sampling, the reward, the loss, the optimizer (each script builds its own) and the update are
their lines. Safe to skip on a first read. What it does decide about the learning: which prompts each step sees
(a seeded shuffle of the training set per epoch; prompts too long for the model dropped), the seed of each step's
samples, the prompt template (the dataset's, unless --template), on a GPU a bf16 pi_ref (its log-probs, and so
the sharpening rewards, are bf16's), and under --bf16 and --share-prompts how the forward passes are computed
(configure: bf16 autocast on a CPU too; each distinct prompt once).

    parser        the shared options, each checked against its range when parsed
    Run(parser, optimizer)
                  parses the options (--resume: the run's own), then: process group, seeds, run folder (lock,
                  --resume/--overwrite), data (prompts tokenized once), tokenizer, policy and frozen reference,
                  the script's optimizer(policy, args), --resume, signal handlers, the sampling settings
    prompts       this rank's problems for a step (a seeded shuffle per epoch, so a resumed run sees the same)
    generator     the seeded random stream of a step (a resumed run draws the same)
    logprobs      per-token log-probs (and entropies) of the samples under a model, no grad, micro-batched
    metrics / log / evaluate
    safekeeping   the non-finite guards around the optimizer step (skip_step, check_parameters), the signals,
                  --resume's restore, save / stop_if_signalled / save_final
"""

import functools
import math
import os
import random
import time
import warnings

import numpy as np
import torch
from tqdm import tqdm

import rollout
from loss import AGGREGATIONS, BASELINES
from model import frozen_copy, rollout_logprobs, use_bf16
from plumbing import checkpoint, distributed, options, samples, sharding, shared_prompts, stopping, tracking
from plumbing.loading import load_model, load_tokenizer, pick_device, resolve_model_path
from plumbing.run_folder import RunFolder
from rewards import NORMALIZATIONS, TaskGrader
from tasks.data import check_template, default_template, drop_long_prompts, load_or_exit

MAX_BAD_STEPS = 3  # consecutive non-finite steps before a run is stopped


def parser(description, out):
    p = options.Parser(description)
    p.add("--model", help="hub id, folder, .gguf file, or smollm2 (default: the toy model of a toy dataset)")
    p.add("--dataset", default="toy", help="training set: toy, toy-aligned, arith, math_lighteval, deepscaler, gsm8k, or a file")
    p.add("--eval-dataset", help="in-training evaluation set (default: the training set's test split)")
    p.add("--question-key", help="question column of a local data file")
    p.add("--answer-key", help="answer column of a local data file")
    p.add("--template", help="prompt template with {problem} (default: the dataset's)")
    p.add("--grader", default="builtin", choices=("builtin", "math_verify"))
    # RL
    p.add("--steps", type=options.COUNT, task=True, help="RL steps (one optimizer step each)")
    p.add("--prompts-per-step", type=options.COUNT, task=True, help="prompts per step, over all ranks")
    p.add("--group-size", type=options.GROUP, default=8, help="samples per prompt, G")
    options.sampling_options(p)
    p.add("--fixed-length", action="store_true", help="ignore EOS: every sample runs to --max-new-tokens (the paper's control)")
    p.add("--baseline", choices=BASELINES, default="leave_one_out")
    p.add("--std-normalize", action="store_true", help="GRPO: divide advantages by the group's reward std")
    p.add(
        "--aggregation", choices=AGGREGATIONS, default="token", help="token (paper, DAPO), sequence (GRPO), constant (Dr. GRPO's)"
    )
    p.add("--kl-coef", type=options.NONNEGATIVE, default=0.0, help="k (the k3 KL penalty to pi_ref, per token; paper: 0)")
    p.add("--updates-per-batch", type=options.COUNT, default=1, help=">1 reuses each batch with PPO ratio clipping")
    p.add("--clip-eps", type=options.CLIP, default=0.2, help="PPO clip range (only with --updates-per-batch > 1)")
    p.add("--normalization", choices=NORMALIZATIONS, default="sum", help="length normalisation of log pi_ref")
    p.add("--length-power", type=options.FINITE, default=0.5, help="w in log pi_ref / L^w for --normalization power")
    # optimisation and memory
    p.add("--lr", type=options.POSITIVE, task=True, help="AdamW learning rate")
    p.add("--warmup", type=options.NATURAL, task=True, help="linear warm-up from 0.1 x lr over this many steps")
    p.add("--weight-decay", type=options.NONNEGATIVE, default=0.01)
    p.add("--grad-clip", type=options.POSITIVE, default=1.0, help="gradient norm clip")
    p.add("--micro-batch", type=options.COUNT, task=True, help="sequences per forward/backward pass")
    p.add("--rollout-batch", type=options.COUNT, default=512, help="sequences per rollout call")
    p.add("--gradient-checkpointing", action="store_true")
    p.add("--ref-on-cpu", action="store_true", help="keep the reference model in CPU memory between uses")
    p.add(
        "--bf16",
        action="store_true",
        help="bf16 autocast on a CPU too, as on CUDA: 2-3x faster matrix products on CPUs with bf16 units",
    )
    p.add(
        "--share-prompts",
        action="store_true",
        help="score each distinct prompt once, not once per sample (shared_prompts.py): the same log-probs, fewer tokens",
    )
    p.add(
        "--fsdp",
        action="store_true",
        help="shard the policy and the reference over the ranks with torch's FSDP2 (sharding.py): 1/N of the weights, "
        "gradients and AdamW state per rank",
    )
    # bookkeeping
    p.add("--out", default=out, help="run folder: config.json, log.jsonl, checkpoints, final/")
    p.add("--eval-every", type=options.COUNT, task=True, help="evaluate every this many steps (and at step 0)")
    p.add("--eval-problems", type=options.COUNT, task=True, help="held-out problems per evaluation")
    p.add("--save-every", type=options.COUNT, task=True, help="checkpoint every this many steps")
    p.add("--keep", type=options.COUNT, default=2, help="checkpoints kept")
    p.add("--resume", action="store_true", help="continue the run in --out from its newest good checkpoint")
    p.add("--overwrite", action="store_true", help="replace the run in --out (its log and checkpoints are deleted)")
    p.add("--seed", type=options.SEED, default=0)
    p.add("--device", help="cpu, cuda, ... (default: cuda if available)")
    tracking.add_option(p)
    return p


@functools.lru_cache(maxsize=2)
def epoch_order(seed, epoch, n):
    """The order of the training set in `epoch`: a seeded shuffle, so a resumed run sees the same prompts."""
    return random.Random(seed * 100_003 + epoch).sample(range(n), n)


def load_data(args):
    """The training and evaluation problems (a bad name, file or column stops with one line)."""
    keys = dict(question_key=args.question_key, answer_key=args.answer_key)
    train = load_or_exit(args.dataset, "train", seed=args.seed, **keys)
    return train, load_or_exit(args.eval_dataset or args.dataset, "test", args.eval_problems, args.seed, **keys)


def configure(model, args):
    """A freshly loaded model (the policy; its frozen copy pi_ref inherits this) as --bf16 and --share-prompts ask."""
    if args.bf16:
        use_bf16(model)
    if args.share_prompts:
        shared_prompts.enable(model)
    return model


def step_metrics(dist, G, lr, roll, r, R, ref_logp, logp, entropy, answers, loss, grad_norm, t0):
    """Every diagnostic of a step, averaged over all ranks. What each one tells you is in the README."""
    mask = roll.response_mask.float()
    per_seq = {
        "reward": R,
        "reward_sq": R**2,
        "accuracy": r.float(),
        "no_answer": torch.tensor([a is None for a in answers], device=r.device).float(),
        "logp_ref": ref_logp.sum(-1),
        "length": mask.sum(-1),
        "truncated": roll.truncated.float(),
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
    m["loss"] = dist.sum(loss).item()
    m["grad_norm"] = grad_norm  # non-finite on a skipped step
    m["lr"] = lr
    m["step_time"] = time.time() - t0
    m["tokens_per_s"] = tokens / m["step_time"]
    return m


def resume_point(args):
    """--resume: the newest good checkpoint and its trainer state (refused: fewer --steps than it has done)."""
    path = checkpoint.latest(args.out)
    state = checkpoint.load_trainer_state(path)
    if args.steps < state["step"]:
        raise SystemExit(
            f"error: --resume: --steps {args.steps} is below the checkpoint's step {state['step']} ({path}): "
            f"give --steps {state['step']} or more"
        )
    return path, state


class Run:
    """Everything a training run holds, built once from the options; `optimizer(policy, args)` is the script's, and
    returns (AdamW, its schedule).

    One object with its safekeeping (the guards, signals and checkpoints below), not two: those use ten of the
    attributes the setup builds (the options, ranks, run folder, start step, policy, optimizer, schedule, tokenizer,
    probe and tracker), metrics and evaluate use their guard, and the loop calls five of them on `run`. A composed
    object would take all ten and Run would forward the five; as a mixin they were one object already, reading
    attributes it never set."""

    @stopping.setting_up  # a refusal or a signal before the run writes undoes its claim on the folder
    def __init__(self, parser, optimizer, argv=None):
        args = parser.parse_args(argv)  # argv: the command line (tests pass a list)
        if args.resume and args.overwrite:
            parser.error("--resume and --overwrite exclude each other")
        self.dist = dist = distributed.setup(pick_device(args.device))
        self.folder = RunFolder(args.out)
        args.trainer = parser.prog  # the script: only it resumes this run (another offers other modes)
        if dist.is_main:
            self.folder.claim(args.resume, args.overwrite)
        if args.resume:
            args = self.folder.resumed_config(args, parser)
        self.args = args = options.fill_task_defaults(args)
        tracking.require(args.report_to)  # a missing package stops every rank before anything loads
        if args.share_prompts and args.fsdp:
            raise SystemExit("error: --share-prompts does not combine with --fsdp: choose one")
        if args.prompts_per_step % dist.world:
            raise SystemExit(f"error: --prompts-per-step {args.prompts_per_step} must be divisible by the {dist.world} ranks")
        self.template = check_template(args.template or default_template(args.dataset))
        eval_template = check_template(args.template or default_template(args.eval_dataset or args.dataset))
        path, state = resume_point(args) if args.resume else (None, None)
        self.start_step = state["step"] if state else 0
        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        train, held_out = load_data(args)  # before the model: a typo in the data stops first
        args.model = resolve_model_path(args.model, args.dataset)
        self.folder.check_model(args)  # a run folder, or (--resume) the run's model gone: one line, before loading
        self.tokenizer = load_tokenizer(args.model)
        base = configure(load_model(args.model, dist.device), args)
        fit = (base.config, args.max_new_tokens)  # each row gets its prompt's token ids
        self.train_rows = drop_long_prompts(train, self.tokenizer, self.template, *fit, "training set")
        self.eval_rows = drop_long_prompts(held_out, self.tokenizer, eval_template, *fit, "evaluation set")
        dist.check_share(len(self.eval_rows), "--eval-problems")
        self.folder.started_from(args, base, train, held_out)  # --resume: the run's own model and data, or stop
        self.ref = frozen_copy(base, torch.bfloat16 if dist.device.type == "cuda" else None)
        if args.ref_on_cpu:
            self.ref.to("cpu")
        self.grader = TaskGrader(args.dataset, args.grader)
        self.eval_grader = TaskGrader(args.eval_dataset or args.dataset, args.grader)
        # Sampled at temperature 1 without top-k/top-p, the rollout's log-probs are pi_theta's own.
        self.sampled_from_policy = args.temperature == 1 and not args.top_k and args.top_p == 1
        self.sampling = options.sampling_settings(args, args.rollout_batch)  # rollout.sample's settings
        # A fixed prompt whose logits must stay finite before a model is saved (check_parameters)
        self.probe = torch.tensor([self.eval_rows[0]["prompt_ids"]], device=dist.device)
        self.policy = (configure(load_model(path, dist.device), args) if args.resume else base).train()
        if args.gradient_checkpointing:
            self.policy.activation_checkpointing_enable()
        if args.fsdp:
            sharding.shard(self.policy, dist.device)
            if not args.ref_on_cpu:
                sharding.shard(self.ref, dist.device)
        self.opt, self.sched = optimizer(self.policy, args)  # the script's: AdamW and its warm-up
        if args.resume:
            self.restore(path, state)
        self.bar = None  # the progress bar, once steps() runs
        self.batch = None  # the last step's samples, shown at the next evaluation (show_samples)
        self.take_over_the_folder()  # --overwrite clears the old run only now, with everything above found good
        self.tracker = tracking.start(args.report_to, args.out, args.out, vars(args)) if dist.is_main else None

    # -------------------------------------------------------------------------
    def steps(self):
        """The steps still to run, with a progress bar."""
        self.bar = tqdm(
            range(self.start_step, self.args.steps),
            initial=self.start_step,
            total=self.args.steps,
            disable=not self.dist.is_main,
            dynamic_ncols=True,
        )
        return self.bar

    def prompts(self, step):
        """This rank's prompts for `step`: walk a seeded shuffle of the training set, one epoch at a time."""
        n, rows = self.args.prompts_per_step, self.train_rows
        picked = []
        for i in range(step * n, (step + 1) * n):
            epoch, j = divmod(i, len(rows))
            picked.append(rows[epoch_order(self.args.seed, epoch, len(rows))[j]])
        self.problems = picked[self.dist.rank :: self.dist.world]  # the first one's group goes to samples.jsonl
        return self.problems

    def generator(self, step, stream=0):
        """A generator seeded by (seed, step, rank, stream): a resumed run draws what an uninterrupted one would
        have drawn. Stream 0 samples the responses; another stream (e.g. a random reward's) is independent of it."""
        seed = self.args.seed * 1_000_003 + step * 1009 + self.dist.rank
        # A CPU generator keeps only the low 32 bits of its seed (stream * 2^40 drew the samples' numbers again)
        return torch.Generator(self.dist.device).manual_seed(seed + stream * 2**31)

    def logprobs(self, model, roll, entropy=False):
        """Per-token log-probs [N, R] of the samples under `model` (and its entropies), micro-batched."""
        on_cpu = model is self.ref and self.args.ref_on_cpu
        if on_cpu:
            model.to(self.dist.device)
        logp, ent = rollout_logprobs(model, roll, self.args.micro_batch, entropy)
        if on_cpu:
            model.to("cpu")
        return (logp, ent) if entropy else logp

    # -------------------------------------------------------------------------
    def metrics(self, roll, r, R, ref_logp, logp, entropy, answers, loss, grad_norm, t0):
        """Every diagnostic of a step, over all ranks (`step_metrics`); lr: the one this step's update used. A
        non-finite loss stops the run here, before anything is saved."""
        lr = self.sched.get_last_lr()[0]
        m = step_metrics(self.dist, self.args.group_size, lr, roll, r, R, ref_logp, logp, entropy, answers, loss, grad_norm, t0)
        self._stop_unless(math.isfinite(m["loss"]), "the loss is not finite: the run diverged (a lower --lr may help)")
        self.batch = (roll, answers, r, R)  # its first group goes to samples.jsonl at the next evaluation
        return m

    def log(self, step, metrics):
        """One row of log.jsonl, `step` = the updates done so far (0: the base model)."""
        if self.dist.is_main:
            self.folder.log({"step": step, **metrics})
            if self.tracker is not None:  # --report-to: the same row, live
                self.tracker.log(step, metrics)
            show = ("reward", "accuracy", "length", "logp_ref", "eval_accuracy")
            if self.bar is not None:
                self.bar.set_postfix({k: f"{metrics[k]:.3g}" for k in show if k in metrics})

    def evaluate(self, step):
        """Held-out accuracy and length of the model after `step` updates: 1 sample per problem at the training
        temperature (as the paper), seeded by the step."""
        d = self.dist
        gen = torch.Generator(d.device).manual_seed(self.args.seed + 7919 * step + d.rank)
        rows = self.eval_rows[d.rank :: d.world]
        with sharding.full_weights(self.policy):
            roll, texts = rollout.sample(
                self.policy, self.tokenizer, [x["prompt_ids"] for x in rows], 1, generator=gen, **self.sampling
            )
        why = "the policy's logits are not finite: the run diverged (a lower --lr may help)"
        self._stop_unless(torch.isfinite(roll.logprobs).all(), why)  # a NaN or +inf logit: the sampled token's log-prob is NaN
        r, answers = self.eval_grader.grade(texts, [x["answer"] for x in rows], self.policy.device)
        self.show_samples(step, samples.rows(step, "eval", self.tokenizer, roll, rows[: samples.SHOWN], answers, r))
        n = d.sum(len(r)).item()
        return {"eval_accuracy": d.sum(r.sum()).item() / n, "eval_length": d.sum(roll.lengths.sum()).item() / n}

    def show_samples(self, step, shown):
        """A few held-out responses and the last step's group, to samples.jsonl and --report-to (rank 0's)."""
        if not self.dist.is_main:
            return
        if self.batch is not None:  # the step just taken (a run's or a --resume's first evaluation has none)
            roll, answers, r, R = self.batch
            group = [self.problems[0]] * self.args.group_size
            shown += samples.rows(step, "train", self.tokenizer, roll, group, answers, r, R)
            self.batch = None
        for row in shown:
            self.folder.log(row, self.folder.samples_path)
        if self.tracker is not None:
            self.tracker.samples(step, shown)

    # -------------------------------------------------------------------------
    # safekeeping: what keeps a run's work safe, skippable on a first read

    def skip_step(self, grad_norm):
        """True when the step must be skipped: a non-finite gradient norm (warned; three in a row stop the run)."""
        if math.isfinite(grad_norm):
            self.bad_steps = 0
            return False
        self.bad_steps += 1
        warnings.warn(f"non-finite gradient (norm {grad_norm}): step skipped ({self.bad_steps} in a row)")
        if self.bad_steps >= MAX_BAD_STEPS:
            raise SystemExit(f"{MAX_BAD_STEPS} non-finite steps in a row: stopping (checkpoints already written are intact)")
        self.opt.zero_grad(set_to_none=True)
        return True

    def check_parameters(self, logits=False):
        """After an update: every parameter finite, or stop before anything is saved. logits=True, before a save:
        the probe prompt's logits too (finite weights can be large enough for the logits to overflow)."""
        if logits:
            with sharding.full_weights(self.policy):  # --fsdp: gathered for the probe, and every unit resharded after
                ok = checkpoint.finite(self.policy, self.probe)
            self._stop_unless(ok, "the model's weights or logits are not finite")
            return
        finite_weights = torch.stack([torch.isfinite(sharding.local(p)).all() for p in self.policy.parameters()]).all()
        self._stop_unless(finite_weights, "the update left non-finite parameters")

    def _stop_unless(self, ok, why):
        """Stop every rank unless `ok` holds on all of them (each checks what it holds: its shards with --fsdp)."""
        if self.dist.sum(~torch.as_tensor(ok)).item():
            raise SystemExit(f"error: {why}: stopping without saving (the last checkpoint is intact; --resume continues from it)")

    def take_over_the_folder(self):
        """Once setup has succeeded: the guards' state, the signal handlers, and the run folder's config and log."""
        self.bad_steps, self.stop_signal = 0, None
        self.saved_step = self.start_step  # never write the same checkpoint twice
        stopping.handle(self._on_signal)
        if self.dist.is_main:
            if self.args.overwrite:  # only now, with the data, the model and every option found good
                self.folder.clear()
            if self.args.resume:  # first: a log it refuses leaves config.json as it was too
                self.folder.keep_log_until(self.start_step)
            self.folder.save_config(self.args)  # the values in effect, --resume's included

    def _on_signal(self, signum, frame):
        """The first Ctrl-C / SIGTERM / SIGHUP: finish the step, save, exit. The second: exit now (the last checkpoint
        stays)."""
        stopping.after_hangup(signum)  # a closed terminal: the output that went there goes nowhere now
        if self.stop_signal is not None:
            stopping.ignore()
            raise SystemExit(f"stopped by a second signal {signum}: --resume continues from the last checkpoint")
        self.stop_signal = signum
        if self.dist.is_main:
            print(f"\nsignal {signum}: saving after this step (again to stop at once)", flush=True)

    def stop_if_signalled(self, step):
        # Every rank stops if any was signalled: a rank that stopped alone would leave the others waiting in their
        # next collective (and with --fsdp, saving is one).
        if self.dist.sum(float(self.stop_signal is not None)).item():
            self.save(step)
            stopping.ignore()  # saved: a signal now would only turn the exit into a traceback
            why = f"signal {self.stop_signal}" if self.stop_signal is not None else "a signal to another rank"
            raise SystemExit(f"stopped by {why} after step {step}; --resume continues")

    def restore(self, path, state):
        """--resume: the optimizer, the schedule and the random state as the checkpoint at `path` saved them."""
        sharding.load_optimizer_state(self.policy, self.opt, state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        if self.dist.is_main:
            print(f"resumed from {path} at step {state['step']}")
            saved_world = state.get("world", self.dist.world)  # absent from checkpoints written before it was saved
            if saved_world != self.dist.world:
                print(
                    f"note: saved by {saved_world} processes, continued on {self.dist.world}: the same prompts, global batch "
                    f"and optimizer state, but each rank seeds its own samples, so from step {state['step'] + 1} on "
                    f"they differ from what {saved_world} processes would have drawn"
                )

    def save(self, step):
        """A checkpoint of the model after `step` updates (rank 0 writes it); never right after a skipped step."""
        if step == self.saved_step or self.bad_steps:
            return
        self.check_parameters(logits=True)  # only a model that can still sample is saved
        self.saved_step = step
        # --fsdp: every rank takes part in gathering the full weights and optimizer state to rank 0
        weights = sharding.full_weights_state(self.policy)  # None: not sharded, the model's own is full
        optimizer = sharding.full_optimizer_state(self.policy, self.opt)
        if self.dist.is_main:
            state = {
                "optimizer": optimizer,
                "scheduler": self.sched.state_dict(),
                "config": vars(self.args),
                "world": self.dist.world,
            }
            checkpoint.save(self.args.out, step, self.policy, self.tokenizer, state, self.args.keep, weights)

    def save_final(self):
        """The last checkpoint, and the final model in out/final (what evaluate.py loads), both verified on load."""
        self.save(self.args.steps)
        self.check_parameters(logits=True)
        weights = sharding.full_weights_state(self.policy)
        if self.dist.is_main:
            final = os.path.join(self.args.out, "final")
            checkpoint.write_folder(final, self.policy, self.tokenizer, weights=weights, step=self.args.steps)
        if self.tracker is not None:
            self.tracker.close()
        self.dist.close()
        stopping.ignore()  # the run is complete: a signal now must not make it look failed
