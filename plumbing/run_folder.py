"""
The run folder, --out: config.json, log.jsonl, checkpoints step_*/ and the final model final/. A user's work
lives there, so nothing here deletes or rewrites it unless asked, and a refused command changes no byte:

* a folder is a run of ours when its config.json names the script that wrote it ("trainer"); a new run into a
  folder that holds one stops with one line (--resume continues it, --overwrite replaces it, but only once the
  new run's data and model have loaded: a typo never costs the old run); a folder that holds files a run would
  write but is not one of ours (a model's folder: config.json) is never replaced;
* a lock (fcntl) keeps a second run out of a folder that one is using; it stops at once, with one line; a run
  refused before it starts (release) removes the lock file and the folders it made;
* --resume reads the whole log first: a torn last line (a kill or a full disk mid-write) is dropped with a
  warning, any other bad line stops the run with the log untouched; lines after the checkpoint (steps that
  will run again) are dropped, and the log is rewritten atomically;
* --resume continues the run as it was configured: options not on the command line come from its
  config.json, and options that would change the run are listed and refused; config.json always holds the
  values in effect, the script that wrote the run (only that script resumes it), and what the run started
  from (`started_from`: the model's files and the problems, by checksum), which --resume checks;
* a write that fails (a full disk, a read-only folder) stops the run with one line, and log.jsonl holds strict
  JSON (a non-finite metric is null).
"""

import errno
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager

from plumbing import stopping
from plumbing.provenance import differs, local_data, model_record, problems_checksum, same

# Options that may differ on --resume: they change when and where, not what, the run computes. The model and the
# data may be given by another path (a moved folder): what they hold is checked against the run's record.
MAY_CHANGE_ON_RESUME = ("steps", "keep", "save_every", "eval_every", "device", "out", "resume", "overwrite", "report_to")
CHECKED_ON_RESUME = ("model", "dataset", "eval_dataset")
RUN_FILES = ("config.json", "log.jsonl", "samples.jsonl", "final")


def holds_run(path):
    """Whether `path` holds files a run writes (a run of ours, or a folder that only looks like one)."""
    if not os.path.isdir(path):
        return False
    return any(name in RUN_FILES or name.startswith("step_") for name in os.listdir(path))


def not_ours(path):
    """Why the folder `path`, which holds files a run writes, is not a run of ours (None when it is one): a run's
    config.json names the script that wrote it; a model's (Hugging Face) config.json does not."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except FileNotFoundError:
        return "it holds no config.json"
    except (OSError, ValueError) as err:
        return f"its config.json cannot be read: {type(err).__name__}"
    if not (isinstance(config, dict) and isinstance(config.get("trainer"), str)):
        return "its config.json names no trainer: a model's folder?"
    return None


def umask():
    """The process's file-mode mask (os.umask sets it as it reads it: set it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replaced_atomically(path, mode="w"):
    """A file to write in place of `path`, whole or not at all: a temporary file of a name no one else uses, beside
    it, renamed into place when the block ends; whatever stops the block, the temporary file is removed."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~umask())  # what open() would have made (mkstemp makes 0600: private)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def write_json_atomically(path, obj):
    """`obj` as strict JSON (a non-finite number is null), whole or not at all."""
    with replaced_atomically(path) as f:
        json.dump(finite_or_null(obj), f, indent=1, allow_nan=False)


def finite_or_null(obj):
    """obj with every non-finite float (NaN: a metric that was not tracked) as None, which JSON writes null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def read_log(path):
    """The rows of a log.jsonl, read whole. A torn last line (a kill or a full disk mid-write, or a run still
    writing it) is dropped with a warning; any other line that is not a JSON object with an integer step stops
    with one line, and nothing is changed."""
    try:
        with open(path, errors="replace") as f:  # bytes that are not UTF-8 (a disk error) fail as a bad line below
            lines = f.read().split("\n")
    except OSError as err:
        raise SystemExit(f"error: cannot read {path} ({err.strerror}): it must be a run's log, a file of JSON lines") from None
    torn_end = lines[-1] != ""  # a complete log ends with a newline
    lines = lines[:-1] if not torn_end else lines
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:  # the last line, cut short: it held no full step
                print(f"warning: {path}: dropped a torn last line ({len(line)} characters)")
                continue
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("step", 0), int):
            raise SystemExit(
                f"error: {path}: line {i + 1} is not a JSON object with an integer step; the log was not "
                f"changed. Repair or remove that line, then run again"
            )
        rows.append(row)
    return rows


