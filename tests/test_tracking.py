"""--report-to (tracking.py): TensorBoard and W&B get what log.jsonl gets; with the flag off nothing of them runs."""

import argparse
import glob
import json
import math
import os
import struct
import subprocess
import sys

import pytest

import evaluate
from conftest import ROOT
from plumbing import tracking

SMALL = ["--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "16", "--eval-problems", "8", "--micro-batch", "8"]


def run(script, *args, env=(), check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", **dict(env))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def read_log(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def tensorboard_reader(logdir):
    """What TensorBoard's own loader shows of a run folder (plugin_event_accumulator: the one its server uses)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"tensors": 0})  # 0: keep every event, no sampling
    acc.Reload()
    return acc


def tensorboard_scalars(logdir):
    """{tag: [(step, value), ...]} of every scalar, in the order the loader keeps them."""
    from tensorboard.util import tensor_util

    acc = tensorboard_reader(logdir)
    return {
        tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]
        for tag in acc.PluginTagToContent("scalars")
    }


def log_scalars(rows):
    """The same shape, from log.jsonl: each key's (step, value) in the rows that hold it, the value rounded to
    float32 (what TensorBoard stores; its data server shows no float64 scalar)."""
    scalars = {}
    for row in rows:
        for key, value in row.items():
            if key != "step":
                scalars.setdefault(key, []).append((row["step"], struct.unpack("f", struct.pack("f", value))[0]))
    return scalars


def same(a, b):
    """Equal scalar series; nan equals nan (a skipped step logs grad_norm nan)."""
    return a.keys() == b.keys() and all(
        [s for s, _ in a[k]] == [s for s, _ in b[k]]
        and all(x == y or math.isnan(x) and math.isnan(y) for (_, x), (_, y) in zip(a[k], b[k]))
        for k in a
    )


@pytest.mark.slow
def test_tensorboard_gets_the_logs_scalars_and_a_resume_logs_no_step_twice(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    out = str(tmp_path / "run")
    args = ["train_task.py", "--steps", "3", "--save-every", "2", "--eval-every", "2", "--out", out, *SMALL]
    run(*args, "--report-to", "tensorboard")
    logdir = os.path.join(out, "tensorboard")
    rows = read_log(out)
    assert [row["step"] for row in rows] == [0, 1, 2, 3]
    assert same(tensorboard_scalars(logdir), log_scalars(rows))  # every number, same name, same step

    from tensorboard.plugins.hparams import plugin_data_pb2

    content = tensorboard_reader(logdir).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    shown = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert shown["lr"].number_value == 3e-4 and shown["mode"].string_value == "task" and shown["steps"].number_value == 3

    # A run killed after logging step 3, before its checkpoint was complete: --resume goes back to step 2 and
    # logs step 3 again (with its own step_time). TensorBoard must show it once, with the new values.
    os.remove(os.path.join(out, "step_000003", "COMPLETE"))
    run(*args, "--resume")  # --report-to comes from the run's config.json
    rows_again = read_log(out)
    assert rows_again[3]["step_time"] != rows[3]["step_time"]  # else this test could not tell the two step 3s apart
    assert len(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))) == 2
    assert same(tensorboard_scalars(logdir), log_scalars(rows_again))


@pytest.mark.slow
def test_wandb_offline_writes_its_run_folder(tmp_path):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")
    out = str(tmp_path / "run")
    home = {f"WANDB_{k}_DIR": str(tmp_path / k.lower()) for k in ("CONFIG", "CACHE", "DATA")}  # nothing in ~
    proc = run(
        "train_task.py", "--steps", "1", "--out", out, *SMALL, "--report-to", "wandb", env={"WANDB_MODE": "offline", **home}
    )
    assert "not logged in" not in proc.stdout  # offline by the user's choice: no login asked for, no warning
    (folder,) = glob.glob(os.path.join(out, "wandb", "offline-run-*"))
    (data,) = glob.glob(os.path.join(folder, "run-*.wandb"))
    assert os.path.getsize(data) > 0


@pytest.mark.slow
def test_without_the_flag_no_tracking_code_runs(tmp_path):
    # tensorboard and wandb that fail on import: a run without --report-to must not notice them
    poisoned = tmp_path / "poisoned"
    for name in ("tensorboard", "wandb"):
        (poisoned / name).mkdir(parents=True)
        (poisoned / name / "__init__.py").write_text("raise ImportError('imported by a run without --report-to')\n")
    env = {"PYTHONPATH": str(poisoned)}
    out = tmp_path / "run"
    run("train_task.py", "--steps", "1", "--out", str(out), *SMALL, env=env)
    assert sorted(os.listdir(out)) == [".lock", "config.json", "final", "log.jsonl", "samples.jsonl", "step_000001"]

    # with the flag, the missing package stops the run with one line, before anything is trained
    proc = run(
        "train_task.py", "--steps", "1", "--out", str(tmp_path / "r2"), *SMALL, "--report-to", "tensorboard", env=env, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith("pip install tensorboard")
    assert not os.path.exists(tmp_path / "r2" / "log.jsonl")


@pytest.mark.parametrize("backend", ["tensorboard", "wandb"])
def test_a_missing_package_names_its_pip_command(backend, monkeypatch):
    for module in (backend, "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules: `import` raises ImportError
    with pytest.raises(SystemExit) as stop:
        tracking.require(backend)
    message = str(stop.value)
    assert message.startswith(f"error: --report-to {backend} needs the {backend} package") and "\n" not in message
    assert message.endswith(f": pip install {backend}")


def test_flag_off_starts_nothing(tmp_path):
    assert tracking.start("none", str(tmp_path / "x"), "x", {}) is None
    assert not os.path.exists(tmp_path / "x")


def test_evaluate_needs_out_to_report(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["evaluate.py", "--report-to", "tensorboard"])
    with pytest.raises(SystemExit) as stop:
        evaluate.main()
    assert stop.value.code == 2 and "--report-to needs --out" in capsys.readouterr().err


def test_evaluate_puts_its_table_in_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.util import tensor_util

    results = {"base": {"problems": 4, "pass@1": 0.25, "greedy": 0.5}, "task": {"pass@1": 0.875, "train_time": 12.0}}
    args = argparse.Namespace(report_to="tensorboard", out=str(tmp_path / "eval.json"), n=16, compare=["base=a", "task=b"])
    evaluate.track(results, args)
    acc = tensorboard_reader(str(tmp_path / "eval" / "tensorboard"))
    (event,) = acc.Tensors("evaluation/text_summary")
    assert tensor_util.make_ndarray(event.tensor_proto).item().decode() == (
        "| metric | base | task |\n| --- | --- | --- |\n| pass@1 | 0.25 | 0.875 |\n| greedy | 0.5 | - |\n| train_time | - | 12 |"
    )
    session = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"base=a" in session  # the options, --compare's list as its text


def test_evaluate_without_out_or_tracking_tracks_nothing(tmp_path, monkeypatch):
    # the default command line, `python evaluate.py --model ...`: no --out, --report-to none: no tracker is started,
    # no backend imported, no file written
    started = []
    monkeypatch.setattr(tracking, "start", lambda *args, **kwargs: started.append(args))
    monkeypatch.setattr(tracking, "require", lambda *args, **kwargs: started.append(args))
    monkeypatch.chdir(tmp_path)
    evaluate.track({"model": {"pass@1": 0.5}}, argparse.Namespace(report_to="none", out=None))
    assert started == [] and os.listdir(tmp_path) == []
