"""
Training curves from one or several runs' log.jsonl, one colour per run (matplotlib, optional); and the
pass@k-vs-k curves of several evaluated models on one log-x figure (evaluate.py --compare draws it).

    python plot.py runs/sharpen runs/task --out curves.png
    python plot.py sharpen=runs/sharpen task=runs/task --out curves.png
"""

import argparse
import math
import os

from plumbing.run_folder import check_figure, read_log, replaced_atomically, writing

PANELS = [  # (log key, title)
    ("eval_accuracy", "held-out accuracy (1 sample, T=1)"),
    ("accuracy", "accuracy of the training samples"),
    ("length", "response length (tokens)"),
    ("logp_ref", "log pi_ref(y|x) of the samples"),
    ("entropy", "policy entropy (nats/token)"),
    ("kl", "KL(pi_theta || pi_ref) per sequence"),
]


def plot_runs(logs, out):
    """logs: {run name: the rows of its log.jsonl (read_log)}. Writes one PNG with a panel per metric."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot written")
        return None
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for name, rows in logs.items():
        for ax, (key, title) in zip(axes.flat, PANELS):
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                ax.plot(*zip(*points), label=name, marker="o" if key.startswith("eval") else None, markersize=3)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("RL step")
    axes.flat[0].legend()
    return save_figure(fig, out)


def pass_at_k_curve(result):
    """[(k, pass@k)] for k = 1, 2, 4, ..., n from one evaluate.summarize result."""
    ks = sorted(int(key[5:]) for key in result if key.startswith("pass@") and key[5:].isdigit())
    return [(k, result[f"pass@{k}"]) for k in ks]


def crossings(curve_a, curve_b, tie=1e-3):
    """Where curve b overtakes curve a or falls behind it: [(k, pass@k)] at each sign change of b - a between
    neighbouring k (differences within `tie` count as equal, not as a crossing), the point found by linear
    interpolation in log2 k between the two powers of two that bracket it."""
    out = []
    for (k0, a0), (k1, a1), (_, b0), (_, b1) in zip(curve_a, curve_a[1:], curve_b, curve_b[1:]):
        d0, d1 = b0 - a0, b1 - a1
        if d0 * d1 < 0 and min(abs(d0), abs(d1)) > tie:
            f = d0 / (d0 - d1)
            out.append((2 ** (math.log2(k0) + f * (math.log2(k1) - math.log2(k0))), a0 + f * (a1 - a0)))
    return out


def plot_pass_at_k(results, out):
    """results: {name: evaluate.summarize result}. One log-x figure of pass@k vs k; x marks where a model's curve
    crosses the first model's (evaluate.py prints every pair's crossings)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot written")
        return None
    curves = {name: pass_at_k_curve(res) for name, res in results.items()}
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, curve in curves.items():
        ax.plot(*zip(*curve), marker="o", markersize=3, label=name)
    first, *others = curves  # crossings with the first model (e.g. the base): where it catches up or falls behind
    for name in others:
        for k, y in crossings(curves[first], curves[name]):
            ax.plot(k, y, "kx", markersize=8)
            ax.annotate(name, (k, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    ax.set_title(f"pass@k vs k (x: where a curve crosses {first}'s)", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def save_figure(fig, out):
    """Write the figure as a PNG at `out`, whole or not at all: a full disk or no memory is one line, and no
    temporary file stays."""
    import matplotlib.pyplot as plt

    try:
        with writing(out):
            fig.tight_layout()
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            with replaced_atomically(out, "wb") as f:
                fig.savefig(f, dpi=110, format="png")
    except MemoryError:
        raise SystemExit(f"error: cannot draw the figure {out} (out of memory): free some memory, then run again") from None
    finally:
        plt.close(fig)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (with log.jsonl), optionally NAME=FOLDER")
    p.add_argument("--out", default="curves.png")
    args = p.parse_args()
    check_figure(args.out)
    logs = {}
    for item in args.runs:
        name, path = item.split("=", 1) if "=" in item else (os.path.basename(os.path.normpath(item)), item)
        log = os.path.join(path, "log.jsonl") if os.path.isdir(path) else path
        if not os.path.isfile(log):
            raise SystemExit(f"error: no log at {log}: expected a run folder holding log.jsonl")
        if name in logs:
            raise SystemExit(f"error: two runs are named {name!r}: name them, NAME=FOLDER")
        logs[name] = read_log(log)  # a torn last line (a run still writing it) is dropped with a warning
    if plot_runs(logs, args.out):
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