class RunFolder:
    def __init__(self, path):
        self.path = path
        self.log_path = os.path.join(path, "log.jsonl")
        self.samples_path = os.path.join(path, "samples.jsonl")  # plumbing/samples.py
        self.config_path = os.path.join(path, "config.json")
        self._lock = None
        self.saved = {}  # --resume: config.json as the run left it
        self._made = []  # what claim() made, undone by release(): folders, deepest first
        self._made_lock = False

    def claim(self, resume, overwrite):
        """Lock the folder for this run, then check that the run may start here (rank 0 only). Nothing is removed
        here: --overwrite's clear() comes once the data and the model have loaded. A refusal undoes the claim."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise SystemExit(f"error: --out {self.path} is a file, not a folder: choose another --out")
        if resume and not os.path.isdir(self.path):
            raise SystemExit(f"error: --resume: {self.path} does not exist: check --out, or drop --resume to start a run")
        try:
            with stopping.deferred(), writing(self.path):  # a signal now waits until release() can find all of it
                self._made = missing_folders(self.path)
                os.makedirs(self.path, exist_ok=True)
                self._lock, self._made_lock = _lock(os.path.join(self.path, ".lock"))
            self._check(resume, overwrite)
        except SystemExit:
            self.release()
            raise

    def _check(self, resume, overwrite):
        if not holds_run(self.path) or resume:  # --resume checks the run's config.json itself (resumed_config)
            return
        why = not_ours(self.path)
        if why is not None:
            raise SystemExit(
                f"error: {self.path} is not a run folder of train_task.py or train_sharpen.py ({why}); it is left as it "
                f"is: choose another --out"
            )
        if not overwrite:
            raise SystemExit(
                f"error: {self.path} holds a run already: add --resume to continue it, --overwrite to "
                f"replace it, or choose another --out"
            )

    def release(self):
        """A run refused before it wrote anything: remove the lock file and the folders that claim() made, so that
        the refused command leaves every file and folder as it found them."""
        with stopping.deferred():
            if self._lock is not None:
                if self._made_lock:
                    os.remove(self._lock.name)
                self._lock.close()
                self._lock = None
            for folder in self._made:  # deepest first; one that holds something now stays
                try:
                    os.rmdir(folder)
                except OSError:
                    break
            self._made = []

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
        if "model_type" in saved:
            raise SystemExit(f"error: --resume: {self.path} is a model's folder (its config.json describes a model), not a run")
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
        unchanging = [key for key in sorted(given) if key in saved and key not in MAY_CHANGE_ON_RESUME + CHECKED_ON_RESUME]
        changed = [key for key in unchanging if getattr(args, key) != saved[key]]
        if changed:
            listed = ", ".join(f"--{k.replace('_', '-')} {getattr(args, k)} (the run has {saved[k]})" for k in changed)
            raise SystemExit(
                f"error: --resume: {listed}. Drop these options to continue the run as it was, "
                f"or start a new run in another --out"
            )
        for key, value in saved.items():
            if key not in given and hasattr(args, key) and key not in ("resume", "overwrite"):
                setattr(args, key, value)
        self.saved = saved
        return args

    def check_model(self, args):
        """--model names a model: not a run folder (a run's models are its final/ and step_*/), and on --resume not
        a folder that is gone since the run started (a moved copy may be given: its files are checked)."""
        if holds_run(args.model) and not_ours(args.model) is None:
            raise SystemExit(f"error: --model {args.model} is a run folder: give its final/ (or one of its step_*/)")
        record = (self.saved.get("started_from") or {}).get("model") or {}
        if args.resume and "sha256" in record and not os.path.isdir(args.model):
            raise SystemExit(
                f"error: --resume: the run's model {args.model} is gone: give a copy of it with --model (its files are "
                f"checked against the run's record)"
            )

    def started_from(self, args, model, train, held_out):
        """What the run starts from, in args (config.json): the model (model_record) and the problems (their
        checksums), data files by their absolute paths. A new run records it; --resume checks it against the
        record and stops with one line if the model or the problems differ (a π_ref other than the run's own)."""
        args.dataset, args.eval_dataset = local_data(args.dataset), local_data(args.eval_dataset)
        now = {
            "model": model_record(args.model, model.config),
            "train": problems_checksum(train),
            "eval": problems_checksum(held_out),
        }
        args.model = now["model"]["path"]
        record = self.saved.get("started_from") if args.resume else now
        if record is None:  # a run written before runs recorded this: nothing to check it against
            print(f"warning: --resume: {self.config_path} records no checksums of the run's model and data: not checked")
            record = now
        for what, says in (("model", f"the model {args.model}"), ("train", "the training set"), ("eval", "the evaluation set")):
            if not same(record.get(what), now[what]):
                raise SystemExit(
                    f"error: --resume: {says} is not what the run started from ({differs(record.get(what), now[what])}): "
                    f"give the run's own with --{'model' if what == 'model' else 'dataset'}, or start a new run in another --out"
                )
        args.started_from = record

    def save_config(self, args):
        """The first write of a run (a failed one is a refusal: release() undoes the claim): the options in effect,
        and (--resume) any other key a user added to config.json. Once it is written the folder is the run's: the
        lock names its pid, and nothing is undone any more."""
        with writing(self.config_path):
            write_json_atomically(self.config_path, self.saved | vars(args))
            if self._lock is not None:
                self._lock.seek(0)
                self._lock.truncate()
                self._lock.write(str(os.getpid()))
                self._lock.flush()
        self._made, self._made_lock = [], False

    def keep_log_until(self, step):
        """On resume: the log's rows up to `step` (the checkpoint's), after reading all of it; a log that ends
        before the checkpoint is noted (its missing steps are not run again)."""
        rows = read_log(self.log_path) if os.path.exists(self.log_path) else []
        kept = [row for row in rows if row.get("step", 0) <= step]
        last = max((row.get("step", 0) for row in kept), default=None)
        if last is None or last < step:
            logged = "holds no step" if last is None else f"ends at step {last}"
            print(
                f"note: {self.log_path} {logged}, and the checkpoint is at step {step}: the steps in between are "
                f"not in the log (they were run, but their lines were lost)"
            )
        with writing(self.log_path), replaced_atomically(self.log_path) as f:
            f.writelines(json.dumps(row) + "\n" for row in kept)
        if os.path.exists(self.samples_path):  # the samples of the steps a --resume runs again go too
            shown = [row for row in read_log(self.samples_path) if row.get("step", 0) <= step]
            with writing(self.samples_path), replaced_atomically(self.samples_path) as f:
                f.writelines(json.dumps(row) + "\n" for row in shown)

    def log(self, row, path=None):
        """One line of strict JSON in log.jsonl (or `path`): a non-finite metric (a skipped step's grad_norm) is
        written null, not NaN."""
        path = path or self.log_path
        with writing(path), open(path, "a") as f:
            f.write(json.dumps(finite_or_null(row), allow_nan=False) + "\n")


def missing_folders(path):
    """The folders that making `path` would create, deepest first."""
    missing, path = [], os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def check_figure(path):
    """A figure is written where no file is, or over a figure (a PNG that Matplotlib drew, as every figure here is),
    never over any other file; checked before anything is drawn."""
    if os.path.isdir(path):
        raise SystemExit(f"error: {path} is a folder: give the figure a file name, e.g. {os.path.join(path, 'curves.png')}")
    if os.path.exists(path):
        with open(path, "rb") as f:
            head = f.read(4096)
        if not (head.startswith(b"\x89PNG") and b"Software\x00Matplotlib" in head):
            raise SystemExit(
                f"error: {path} exists and is not a figure (a PNG that Matplotlib drew): it is left as it is; choose "
                f"another --out"
            )


# What to do about a write that failed, by its cause.
ADVICE = {
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ENOENT: "check the path",
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (a disk quota is full)",
    errno.EFBIG: "free some space (a file size limit is reached)",
    errno.EACCES: "fix the permissions",
    errno.EPERM: "fix the permissions",
    errno.EROFS: "the disk is read-only: choose a writable place",
    errno.EEXIST: "something is in the way: choose another path",
    errno.EISDIR: "a folder is in the way: choose another path",
    errno.ENOTDIR: "a file is in the way: choose another path",
}


def advice(err):
    """What to do about the OSError `err` of a failed write."""
    return ADVICE.get(err.errno, "free some space or fix the permissions")


@contextmanager
def writing(path):
    """A failed write (a full disk, a read-only folder) stops the run with one line; what was written stays."""
    try:
        yield
    except OSError as err:
        raise SystemExit(
            f"error: cannot write {err.filename or path} ({err.strerror or err}): {advice(err)}, then run again (what was "
            f"written before is intact)"
        ) from None


def _lock(path):
    """Hold an exclusive lock on `path` for the life of the process, or stop with one line. Returns the open file
    and whether this call made it (a new file holds the pid at once; an old one only once the run writes)."""
    try:
        import fcntl
    except ImportError:  # not on this platform: no lock, as before
        return None, False
    while True:
        made = not os.path.exists(path)
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise SystemExit(
                f"error: another run is using {os.path.dirname(path)} (pid {holder}); wait for it to end or choose another --out"
            ) from None
        if os.path.exists(path) and os.path.samestat(os.fstat(f.fileno()), os.stat(path)):
            break
        f.close()  # a refused run removed the file after it was opened here: lock the one at `path` now
    if made:
        f.write(str(os.getpid()))
        f.flush()
    return f, made
