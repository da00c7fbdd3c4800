"""
Training curves from one or several runs' log.jsonl, one colour per run (matplotlib, optional).

    python plot.py runs/sharpen runs/task --out curves.png
    python plot.py sharpen=runs/sharpen task=runs/task --out curves.png
"""

import argparse
import json
import os

PANELS = [  # (log key, title)
    ("eval_accuracy", "held-out accuracy (1 sample, T=1)"),
    ("accuracy", "accuracy of the training samples"),
    ("length", "response length (tokens)"),
    ("logp_ref", "log pi_ref(y|x) of the samples"),
    ("entropy", "policy entropy (nats/token)"),
    ("kl", "KL(pi_theta || pi_ref) per sequence"),
]


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_runs(logs, out):
    """logs: {run name: path to log.jsonl}. Writes one PNG with a panel per metric."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot written")
        return None
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for name, path in logs.items():
        rows = read_log(path)
        for ax, (key, title) in zip(axes.flat, PANELS):
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                ax.plot(*zip(*points), label=name, marker="o" if key.startswith("eval") else None, markersize=3)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("RL step")
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (with log.jsonl), optionally NAME=FOLDER")
    p.add_argument("--out", default="curves.png")
    args = p.parse_args()
    logs = {}
    for item in args.runs:
        name, path = item.split("=", 1) if "=" in item else (os.path.basename(os.path.normpath(item)), item)
        log = os.path.join(path, "log.jsonl") if os.path.isdir(path) else path
        if not os.path.exists(log):
            raise SystemExit(f"no log at {log}: expected a run folder holding log.jsonl")
        logs[name] = log
    if plot_runs(logs, args.out):
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
