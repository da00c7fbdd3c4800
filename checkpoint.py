"""
Checkpoints that a kill at any moment cannot corrupt, and that resume a run exactly.

A checkpoint is a folder step_000123/ holding
    model.safetensors, config.json, tokenizer files   (save_pretrained: loads with from_pretrained and evaluate.py)
    trainer.pt                                        optimizer, scheduler, step, config, every RNG state
    COMPLETE                                          written last: a folder without it was cut short
It is written to a temporary folder and renamed into place, so a reader sees either nothing or all of it.
"""

import os
import random
import re
import shutil

import numpy as np
import torch

_STEP = re.compile(r"^step_(\d+)$")


def rng_state():
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir, step, model, tokenizer, trainer_state, keep=2):
    """Write run_dir/step_<step> atomically, then keep only the newest `keep` checkpoints."""
    final = os.path.join(run_dir, f"step_{step:06d}")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save({**trainer_state, "step": step, "rng": rng_state()}, os.path.join(tmp, "trainer.pt"))
    open(os.path.join(tmp, "COMPLETE"), "w").close()
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in completed(run_dir)[:-keep] if keep else []:
        shutil.rmtree(old)
    return final


def completed(run_dir):
    """Finished checkpoint folders of a run, oldest first."""
    if not os.path.isdir(run_dir):
        return []
    steps = sorted(int(m.group(1)) for m in map(_STEP.match, os.listdir(run_dir)) if m)
    paths = [os.path.join(run_dir, f"step_{s:06d}") for s in steps]
    return [p for p in paths if os.path.exists(os.path.join(p, "COMPLETE"))]


def latest(run_dir):
    """The newest complete checkpoint; a half-written one is reported and skipped, never loaded."""
    if not os.path.isdir(run_dir):
        raise SystemExit(f"--resume: {run_dir} does not exist")
    for name in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, name)
        if (name.endswith(".tmp") or _STEP.match(name)) and not os.path.exists(os.path.join(path, "COMPLETE")):
            print(f"warning: skipping incomplete checkpoint {path} (no COMPLETE marker: the write was cut short)")
    done = completed(run_dir)
    if not done:
        raise SystemExit(f"--resume: no complete checkpoint in {run_dir}")
    return done[-1]


def load_trainer_state(path):
    try:
        return torch.load(os.path.join(path, "trainer.pt"), weights_only=False)
    except Exception as err:  # a truncated or foreign file must stop the run, not half-load it
        raise SystemExit(f"checkpoint {path} is corrupted: trainer.pt could not be read ({type(err).__name__}: {err})")
