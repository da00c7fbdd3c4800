"""The README's family table over seeds: mean and range of each method's metrics across run_family.sh runs.

    python bench/family_seeds.py runs/family-toy-0/family.json runs/family-toy-1/family.json runs/family-toy-2/family.json

Each file is the family.json that `bash run_family.sh <variant> <seed>` writes (one entry per method). Power
sampling draws 32 samples per problem, the others 256: its large-k column is pass@32. train_tokens: tokens
sampled in training, in thousands.
"""

import argparse
import json

import numpy as np

METRICS = ("pass@1", "pass@16", "large k", "maj@16", "length", "entropy", "tokens_per_answer", "train_tokens")


def large_k(result):
    return result[f"pass@{result['n']}"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    runs = [json.load(open(path)) for path in args.files]
    print(f"{len(runs)} runs: mean (min-max)")
    print("| method | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for method in runs[0]:
        cells = []
        for metric in METRICS:
            values = [large_k(run[method]) if metric == "large k" else run[method].get(metric) for run in runs]
            if metric == "train_tokens" and None not in values:
                values = [v / 1000 for v in values]  # thousands
            if any(v is None or v != v for v in values):  # not measured (nan: power sampling's entropy)
                cells.append("-")
                continue
            digits = 0 if metric == "train_tokens" else 1 if metric in ("length", "tokens_per_answer") else 3
            mean, low, high = np.mean(values), min(values), max(values)
            cells.append(f"{mean:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})")
        n = runs[0][method]["n"]
        print(f"| {method}{'' if n == 256 else f' (n = {n})'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
