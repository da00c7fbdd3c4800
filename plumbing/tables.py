"""
The files of evaluate.py, behind its one-line calls: --compare's models (a run folder's final model, its log and
the cost of the steps that made that model), the table at --out and the figures next to it (written only where
no file is, or over what evaluate.py wrote, each checked before anything is evaluated; strict JSON, written
whole), and --merge's tables (checked: tables of the same problems).
"""

import json
import os
import tempfile

from plumbing import checkpoint
from plumbing.loading import resolve_model_path
from plumbing.run_folder import advice, check_figure, write_json_atomically, writing


def model_path_of(run):
    """A training run folder evaluates its final model (checked against its checksums); anything else is a
    model folder (checked too, if this repo wrote it), a GGUF file or short name (loading.py), or a hub id."""
    final = os.path.join(run, "final")
    if os.path.isdir(final):
        return checkpoint.verified(final)
    if os.path.exists(os.path.join(run, "log.jsonl")):
        raise SystemExit(f"error: {run} is a run without a final model yet: evaluate one of its step_*/ checkpoints")
    return checkpoint.verified(resolve_model_path(run))


def is_run(path):
    return os.path.isfile(os.path.join(path, "log.jsonl"))


def compare_runs(items):
    """--compare's NAME=PATH items (a bare PATH is its own name) as {name: path}; each name once, none empty."""
    runs = {}
    for item in items or []:
        name, path = item.split("=", 1) if "=" in item else (item, item)
        if not name or not path:
            raise SystemExit(f"error: --compare {item!r}: write NAME=PATH (e.g. base=toy_models/toy)")
        if name in runs:
            raise SystemExit(
                f"error: --compare: the name {name!r} is given twice ({runs[name]}, {path}): give each model its own"
            )
        runs[name] = path
    return runs


def training_cost(run, rows):
    """What training a run cost, from its folder and its log's rows: tokens sampled (the sum over steps of the mean
    length times the samples per step) and the summed step time in seconds, over the steps that made its final
    model (a run that goes on, resumed with more --steps, logs more). Empty for a model that is not a run."""
    config = os.path.join(run, "config.json")
    if rows is None or not os.path.exists(config):
        return {}
    made_by = checkpoint.step_of(os.path.join(run, "final"))
    rows = [row for row in rows if made_by is None or row.get("step", 0) <= made_by]
    try:
        with open(config) as f:
            cfg = json.load(f)
        batch = cfg["prompts_per_step"] * cfg["group_size"]
        return {
            "train_tokens": float(sum(row["length"] * batch for row in rows if row.get("length") is not None)),
            "train_time": float(sum(row["step_time"] for row in rows if row.get("step_time") is not None)),
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:  # the cost is a side note: say why it is missing
        print(f"warning: {run}: no training cost ({type(err).__name__} reading its config.json and log.jsonl)")
        return {}


def check_out(out, figures):
    """--out never replaces a file that this script did not write: what is there must be a table that an earlier
    --out wrote, and each figure a figure (check_figure); and its folder must take a file. Checked before
    anything is evaluated; nothing is made or changed here."""
    if os.path.isdir(out):
        raise SystemExit(f"error: --out {out} is a folder: give a file name, e.g. {os.path.join(out, 'eval.json')}")
    if os.path.exists(out) and not is_table(out):
        raise SystemExit(
            f"error: --out {out} exists and is not a table that evaluate.py --out wrote: it is left as it is; "
            f"choose another --out"
        )
    for figure in figures:
        if figure:
            check_figure(figure)
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):  # the folders --out needs are made only when the table is written
        parent = os.path.dirname(parent)
    try:
        fd, probe = tempfile.mkstemp(dir=parent, suffix=".tmp")
    except OSError as err:
        raise SystemExit(f"error: cannot write {out} ({err.strerror}): {advice(err)}") from None
    os.close(fd)
    os.remove(probe)


def figures_of(out, logs, n):
    """The figures written next to --out: the training curves (when there are runs' logs) and pass@k vs k (n > 1);
    None for one not written."""
    stem = os.path.splitext(out)[0]
    return (stem + ".png" if logs else None), (stem + "_pass_at_k.png" if n > 1 else None)


def is_table(path):
    """Whether `path` holds a table that evaluate.py --out wrote: {model: {metric: value}}, each with pass@1."""
    try:
        with open(path) as f:
            table = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(table, dict) and bool(table) and all(isinstance(m, dict) and "pass@1" in m for m in table.values())


def write_results(results, out):
    """The metrics so far, as strict JSON (a metric not tracked, NaN, is null): written whole or not at all (after
    each model, so a later failure keeps them)."""
    with writing(out):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        write_json_atomically(out, results)


def read_tables(paths):
    """The tables of earlier --out runs, {model: metrics}, checked: one line for a file that is not one, or for
    a model name that two files hold."""
    real = [os.path.realpath(path) for path in paths]
    for i, path in enumerate(paths):
        if real[i] in real[:i]:
            raise SystemExit(f"error: --merge: {path} is given twice: give each table once")
    results, source = {}, {}
    for path in paths:
        try:
            with open(path) as f:
                table = json.load(f)
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: --merge: cannot read {path} ({getattr(err, 'strerror', None) or err})") from None
        if not is_table(path):
            raise SystemExit(f"error: --merge: {path} is not a table written by evaluate.py --out ({{model: {{metric: value}}}})")
        for name, metrics in table.items():
            if name in source:
                raise SystemExit(f"error: --merge: {name!r} is in both {source[name]} and {path}: rename it in one of them")
            results[name], source[name] = metrics, path
    check_same_problems(results, source)
    return results


def check_same_problems(results, source):
    """The models of merged tables were evaluated on the same problems (n may differ: it is printed), or one line;
    a table written before tables recorded their problems is noted, not checked."""
    unknown = sorted({source[name] for name, metrics in results.items() if "problems_checksum" not in metrics})
    if unknown:
        print(f"note: --merge: {', '.join(unknown)} record no dataset (written by an older evaluate.py): not checked")
    known = {name: metrics for name, metrics in results.items() if "problems_checksum" in metrics}
    first = next(iter(known), None)
    for name, metrics in known.items():
        if metrics["problems_checksum"] != known[first]["problems_checksum"]:
            said = lambda m: f"{m.get('dataset')} ({m.get('problems')} problems)"
            raise SystemExit(
                f"error: --merge: {first!r} ({source[first]}) was evaluated on {said(known[first])}, {name!r} ({source[name]}) "
                f"on {said(metrics)}, other problems: merge tables of the same problems"
            )
