"""
Tables and figures of three multi-run jobs, from the JSON their evaluations wrote.

    python -m family.paper_figures grid runs/paper-toy-0/grid.json      # run_paper.sh: the paper's alpha x b grid
    python -m family.paper_figures roads runs/roads-toy-*/roads.json    # run_roads.sh: four roads to pi_ref^alpha, over seeds
    python -m family.paper_figures family runs/family-toy-{0,1,2}/family.json   # run_family.sh, over seeds

grid: one row per alpha, pass@1 and length for b = 0 (tempered), 100 and 10^4 (tilted); sharpening, the task
reward and the base model beside them. The figure lays it out like the paper's: pass@1 and length against alpha
(log x), one line per b, the three single arms as horizontal reference lines. Arms are named a<alpha>-b<b>.

roads: each road's mean (min-max) over the files (seeds) of pass@1, pass@k at the largest k, length, tokens and
seconds sampled per answer; the figure: pass@1 against tokens sampled per answer (log x), one point per run.

family: each method's mean (min-max) over the files (seeds) of its metrics. Power sampling draws 32 samples per
problem, the others 256: its large-k column is pass@32. train_tokens: tokens sampled in training, in thousands.
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = p.add_subparsers(dest="job", required=True)
    jobs.add_parser("grid", help="run_paper.sh's grid.json").add_argument("file")
    r = jobs.add_parser("roads", help="run_roads.sh's roads.json, one per seed")
    r.add_argument("files", nargs="+")
    r.add_argument("--out", help="the accuracy-against-cost figure (PNG)")
    jobs.add_parser("family", help="run_family.sh's family.json, one per seed").add_argument("files", nargs="+")
    args = p.parse_args()
    if args.job == "grid":
        grid(args.file)
    elif args.job == "roads":
        roads(args.files, args.out)
    else:
        family(args.files)


if __name__ == "__main__":
    main()
