"""
Checkpoints (checkpoint.py): what is saved loads back as a stock Hugging Face model and resumes exactly,
and what is broken (cut short, truncated, missing) is skipped or stops the run with a clear message,
never half-loaded.
"""

import copy
import errno
import json
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import ROOT, run_loop, tiny_qwen, trainer_setup
from plumbing import checkpoint


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(os.path.join(ROOT, "toy_models", "toy"))


@pytest.fixture(scope="module")
def tiny():
    return tiny_qwen()


def trainer_state(model):
    """What Run.save stores: AdamW and scheduler state after one real step, plus the config."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 + 0.9 * s)
    model(torch.tensor([[2, 3, 4]])).logits.sum().backward()
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "config": {"lr": 1e-3}}


def fake_step(run_dir, step, complete=True, tmp=False):
    """A folder that looks like a checkpoint cut short (or a finished one, with complete=True)."""
    path = os.path.join(run_dir, f"step_{step:06d}" + (".tmp" if tmp else ""))
    os.makedirs(path)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(bytes(range(256)) * step)
    if complete:
        sums = {"model.safetensors": checkpoint._sha256(os.path.join(path, "model.safetensors"))}
        with open(os.path.join(path, "COMPLETE"), "w") as f:
            json.dump({"sha256": sums}, f)
    return path


def test_saved_checkpoint_loads_with_from_pretrained_and_holds_the_trainer_state(tmp_path, tiny, tokenizer):
    """Weights come back bit-exact through from_pretrained; optimizer, scheduler and step through trainer.pt (what
    Run.restore does with them: test_resume_restores_everything_the_next_step_reads)."""
    state = trainer_state(tiny)
    path = checkpoint.save(str(tmp_path), 7, tiny, tokenizer, state)
    assert path == os.path.join(str(tmp_path), "step_000007")
    assert sorted(os.listdir(tmp_path)) == ["step_000007"]  # the .tmp folder was renamed away
    loaded = AutoModelForCausalLM.from_pretrained(path)
    for name, p in tiny.named_parameters():
        assert torch.equal(loaded.get_parameter(name), p), name
    assert AutoTokenizer.from_pretrained(path).encode("3+5:") == tokenizer.encode("3+5:")
    back = checkpoint.load_trainer_state(path)
    assert back["step"] == 7 and back["config"] == state["config"] and back["scheduler"] == state["scheduler"]
    moments = state["optimizer"]["state"]
    assert len(moments) == len(list(tiny.parameters())) and set(back["optimizer"]["state"]) == set(moments)
    for k, s in moments.items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(back["optimizer"]["state"][k][key], s[key]), (k, key)
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]


def test_latest_picks_the_newest_complete_checkpoint_by_step_number(tmp_path):
    """The highest complete step wins, whatever order the folders were written in; a later half-written one is skipped."""
    for step in (9, 10, 2):
        fake_step(str(tmp_path), step)
    fake_step(str(tmp_path), 11, complete=False)
    assert checkpoint.latest(str(tmp_path)) == os.path.join(str(tmp_path), "step_000010")


def test_half_written_checkpoints_are_reported_and_never_loaded(tmp_path, capsys):
    """A step folder without COMPLETE and a leftover .tmp folder each get a warning; latest() returns neither."""
    run_dir = str(tmp_path)
    good = fake_step(run_dir, 3)
    cut = fake_step(run_dir, 6, complete=False)
    tmp = fake_step(run_dir, 5, complete=False, tmp=True)
    assert checkpoint.latest(run_dir) == good
    out = capsys.readouterr().out
    assert f"skipping incomplete checkpoint {cut} " in out and f"skipping incomplete checkpoint {tmp} " in out
    assert good not in out
    assert checkpoint.completed(run_dir) == [good]


def test_a_kill_during_save_leaves_the_previous_checkpoint_as_latest(tmp_path, tiny, tokenizer, monkeypatch):
    """save() dies after writing the weights (as under SIGKILL): only a .tmp folder is left, and it is not used."""
    run_dir = str(tmp_path)
    first = checkpoint.save(run_dir, 1, tiny, tokenizer, {})

    class Killed(BaseException):  # stands in for the process dying mid-write
        pass

    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(checkpoint.torch, "save", die)
    with pytest.raises(Killed):
        checkpoint.save(run_dir, 2, tiny, tokenizer, {})
    assert sorted(os.listdir(run_dir)) == ["step_000001", "step_000002.tmp"]
    assert checkpoint.latest(run_dir) == first


def test_truncated_trainer_state_stops_with_one_clear_line(tmp_path, tiny, tokenizer):
    """A trainer.pt cut short (a full disk, a copy interrupted) raises SystemExit naming the file, on one line."""
    path = checkpoint.save(str(tmp_path), 4, tiny, tokenizer, trainer_state(tiny))
    file = os.path.join(path, "trainer.pt")
    data = open(file, "rb").read()
    for cut in (0, 100, len(data) // 2, len(data) - 1):
        with open(file, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(SystemExit) as err:
            checkpoint.load_trainer_state(path)
        message = str(err.value)
        assert path in message and "trainer.pt" in message and "corrupted" in message
        assert "\n" not in message


def test_pruning_keeps_the_last_k(tmp_path, tiny, tokenizer):
    """With keep=2, saving steps 1..5 leaves steps 4 and 5; a half-written folder is not counted or removed."""
    run_dir = str(tmp_path)
    cut = fake_step(run_dir, 9, complete=False)
    for step in range(1, 6):
        checkpoint.save(run_dir, step, tiny, tokenizer, {}, keep=2)
    assert sorted(os.listdir(run_dir)) == ["step_000004", "step_000005", os.path.basename(cut)]
    assert [os.path.basename(p) for p in checkpoint.completed(run_dir)] == ["step_000004", "step_000005"]


def draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), torch.randint(0, 10**9, (2,)).tolist()


def test_rng_states_round_trip_through_trainer_pt(tmp_path, tiny, tokenizer):
    """After set_rng_state(the saved state), python, numpy and torch draw exactly what they drew after the save."""
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    draws()  # move every generator off its seed
    path = checkpoint.save(str(tmp_path), 1, tiny, tokenizer, {})
    expected = draws()
    draws()  # and on again, as the rest of a run would
    assert draws() != expected
    checkpoint.set_rng_state(checkpoint.load_trainer_state(path)["rng"])
    assert draws() == expected


@pytest.mark.parametrize("folder", ["missing", "empty", "only_incomplete"])
def test_resume_without_a_checkpoint_stops_with_a_clear_message(tmp_path, keep_signals, folder, capsys):
    """`--resume` on a folder that is missing, empty or holds only a cut-short checkpoint: SystemExit naming it."""
    out = str(tmp_path / "run")
    if folder != "missing":
        os.makedirs(out)
    if folder == "only_incomplete":  # a run that was cut short before its first checkpoint was whole
        fake_step(out, 3, complete=False)
        json.dump({}, open(os.path.join(out, "config.json"), "w"))
    with pytest.raises(SystemExit) as err:
        trainer_setup("train_task.py", "--resume", "--device", "cpu", "--eval-problems", "8", "--out", out)
    message = str(err.value)
    assert message.startswith("error: --resume:") and out in message and "\n" not in message
    assert {"missing": "does not exist", "empty": "cannot read", "only_incomplete": "no good checkpoint"}[folder] in message
    assert os.path.isdir(out) == (folder != "missing")  # a typo in --out is not made into a folder
    if folder == "only_incomplete":
        assert "skipping incomplete checkpoint" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# checkpoints check themselves


def test_every_file_is_checksummed_and_verified(tmp_path, tiny, tokenizer):
    path = checkpoint.save(str(tmp_path), 1, tiny, tokenizer, {})
    sums = json.load(open(os.path.join(path, "COMPLETE")))["sha256"]
    assert set(sums) == set(os.listdir(path)) - {"COMPLETE"} and "model.safetensors" in sums
    assert checkpoint.damage(path) is None


@pytest.mark.parametrize("harm", ["flip-a-tensor-byte", "truncate", "delete", "extra-file", "empty-marker"])
def test_a_damaged_checkpoint_is_skipped_for_the_newest_good_one(tmp_path, tiny, tokenizer, capsys, harm):
    run_dir = str(tmp_path)
    good = checkpoint.save(run_dir, 1, tiny, tokenizer, {}, keep=5)
    bad = checkpoint.save(run_dir, 2, tiny, tokenizer, {}, keep=5)
    weights = os.path.join(bad, "model.safetensors")
    data = bytearray(open(weights, "rb").read())
    if harm == "flip-a-tensor-byte":  # the bytes of a weight, not the header: loads silently without the checksum
        data[len(data) - 100] ^= 0x01
        open(weights, "wb").write(data)
    elif harm == "truncate":
        open(weights, "wb").write(data[: len(data) // 2])
    elif harm == "delete":
        os.remove(weights)
    elif harm == "extra-file":
        open(os.path.join(bad, "stray.bin"), "wb").write(b"x")
    else:
        open(os.path.join(bad, "COMPLETE"), "w").close()
    assert checkpoint.latest(run_dir) == good
    out = capsys.readouterr().out
    assert f"skipping checkpoint {bad}" in out and "trying an older one" in out


def test_no_good_checkpoint_stops_with_one_line(tmp_path, tiny, tokenizer):
    path = checkpoint.save(str(tmp_path), 1, tiny, tokenizer, {})
    open(os.path.join(path, "model.safetensors"), "ab").write(b"junk")
    with pytest.raises(SystemExit, match="no good checkpoint") as err:
        checkpoint.latest(str(tmp_path))
    assert "\n" not in str(err.value)


def test_final_is_written_atomically_and_verified(tmp_path, tiny, tokenizer, monkeypatch):
    final = os.path.join(str(tmp_path), "final")
    checkpoint.write_folder(final, tiny, tokenizer)
    assert checkpoint.verified(final) == final

    class Killed(BaseException):
        pass

    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(tokenizer, "save_pretrained", die)  # a kill in the middle of writing the new final/
    with pytest.raises(Killed):
        checkpoint.write_folder(final, tiny, tokenizer)
    assert checkpoint.verified(final) == final  # the previous final/ is whole, the half-written one is aside
    assert os.path.isdir(final + ".tmp")
    open(os.path.join(final, "model.safetensors"), "ab").write(b"junk")
    with pytest.raises(SystemExit, match="cannot be trusted") as err:
        checkpoint.verified(final)
    assert "\n" not in str(err.value)


def test_a_model_folder_without_tokenizer_files_is_one_line(tmp_path, tiny):
    tiny.save_pretrained(tmp_path / "m")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "--model", str(tmp_path / "m"), "--dataset", "toy", "--limit", "2", "--n", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "has no tokenizer files" in proc.stderr.strip().splitlines()[-1]


# -----------------------------------------------------------------------------
# a full disk, a read-only folder, a weights file cut short


@pytest.mark.parametrize("where", ["weights", "safetensors", "trainer.pt"])
def test_a_full_disk_during_a_save_is_one_line_and_leaves_nothing_half_written(tmp_path, tiny, tokenizer, monkeypatch, where):
    run_dir = str(tmp_path)
    first = checkpoint.save(run_dir, 1, tiny, tokenizer, {})

    def full_disk(*args, **kwargs):
        if where == "weights":
            raise OSError(errno.ENOSPC, "No space left on device")
        if where == "safetensors":  # what save_pretrained raised on a full tmpfs
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")  # torch.save's own

    monkeypatch.setattr(*((checkpoint.torch, "save") if where == "trainer.pt" else (tiny, "save_pretrained")), full_disk)
    with pytest.raises(SystemExit) as err:
        checkpoint.save(run_dir, 2, tiny, tokenizer, {})
    message = str(err.value)
    assert message.startswith(f"error: cannot write {os.path.join(run_dir, 'step_000002')} (") and "\n" not in message
    assert sorted(os.listdir(run_dir)) == ["step_000001"]  # no step_000002.tmp taking the space a retry needs
    assert checkpoint.latest(run_dir) == first


def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path):
    from plumbing.run_folder import RunFolder

    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match=re.escape(f"error: cannot write {tmp_path / 'file'}")) as err:
        RunFolder(str(tmp_path / "file" / "run")).claim(resume=False, overwrite=False)
    assert "\n" not in str(err.value)


def test_a_truncated_weights_file_without_a_marker_is_one_line(tmp_path, tiny):
    """A folder this repo did not write (no COMPLETE to check against), its safetensors cut short by a copy."""
    from plumbing.loading import load_model

    tiny.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(SystemExit, match=re.escape(f"error: could not load model {str(tmp_path)!r}")) as err:
        load_model(str(tmp_path), "cpu")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("damaged", ["tokenizer.json", "config.json"])
def test_a_damaged_tokenizer_or_config_is_one_line(tmp_path, damaged):
    from plumbing.loading import load_tokenizer

    shutil.copytree(os.path.join(ROOT, "toy_models", "toy"), tmp_path / "m")
    (tmp_path / "m" / damaged).write_text("{garbage")
    with pytest.raises(SystemExit, match=re.escape(f"error: could not load tokenizer {str(tmp_path / 'm')!r}")) as err:
        load_tokenizer(str(tmp_path / "m"))
    assert "\n" not in str(err.value)


# -----------------------------------------------------------------------------
# --resume, in process: a run stopped after its checkpoint continues as if it had never stopped

RESUMABLE = [
    *("--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "12", "--eval-problems", "4"),
    *("--steps", "3", "--save-every", "2", "--eval-every", "100"),
]


def state_of(run):
    """What the next step of a run depends on: weights, AdamW's moments and step counts, the schedule, every random
    stream (python, numpy, torch's global one, and the seeded streams of the next step) and the next prompts."""
    draws = [torch.rand(4, generator=run.generator(2, stream)).tolist() for stream in (0, 1)]
    return dict(
        params={n: p.detach().clone() for n, p in run.policy.named_parameters()},
        optimizer=copy.deepcopy(run.opt.state_dict()),
        scheduler=run.sched.state_dict(),
        lr=run.sched.get_last_lr(),
        rng=checkpoint.rng_state(),
        streams=draws,
        prompts=run.prompts(2),
    )


def test_resume_restores_everything_the_next_step_reads(tmp_path, keep_signals):
    """Two steps, a checkpoint, the process gone; `--resume` builds a Run equal to the uninterrupted one after its
    two steps (weights, exp_avg, exp_avg_sq and step of every parameter, the schedule, every random stream), and its
    third step logs the same row and leaves the same weights."""
    straight = trainer_setup("train_task.py", *RESUMABLE, "--out", str(tmp_path / "straight"))
    for step in range(2):
        draws()  # what a model with dropout would draw from the global streams: their state is not the seed's
        run_loop("train_task.py", straight, step=step)
    want = state_of(straight["run"])
    stopped = trainer_setup("train_task.py", *RESUMABLE, "--out", str(tmp_path / "stopped"))
    for step in range(2):
        draws()
        run_loop("train_task.py", stopped, step=step)
    stopped["run"].folder._lock.close()  # the process is gone: its lock with it
    resumed = trainer_setup("train_task.py", "--resume", "--out", str(tmp_path / "stopped"))
    assert resumed["run"].start_step == 2
    got = state_of(resumed["run"])

    for name, p in want["params"].items():
        assert torch.equal(got["params"][name], p), f"weights: {name}"
    moments = want["optimizer"]["state"]
    assert moments and set(got["optimizer"]["state"]) == set(moments)
    for k, state in moments.items():
        assert state["step"] == 2 and state["exp_avg_sq"].abs().max() > 0  # two real steps: nothing is compared empty
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(got["optimizer"]["state"][k][key], state[key]), f"AdamW's {key} of parameter {k}"
    assert got["optimizer"]["param_groups"] == want["optimizer"]["param_groups"]
    assert got["scheduler"] == want["scheduler"] and got["lr"] == want["lr"] and want["scheduler"]["last_epoch"] == 2
    assert got["rng"]["python"] == want["rng"]["python"]
    assert all(np.array_equal(a, b) for a, b in zip(got["rng"]["numpy"], want["rng"]["numpy"]))
    assert torch.equal(got["rng"]["torch"], want["rng"]["torch"])
    assert got["streams"] == want["streams"] and got["prompts"] == want["prompts"]

    rows = [run_loop("train_task.py", setup, step=2)["metrics"] for setup in (straight, resumed)]
    timing = ("step_time", "tokens_per_s")
    assert {k: v for k, v in rows[1].items() if k not in timing} == {k: v for k, v in rows[0].items() if k not in timing}
    assert "eval_accuracy" in rows[0]  # the last step evaluates: its own stream too
    for (name, p), q in zip(straight["run"].policy.named_parameters(), resumed["run"].policy.parameters()):
        assert torch.equal(p, q), f"weights after the third step: {name}"
