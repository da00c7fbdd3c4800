"""
Tables and figures of the multi-run jobs, from the JSON their evaluations wrote (and, for collapse, their logs).

    python -m family.paper_figures grid runs/paper-toy-0/grid.json      # run_paper.sh: the paper's alpha x b grid
    python -m family.paper_figures roads runs/roads-toy-*/roads.json    # run_roads.sh: four roads to pi_ref^alpha, over seeds
    python -m family.paper_figures family runs/family-toy-{0,1,2}/family.json   # run_family.sh, over seeds
    python -m family.paper_figures collapse runs/family-toy-[0-9] runs/family-toy-aligned-[0-9] --out collapse.png
    python -m family.paper_figures predictor qwen=runs/qwen-math500.json toy-0=base.json,runs/family-toy-0/trained.json

grid: one row per alpha, pass@1 and length for b = 0 (tempered), 100 and 10^4 (tilted); sharpening, the task
reward and the base model beside them. The figure lays it out like the paper's: pass@1 and length against alpha
(log x), one line per b, the three single arms as horizontal reference lines. Arms are named a<alpha>-b<b>.

roads: each road's mean (min-max) over the files (seeds) of pass@1, pass@k at the largest k, length, tokens and
seconds sampled per answer; the figure: pass@1 against tokens sampled per answer (log x), one point per run.

family: each method's mean (min-max) over the files (seeds) of its metrics. Power sampling draws 32 samples per
problem, the others 256: its large-k column is pass@32. train_tokens: tokens sampled in training, in thousands.

collapse: run_family.sh's folders (family-<variant>-<seed>), each arm's collapse step from its log.jsonl: the step
at which the held-out accuracy peaks, how far it rose to get there and how far it falls after (`collapse`); per
variant, the peak step of each seed and the rise and fall's mean (min-max). The figure: held-out accuracy against
step, one panel per variant, each arm's mean over seeds (its min-max shaded).

predictor: one row of the README's "will sharpening help?" table per NAME=FILE[,FILE...], evaluate.py --out tables
that hold the base model ("base", evaluated with n > 1: its cov_r_logp and likeliest@n) and what RL made of it
(the arms named by --arms, default sharpen and tempered): what the base model's samples predict beside what
training did. The slope says up or down when its 95% interval excludes 0, flat otherwise; the mode says up or down
as likeliest@n is above or below the base model's pass@1.
"""

import argparse
import json
import os
from collections import defaultdict

import numpy as np

ALPHAS, BS = (0.5, 1, 1.25, 2, 4), (0, 100, 10000)
B_NAMES = {0: "b = 0 (tempered)", 100: "b = 100 (tilted)", 10000: "b = 10^4 (tilted)"}
REFERENCES = ("base", "sharpen", "task")


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no figure written")
        return None
    return plt


def arm(alpha, b):
    return f"a{alpha:g}-b{b}"


