"""
Checkpoints that a kill at any moment cannot corrupt, that check themselves, and that resume a run exactly.

A checkpoint is a folder step_000123/ holding
    model.safetensors, config.json, tokenizer files   (save_pretrained: loads with from_pretrained and evaluate.py)
    trainer.pt                                        optimizer, scheduler, step, config, every RNG state
    COMPLETE                                          written last: the SHA-256 of every other file
It is written to a temporary folder and renamed into place, so a reader sees either nothing or all of it.
Before a checkpoint is used, every file is checked against COMPLETE: a damaged one (a bad disk, a copy cut
short, bytes changed by hand) is reported and skipped, and --resume falls back to the newest good one. The
final model, final/, is written the same way.
"""

import json
import os
import random
import re
import shutil

import numpy as np
import torch
from safetensors import SafetensorError

from model import response_logprobs
from plumbing.provenance import sha256 as _sha256
from plumbing.sharding import local

_STEP = re.compile(r"^step_(\d+)$")
MARKER = "COMPLETE"


def rng_state():
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_folder(final, model, tokenizer, trainer_state=None, weights=None, step=None):
    """save_pretrained (+ trainer.pt) into a temporary folder, seal it with checksums (and `step`, the updates that
    made the model), rename it into place. `weights`: a full state dict to write in place of the model's own (a
    sharded model's, gathered). Whatever stops the write, the half-written copy is removed."""
    tmp = final + ".tmp"
    if os.path.isfile(tmp) or os.path.islink(tmp):  # a file of that name (not ours to keep: the name is the run's)
        os.remove(tmp)
    shutil.rmtree(tmp, ignore_errors=True)  # a copy that a kill left half-written
    try:
        model.save_pretrained(tmp, state_dict=weights)
        tokenizer.save_pretrained(tmp)
        if trainer_state is not None:
            torch.save(trainer_state, os.path.join(tmp, "trainer.pt"))
        sums = {name: _sha256(os.path.join(tmp, name)) for name in sorted(os.listdir(tmp))}
        with open(os.path.join(tmp, MARKER), "w") as f:
            json.dump({"sha256": sums, **({} if step is None else {"step": step})}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError, SafetensorError, MemoryError) as err:  # a full disk, a read-only folder, no memory
        shutil.rmtree(tmp, ignore_errors=True)  # the half-written copy would only take the space a retry needs
        why = "out of memory" if isinstance(err, MemoryError) else getattr(err, "strerror", None) or str(err).splitlines()[0]
        advice = "free some memory" if isinstance(err, MemoryError) else "free some space or fix the permissions"
        raise SystemExit(
            f"error: cannot write {final} ({why}): {advice}, then --resume (the checkpoints already written are intact)"
        ) from None
    except (SystemExit, KeyboardInterrupt):  # a second signal: the checkpoints already written stay, this one goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final + ".old"
    if os.path.exists(final):  # a kill between these renames leaves final.old and final.tmp, both whole
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def save(run_dir, step, model, tokenizer, trainer_state, keep=2, weights=None):
    """Write run_dir/step_<step>, then keep only the newest `keep` good checkpoints."""
    state = {**trainer_state, "step": step, "rng": rng_state()}
    path = write_folder(os.path.join(run_dir, f"step_{step:06d}"), model, tokenizer, state, weights)
    for old in completed(run_dir)[:-keep]:
        shutil.rmtree(old)
    return path


def damage(path):
    """Why the folder `path` cannot be trusted, or None if every file matches its checksum."""
    try:
        with open(os.path.join(path, MARKER)) as f:
            sums = json.load(f)["sha256"]
    except FileNotFoundError:
        return "no COMPLETE marker: the write was cut short"
    except (OSError, ValueError, KeyError, TypeError):
        return "its COMPLETE marker holds no checksums (damaged, or written by an older version)"
    extra = {name for name in os.listdir(path) if not name.startswith(".")} - set(sums) - {MARKER}
    if extra:  # (hidden files are the system's own: .DS_Store, ._model.safetensors; no loader reads them)
        return f"files not in its checksums: {', '.join(sorted(extra))}"
    for name, digest in sums.items():
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            return f"{name} is missing"
        if _sha256(file) != digest:
            return f"{name} does not match its checksum (damaged)"
    return None


def completed(run_dir):
    """Checkpoint folders with a COMPLETE marker, oldest first (not yet verified: see latest)."""
    if not os.path.isdir(run_dir):
        return []
    steps = sorted(int(m.group(1)) for m in map(_STEP.match, os.listdir(run_dir)) if m)
    paths = [os.path.join(run_dir, f"step_{s:06d}") for s in steps]
    return [p for p in paths if os.path.exists(os.path.join(p, MARKER))]


def latest(run_dir):
    """The newest checkpoint whose files all match their checksums; every one skipped is reported."""
    if not os.path.isdir(run_dir):
        raise SystemExit(f"error: --resume: {run_dir} does not exist")
    for name in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, name)
        if (name.endswith(".tmp") or _STEP.match(name)) and not os.path.exists(os.path.join(path, MARKER)):
            print(f"warning: skipping incomplete checkpoint {path} (no COMPLETE marker: the write was cut short)")
    candidates = completed(run_dir)
    for path in reversed(candidates):
        problem = damage(path)
        if problem is None:
            return path
        print(f"warning: skipping checkpoint {path}: {problem}; trying an older one")
    if candidates:  # each one is reported above: --overwrite would delete what may only need repairing
        raise SystemExit(
            f"error: --resume: no good checkpoint in {run_dir} (see the warnings above): restore one from a copy, or "
            f"start a new run in another --out (--overwrite would delete these)"
        )
    raise SystemExit(
        f"error: --resume: no good checkpoint in {run_dir}: start the run again with --overwrite in place of --resume"
    )


def verified(path):
    """A model folder written here (a COMPLETE marker) must match its checksums; others are taken as they are."""
    if os.path.isdir(path) and os.path.exists(os.path.join(path, MARKER)):
        problem = damage(path)
        if problem is not None:
            raise SystemExit(f"error: {path} cannot be trusted: {problem}")
    return path


def step_of(path):
    """The updates that made the model in `path`, as its COMPLETE marker records them (a final/), or None."""
    try:
        with open(os.path.join(path, MARKER)) as f:
            step = json.load(f).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def load_trainer_state(path):
    try:
        return torch.load(os.path.join(path, "trainer.pt"), weights_only=False)
    except Exception as err:  # a truncated or foreign file must stop the run, not half-load it
        raise SystemExit(f"checkpoint {path} is corrupted: trainer.pt could not be read ({type(err).__name__}: {err})")


def finite(model, probe):
    """Whether every weight this rank holds is finite and so are the logits of a probe, token ids [1, T] (weights
    can be finite and still so large that the logits overflow). A 0-d bool tensor: with --fsdp each rank checks
    its own shards, and the caller agrees over ranks."""
    weights = torch.stack([torch.isfinite(local(p)).all() for p in model.parameters()]).all()
    ones = torch.ones_like(probe)
    logp, entropy = response_logprobs(model, probe, ones, ones[:, -1:].bool(), entropy=True)  # the last position's
    return weights & torch.isfinite(logp).all() & torch.isfinite(entropy).all()
