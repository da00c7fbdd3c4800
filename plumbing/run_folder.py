"""
The run folder, --out: config.json, log.jsonl, checkpoints step_*/ and the final model final/. A user's work
lives there, so nothing here deletes or rewrites it unless asked:

* a new run into a folder that holds a run stops with one line (--resume continues it, --overwrite replaces it,
  but only once the new run's data and model have loaded: a typo never costs the old run);
* a lock (fcntl) keeps a second run out of a folder that one is using; it stops at once, with one line;
* --resume reads the whole log first: a torn last line (a kill or a full disk mid-write) is dropped with a
  warning, any other bad line stops the run with the log untouched; lines after the checkpoint (steps that
  will run again) are dropped, and the log is rewritten atomically;
* --resume continues the run as it was configured: options not on the command line come from its
  config.json, and options that would change the run are listed and refused; config.json always holds the
  values in effect, and the script that wrote the run (only that script resumes it);
* a write that fails (a full disk, a read-only folder) stops the run with one line, and log.jsonl holds strict
  JSON (a non-finite metric is null).
"""

import json
import math
import os
import shutil
from contextlib import contextmanager

# Options that may differ on --resume: they change when and where, not what, the run computes.
MAY_CHANGE_ON_RESUME = ("steps", "keep", "save_every", "eval_every", "device", "out", "resume", "overwrite", "report_to")
RUN_FILES = ("config.json", "log.jsonl", "final")


def holds_run(path):
    if not os.path.isdir(path):
        return False
    return any(name in RUN_FILES or name.startswith("step_") for name in os.listdir(path))


def write_json_atomically(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunFolder:
    def __init__(self, path):
        self.path = path
        self.log_path = os.path.join(path, "log.jsonl")
        self.config_path = os.path.join(path, "config.json")
        self._lock = None

    def claim(self, resume, overwrite):
        """Lock the folder for this run, then check that the run may start here (rank 0 only). Nothing is removed
        here: --overwrite's clear() comes once the data and the model have loaded."""
        if resume and not os.path.isdir(self.path):
            raise SystemExit(f"error: --resume: {self.path} does not exist: check --out, or drop --resume to start a run")
        with writing(self.path):
            os.makedirs(self.path, exist_ok=True)
            self._lock = _lock(os.path.join(self.path, ".lock"))
        if holds_run(self.path) and not (resume or overwrite):
            raise SystemExit(
                f"error: {self.path} holds a run already: add --resume to continue it, --overwrite to "
                f"replace it, or choose another --out"
            )

    def clear(self):
        """--overwrite: remove the previous run, the last thing before the new one writes."""
        stale = [n for n in os.listdir(self.path) if n in RUN_FILES or n.startswith(("step_", "final."))]
        with writing(self.path):
            for name in stale:
                target = os.path.join(self.path, name)
                shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
        if stale:
            print(f"--overwrite: removed the previous run in {self.path} ({', '.join(sorted(stale))})")

    def resumed_config(self, args, parser):
        """args as the run was configured, plus what may change; refuses options that would change the run, a run
        that another script wrote, and saved values that this script does not accept (its choices, its ranges)."""
        given = parser.given()
        try:
            with open(self.config_path) as f:
                saved = json.load(f)
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: --resume: cannot read {self.config_path} ({type(err).__name__})")
        if not isinstance(saved, dict):
            raise SystemExit(f"error: --resume: {self.config_path} holds no options (not a JSON object)")
        if saved.get("trainer", args.trainer) != args.trainer:
            raise SystemExit(f"error: --resume: {self.path} is a run of {saved['trainer']}: resume it with that script")
        refused = [
            f"--{key.replace('_', '-')} {saved[key]!r}: {why}"
            for key in sorted(saved)
            if key not in given and (why := parser.refuses(key, saved[key]))
        ]
        if refused:
            raise SystemExit(
                f"error: --resume: {self.config_path} holds {'; '.join(refused)}. Resume it with the script that wrote it"
            )
        changed = [
            key for key in sorted(given) if key in saved and key not in MAY_CHANGE_ON_RESUME and getattr(args, key) != saved[key]
        ]
        if changed:
            listed = ", ".join(f"--{k.replace('_', '-')} {getattr(args, k)} (the run has {saved[k]})" for k in changed)
            raise SystemExit(
                f"error: --resume: {listed}. Drop these options to continue the run as it was, "
                f"or start a new run in another --out"
            )
        for key, value in saved.items():
            if key not in given and hasattr(args, key) and key not in ("resume", "overwrite"):
                setattr(args, key, value)
        return args

    def save_config(self, args):
        with writing(self.config_path):
            write_json_atomically(self.config_path, vars(args))

    def keep_log_until(self, step):
        """On resume: the log's rows up to `step` (the checkpoint's), after reading all of it."""
        if not os.path.exists(self.log_path):
            return
        with open(self.log_path) as f:
            lines = f.read().split("\n")
        torn_end = lines[-1] != ""  # a complete log ends with a newline
        lines = lines[:-1] if not torn_end else lines
        rows = []
        for i, line in enumerate(lines):
            try:
                row = json.loads(line)
            except ValueError:
                if i == len(lines) - 1:  # the last line, cut short by a kill or a full disk: it held no full step
                    print(f"warning: {self.log_path}: dropped a torn last line ({len(line)} characters)")
                    continue
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("step", 0), int):
                raise SystemExit(
                    f"error: {self.log_path}: line {i + 1} is not a JSON object with an integer step; the log was not "
                    f"changed. Repair or remove that line, then --resume again"
                )
            rows.append(row)
        kept = [row for row in rows if row.get("step", 0) <= step]
        with writing(self.log_path):
            tmp = self.log_path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in kept)
            os.replace(tmp, self.log_path)

    def log(self, row):
        """One line of strict JSON: a non-finite metric (a skipped step's grad_norm) is written null, not NaN."""
        row = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
        with writing(self.log_path), open(self.log_path, "a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")


@contextmanager
def writing(path):
    """A failed write (a full disk, a read-only folder) stops the run with one line; what was written stays."""
    try:
        yield
    except OSError as err:
        raise SystemExit(
            f"error: cannot write {err.filename or path} ({err.strerror or err}): free some space or fix the "
            f"permissions, then run again (what was written before is intact)"
        ) from None


def _lock(path):
    """Hold an exclusive lock on `path` for the life of the process, or stop with one line."""
    try:
        import fcntl
    except ImportError:  # not on this platform: no lock, as before
        return None
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        raise SystemExit(
            f"error: another run is using {os.path.dirname(path)} (pid {holder}); wait for it to end or choose another --out"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f