def grid(path):
    with open(path) as f:
        results = json.load(f)
    print("| alpha | " + " | ".join(f"pass@1 {B_NAMES[b]} | length" for b in BS) + " |")
    print("|---|" + "---|---|" * len(BS))
    for alpha in ALPHAS:
        cells = [results.get(arm(alpha, b)) for b in BS]
        print(
            f"| {alpha:g} | "
            + " | ".join("- | -" if c is None else f"{c['pass@1']:.3f} | {c['length']:.1f}" for c in cells)
            + " |"
        )
    for name in REFERENCES:
        if name in results:
            print(f"| {name} | pass@1 {results[name]['pass@1']:.3f} | length {results[name]['length']:.1f} |")
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in zip(axes, ("pass@1", "length"), ("pass@1", "response length (tokens)")):
        for b in BS:
            points = [(alpha, results[arm(alpha, b)][key]) for alpha in ALPHAS if arm(alpha, b) in results]
            if points:
                ax.plot(*zip(*points), marker="o", label=B_NAMES[b])
        for name, style in zip(REFERENCES, (":", "--", "-.")):
            if name in results:
                ax.axhline(results[name][key], color="gray", linestyle=style, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ALPHAS, [f"{a:g}" for a in ALPHAS])
        ax.set_xlabel("alpha")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    n = next(iter(results.values()))["n"]
    fig.suptitle(f"{os.path.dirname(path)}: the paper's grid ({n} samples per problem)", fontsize=10)
    fig.tight_layout()
    out = os.path.splitext(path)[0] + "_paper.png"  # next to evaluate.py's grid.png (training curves)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def roads(paths, out):
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    metrics = ("pass@1", "large k", "length", "tokens_per_answer", "seconds_per_answer")
    print(f"{len(runs)} runs: mean (min-max)")
    print("| road | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    points = defaultdict(list)
    for name in runs[0]:
        cells = []
        for metric in metrics:
            values = [run[name][f"pass@{run[name]['n']}"] if metric == "large k" else run[name][metric] for run in runs]
            digits = 1 if metric in ("length", "tokens_per_answer") else 4 if metric == "seconds_per_answer" else 3
            cells.append(f"{np.mean(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})")
        points[name] = [(run[name]["tokens_per_answer"], run[name]["pass@1"]) for run in runs]
        print(f"| {name} (n = {runs[0][name]['n']}) | " + " | ".join(cells) + " |")
    plt = pyplot()
    if plt is None or not out:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, xy in points.items():
        ax.scatter(*zip(*xy), label=name)
    ax.set_xscale("log")
    ax.set_xlabel("tokens sampled per answer")
    ax.set_ylabel("pass@1")
    ax.set_title("accuracy against cost (one point per run)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


FAMILY_METRICS = ("pass@1", "pass@16", "large k", "maj@16", "length", "entropy", "tokens_per_answer", "train_tokens")


def family(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    print(f"{len(runs)} runs: mean (min-max)")
    print("| method | " + " | ".join(FAMILY_METRICS) + " |")
    print("|---|" + "---|" * len(FAMILY_METRICS))
    for method in runs[0]:
        cells = []
        for metric in FAMILY_METRICS:
            values = [run[method][f"pass@{run[method]['n']}"] if metric == "large k" else run[method].get(metric) for run in runs]
            if metric == "train_tokens" and None not in values:
                values = [v / 1000 for v in values]  # thousands
            if any(v is None or v != v for v in values):  # not measured (nan: power sampling's entropy)
                cells.append("-")
                continue
            digits = 0 if metric == "train_tokens" else 1 if metric in ("length", "tokens_per_answer") else 3
            cells.append(f"{np.mean(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})")
        n = runs[0][method]["n"]
        print(f"| {method}{'' if n == 256 else f' (n = {n})'} | " + " | ".join(cells) + " |")


FAMILY_ARMS = ("task", "random", "sharpen", "tempered", "entropy", "self-certainty", "majority")  # run_family.sh's


def collapse(log_path):
    """
    One run's collapse step, from its log.jsonl's held-out accuracy a_s (eval_accuracy, every --eval-every steps;
    s = 0 is the base model, 1 sample per problem at the training temperature):
        peak step s* = argmax_s a_s (the first, on ties)     rise = a_s* - a_0     fall = a_s* - a_last
    A curve that only falls has s* = 0 and rise 0; one that only rises has fall 0.
    """
    try:
        with open(log_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        curve = [(row["step"], row["eval_accuracy"]) for row in rows if "eval_accuracy" in row]
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise SystemExit(f"error: cannot read {log_path} ({type(err).__name__}): is it a training run's log.jsonl?") from None
    if not curve:
        raise SystemExit(f"error: {log_path} has no eval_accuracy rows: the run evaluated nothing (--eval-every)")
    step, peak = max(curve, key=lambda point: point[1])  # max keeps the first of equal maxima
    return dict(peak_step=step, rise=peak - curve[0][1], fall=peak - curve[-1][1], curve=curve)


def collapses(folders, out):
    """The collapse table of run_family.sh's folders, grouped by variant, and (with `out`) its figure."""
    by_variant = defaultdict(list)  # family-<variant>-<seed> -> variant: [folder, ...]
    for folder in folders:
        by_variant[os.path.basename(os.path.normpath(folder)).removeprefix("family-").rsplit("-", 1)[0]].append(folder)
    arms = [a for a in FAMILY_ARMS if any(os.path.exists(os.path.join(f, a, "log.jsonl")) for f in folders)]
    if not arms:
        raise SystemExit("error: no <arm>/log.jsonl in these folders: give run_family.sh's runs/family-<variant>-<seed>")
    runs = {
        (variant, a): [
            collapse(os.path.join(f, a, "log.jsonl")) for f in group if os.path.exists(os.path.join(f, a, "log.jsonl"))
        ]
        for variant, group in by_variant.items()
        for a in arms
    }
    spread = lambda values: f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"
    print("held-out accuracy over training: peak step of each seed; rise = peak - step 0, fall = peak - last: mean (min-max)")
    print("| method | " + " | ".join(f"{v}: peak step | rise | fall" for v in by_variant) + " |")
    print("|---|" + "---|---|---|" * len(by_variant))
    for a in arms:
        cells = []
        for v in by_variant:
            c = runs[(v, a)]
            steps = ", ".join(str(x["peak_step"]) for x in c)
            cells.append(f"{steps} | {spread([x['rise'] for x in c])} | {spread([x['fall'] for x in c])}" if c else "- | - | -")
        print(f"| {a} | " + " | ".join(cells) + " |")
    plt = pyplot()
    if plt is None or not out:
        return
    fig, axes = plt.subplots(1, len(by_variant), figsize=(5.5 * len(by_variant), 4.2), squeeze=False, sharey=True)
    for ax, v in zip(axes[0], by_variant):
        for a in arms:
            curves = [x["curve"] for x in runs[(v, a)]]
            if not curves:
                continue
            width = min(len(c) for c in curves)  # the steps every seed reached (a run still going is shorter)
            steps, acc = [s for s, _ in curves[0][:width]], np.array([[y for _, y in c[:width]] for c in curves])
            color = f"C{FAMILY_ARMS.index(a)}"  # an arm keeps its colour in every panel
            ax.plot(steps, acc.mean(0), marker="o", markersize=3, color=color, label=a)
            ax.fill_between(steps, acc.min(0), acc.max(0), color=color, alpha=0.15)
        seeds = len(by_variant[v])
        ax.set_title(f"{v} ({seeds} seed{'s' * (seeds > 1)}: mean, min-max shaded)", fontsize=10)
        ax.set_xlabel("training step")
    axes[0][0].set_ylabel("held-out accuracy (1 sample per problem)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def predictor(specs, arms):
    print("| model | n | base pass@1 | cov_r_logp (95%) | slope says | likeliest@n | mode says | " + " | ".join(arms) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(arms))
    for spec in specs:
        name, _, paths = spec.partition("=")
        if not paths:
            raise SystemExit(f"error: {spec!r}: give NAME=FILE[,FILE...] (evaluate.py --out tables)")
        tables = []
        for path in paths.split(","):
            try:
                with open(path) as f:
                    tables.append(json.load(f))
            except (OSError, ValueError) as err:
                raise SystemExit(f"error: cannot read {path} ({type(err).__name__}): an evaluate.py --out table?") from None
        base = next((t["base"] for t in tables if "cov_r_logp" in t.get("base", {})), None)
        if base is None:
            raise SystemExit(
                f"error: {name}: no 'base' with cov_r_logp in {paths}: evaluate it with --n > 1 (--compare base=...)"
            )
        n, pass1 = base["n"], base["pass@1"]
        low, high, top = base["cov_r_logp_low"], base["cov_r_logp_high"], base[f"likeliest@{n}"]
        slope = "up" if low > 0 else "down" if high < 0 else "flat"
        trained = [next((t[arm]["pass@1"] for t in tables if arm in t), None) for arm in arms]
        cells = ["-" if a is None else f"{a:.3f} ({a - pass1:+.3f})" for a in trained]
        print(
            f"| {name} | {n} | {pass1:.3f} | {base['cov_r_logp']:+.3f} ({low:+.3f}, {high:+.3f}) | {slope} | {top:.3f} | "
            f"{'up' if top > pass1 else 'down'} | " + " | ".join(cells) + " |"
        )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = p.add_subparsers(dest="job", required=True)
    jobs.add_parser("grid", help="run_paper.sh's grid.json").add_argument("file")
    r = jobs.add_parser("roads", help="run_roads.sh's roads.json, one per seed")
    r.add_argument("files", nargs="+")
    r.add_argument("--out", help="the accuracy-against-cost figure (PNG)")
    jobs.add_parser("family", help="run_family.sh's family.json, one per seed").add_argument("files", nargs="+")
    c = jobs.add_parser("collapse", help="run_family.sh's folders, runs/family-<variant>-<seed>")
    c.add_argument("folders", nargs="+")
    c.add_argument("--out", help="the accuracy-against-step figure (PNG)")
    q = jobs.add_parser("predictor", help="evaluate.py --out tables: the base model's predictors beside RL's outcome")
    q.add_argument("rows", nargs="+", metavar="NAME=FILE[,FILE...]")
    q.add_argument("--arms", nargs="+", default=["sharpen", "tempered"], help="the trained arms' names in the tables")
    args = p.parse_args()
    if args.job == "predictor":
        predictor(args.rows, args.arms)
    elif args.job == "grid":
        grid(args.file)
    elif args.job == "roads":
        roads(args.files, args.out)
    elif args.job == "family":
        family(args.files)
    else:
        collapses(args.folders, args.out)


if __name__ == "__main__":
    main()
