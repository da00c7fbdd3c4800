"""
Command-line options shared by the trainers and evaluate.py: each with its range, checked when parsed (a bad
value stops with one line), and its default shown by --help, for the toy and for real models; and what the
sampling options mean to rollout.sample (sampling_settings: the one place that picks the sampler).

Imported first by every script: a Ctrl-C while the heavy imports (torch, transformers) load exits quietly.
"""

import argparse
import math
import os
import signal
import sys

from tasks.toytask import is_toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_main = os.path.dirname(os.path.abspath(getattr(sys.modules["__main__"], "__file__", "")))
if ROOT in (_main, os.path.dirname(_main)):  # one of our scripts: python train_task.py, python -m family.theory_family
    # Until the script installs its own handler: exit at once, raising nothing. An exception raised here can land
    # inside torch's native import code, which aborts the process (SIGABRT) or swallows it (measured: 1 in 24).
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))

# The settings that depend on the task. Real models: the paper's (arXiv 2604.16259, appendix). The toy: what
# trains its 0.42M-parameter model on a CPU in about a minute. arith: the real SmolLM2-135M on a CPU (run_real.sh;
# the lr searched, the README says how). The one home of the token budgets.
DEFAULTS = {
    "toy": dict(
        steps=60,
        prompts_per_step=16,
        lr=3e-4,
        warmup=5,
        max_new_tokens=48,
        micro_batch=32,
        eval_every=10,
        eval_problems=256,
        save_every=20,
    ),
    "arith": dict(  # SmolLM2-135M on a laptop CPU (run_real.sh): few-shot prompts of 115 tokens, answers of ~20
        steps=30,
        prompts_per_step=4,
        lr=1e-5,
        warmup=1,
        max_new_tokens=48,
        micro_batch=32,
        eval_every=10,
        eval_problems=43,
        save_every=10,
    ),
    "real": dict(
        steps=500,
        prompts_per_step=32,
        lr=1e-6,
        warmup=50,
        max_new_tokens=2048,
        micro_batch=4,
        eval_every=20,
        eval_problems=500,
        save_every=20,
    ),
}


def task_defaults(dataset):
    return DEFAULTS["toy" if is_toy(dataset) else dataset if dataset in DEFAULTS else "real"]


class Parser(argparse.ArgumentParser):
    """argparse, with an error as one line (not the whole usage) and every default in --help."""

    def __init__(self, description):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def add(self, *names, task=False, **kwargs):
        """add_argument; task=True: the default depends on the task (DEFAULTS) and --help says both."""
        if task:
            key = names[0].lstrip("-").replace("-", "_")
            kwargs["help"] += (
                f" (default: {DEFAULTS['toy'][key]} on the toy, {DEFAULTS['arith'][key]} on arith, {DEFAULTS['real'][key]} otherwise)"
            )
        elif "default" in kwargs and kwargs.get("action") != "store_true":
            kwargs["help"] = kwargs.get("help", "") + " (default: %(default)s)"
        return self.add_argument(*names, **kwargs)

    def parse_args(self, args=None, namespace=None):
        self.argv = sys.argv[1:] if args is None else list(args)
        return super().parse_args(args, namespace)

    def refuses(self, dest, value):
        """Why this script would not accept `value` for the option `dest` (None if it would): its choices and its
        range, as when parsed. For values that come from elsewhere than the command line (a resumed run's config)."""
        action = next((a for a in self._actions if a.dest == dest), None)
        if action is None or value is None:
            return None
        if action.choices is not None and value not in action.choices:
            return f"{value!r} is not one of this script's choices ({', '.join(map(str, action.choices))})"
        if action.nargs == 0:  # a flag
            return None if isinstance(value, bool) else f"{value!r} is not true or false"
        if action.type in (None, str):
            return None if isinstance(value, str) else f"{value!r} is not text"
        if isinstance(value, bool) or not isinstance(value, (int, float)):  # "lr": "0.0003", typed by hand
            return f"{value!r} is not a number"
        try:
            action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError) as err:
            return str(err)
        return None

    def given(self):
        """The options written on the command line of the last parse_args (their dest names), whatever their values."""
        saved = [(action, action.default) for action in self._actions]
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        try:
            return set(vars(super().parse_args(self.argv)))
        finally:
            for action, default in saved:
                action.default = default


def fill_task_defaults(args):
    for key, value in task_defaults(args.dataset).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


# -----------------------------------------------------------------------------
# ranges: each is an argparse `type` that names the range in its error


def _ranged(kind, test, says):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {says}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"{text} is not {says}")
        return value

    parse.__name__ = says  # what argparse names in "invalid <type> value"
    return parse


COUNT = _ranged(int, lambda v: v >= 1, "an integer >= 1")
NATURAL = _ranged(int, lambda v: v >= 0, "an integer >= 0")
SEED = _ranged(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2^32)")  # numpy's seeds end at 2^32 - 1
GROUP = _ranged(int, lambda v: v >= 2, "an integer >= 2 (a baseline needs another sample of the prompt)")
POSITIVE = _ranged(float, lambda v: v > 0, "a finite number > 0")
NONNEGATIVE = _ranged(float, lambda v: v >= 0, "a finite number >= 0")
FINITE = _ranged(float, lambda v: True, "a finite number")
TOP_P = _ranged(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
CLIP = _ranged(float, lambda v: 0 < v < 1, "a number in (0, 1)")
POWER_OF_TWO = _ranged(int, lambda v: v >= 1 and v & (v - 1) == 0, "a power of two (1, 2, 4, ...)")


def sampling_options(p):
    """What both training and evaluation sample with (sampling_settings reads them)."""
    p.add("--temperature", type=NONNEGATIVE, default=1.0, help="0 is greedy")
    p.add("--top-p", type=TOP_P, default=1.0)
    p.add("--top-k", type=NATURAL, default=0, help="0: off")
    p.add("--max-new-tokens", type=COUNT, task=True, help="response budget in tokens")
    p.add(
        "--plain-rollout",
        action="store_true",
        help="sample with rollout.py, the plain reference sampler, instead of its faster twin fast_rollout.py (same samples)",
    )


def sampling_settings(args, batch_size):
    """rollout.sample's settings from the sampling options, for training and evaluation alike: the one place that
    picks the sampler, rollout.py's plain loop (--plain-rollout) or its tested-equal fast twin (the default).
    batch_size: the sequences one call samples at once (the trainers' --rollout-batch, evaluate.py's --batch-size)."""
    import rollout  # here, not above: this module is imported before torch (see its docstring)
    from plumbing import fast_rollout

    return dict(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        batch_size=batch_size,
        sampler=rollout.rollout if args.plain_rollout else fast_rollout.rollout,
    )
