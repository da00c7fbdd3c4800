"""Faults, round four, the cases found beyond the issue's: signals while a run sets up, disks, odd paths and data,
concurrent runs, runs and models given in each other's place. Each refusal is one line, and the tree around it
is compared byte for byte (test_files_sacred.tree)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_files_sacred import copy_toy, make_run, no_evaluation, refused, rows, run_main, saved_run, toy_file, tree, write_run

import plot
from conftest import ROOT
from plumbing import run_folder
from plumbing.run_folder import RunFolder
from tasks import data

TOY = os.path.join(ROOT, "toy_models", "toy")


# -----------------------------------------------------------------------------
# signals and disks while a run sets up


@pytest.mark.slow
def test_a_signal_while_the_run_sets_up_leaves_nothing(tmp_path):
    """Ctrl-C, kill or a closed terminal while the data and the model load: the run stops at once (128 + the signal,
    as a shell reports it), and the lock file and the folders it made are gone."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        out = tmp_path / "new" / "run"
        argv = [sys.executable, os.path.join(ROOT, "train_task.py"), "--steps", "2", "--out", str(out)]
        proc = subprocess.Popen(argv, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while not (out / ".lock").exists() and proc.poll() is None:  # claimed: now it loads
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig and b"Traceback" not in err, (sig, err[-500:])
        assert os.listdir(tmp_path) == [], sig


def test_a_full_disk_at_the_first_write_leaves_nothing(tmp_path, keep_signals, monkeypatch):
    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(run_folder, "write_json_atomically", full)
    out = tmp_path / "new" / "run"
    refused(lambda: make_run(str(out)), f"cannot write {out / 'config.json'} (No space left on device): free some space")
    assert os.listdir(tmp_path) == []


def test_a_path_too_long_says_so(tmp_path, keep_signals):
    out = tmp_path / ("x" * 300) / "run"
    refused(lambda: make_run(str(out)), "(File name too long): choose a shorter path")
    assert os.listdir(tmp_path) == []


def test_a_dangling_symlink_as_out_is_one_line_and_stays(tmp_path, keep_signals):
    os.symlink(tmp_path / "gone", tmp_path / "link")
    before = tree(tmp_path)
    refused(lambda: make_run(str(tmp_path / "link")), "(File exists): something is in the way: choose another path")
    assert tree(tmp_path) == before and os.path.islink(tmp_path / "link")


# -----------------------------------------------------------------------------
# two runs, one folder


def test_a_refused_second_claim_leaves_the_first_runs_lock(tmp_path):
    out = str(tmp_path / "new")
    first, second = RunFolder(out), RunFolder(out)
    first.claim(resume=False, overwrite=False)
    refused(lambda: second.claim(resume=False, overwrite=False), f"another run is using {out} (pid {os.getpid()})")
    assert os.listdir(out) == [".lock"]  # the second did not remove what the first holds
    first.release()  # the first is refused in turn: the folder it made goes
    assert os.listdir(tmp_path) == []
    second.claim(resume=False, overwrite=False)  # and the folder is free again
    second.release()


# -----------------------------------------------------------------------------
# runs and models in each other's place


def test_a_run_folder_as_model_is_one_line(tmp_path, keep_signals):
    saved_run(str(tmp_path / "old"))
    before = tree(tmp_path)
    refused(lambda: make_run(str(tmp_path / "new"), "--model", str(tmp_path / "old")), "is a run folder: give its final/")
    assert tree(tmp_path) == before


def test_resume_when_the_runs_model_is_gone_is_one_line_before_loading(tmp_path, keep_signals):
    model = copy_toy(tmp_path / "m")
    saved_run(str(tmp_path / "run"), "--model", model)
    os.rename(model, tmp_path / "elsewhere")
    before = tree(tmp_path)
    refused(
        lambda: make_run(str(tmp_path / "run"), "--resume"), f"the run's model {model} is gone: give a copy of it with --model"
    )
    assert tree(tmp_path) == before
    make_run(str(tmp_path / "run"), "--resume", "--model", str(tmp_path / "elsewhere"))  # the copy: its files match


def test_a_run_never_writes_into_its_model_folder_and_ignores_hidden_files_there(tmp_path, keep_signals):
    model = copy_toy(tmp_path / "m")
    before = tree(model)
    out = str(tmp_path / "run")
    saved_run(out, "--model", model)
    assert tree(model) == before
    open(os.path.join(model, ".DS_Store"), "w").write("Finder")  # the system's own: not the model's
    make_run(out, "--resume").save_final()
    assert os.path.isdir(os.path.join(out, "final"))


# -----------------------------------------------------------------------------
# odd paths


def test_out_with_spaces_and_unicode_trains_and_resumes(tmp_path, keep_signals):
    out = str(tmp_path / "mes essais é" / "ü run")
    saved_run(out, "--model", copy_toy(tmp_path / "modèle à moi"))
    run = make_run(out + os.sep, "--resume", "--steps", "3")  # a trailing slash too
    assert run.start_step == 2 and run.args.model == str(tmp_path / "modèle à moi")


def test_out_that_cannot_be_made_is_named_before_the_evaluation(monkeypatch):
    no_evaluation(monkeypatch)
    refused(lambda: run_main(monkeypatch, "--dataset", "toy", "--out", "/proc/e.json"), "cannot write /proc/e.json (")


# -----------------------------------------------------------------------------
# logs and configs edited or damaged


def test_a_log_with_windows_line_ends_or_empty_resumes(tmp_path, capsys):
    folder = RunFolder(str(tmp_path))
    open(folder.log_path, "w", newline="").write(rows(0, 1, 2).replace("\n", "\r\n"))
    folder.keep_log_until(2)
    assert [row["step"] for row in run_folder.read_log(folder.log_path)] == [0, 1, 2]
    open(folder.log_path, "w").close()
    folder.keep_log_until(2)
    assert "holds no step, and the checkpoint is at step 2" in capsys.readouterr().out


def test_a_log_that_is_a_folder_or_holds_bytes_that_are_not_text_is_one_line(tmp_path, capsys):
    folder = RunFolder(str(tmp_path))
    os.mkdir(folder.log_path)
    refused(lambda: folder.keep_log_until(2), "cannot read")
    os.rmdir(folder.log_path)
    open(folder.log_path, "wb").write(rows(0).encode() + b"\xff\xfe\x00garbage\n" + rows(2).encode())  # a disk error
    before = tree(tmp_path)
    refused(lambda: folder.keep_log_until(2), "line 2 is not a JSON object")
    assert tree(tmp_path) == before
    open(folder.log_path, "wb").write(rows(0, 1).encode() + b'{"step": 2, \xff')  # the same at the end: torn
    folder.keep_log_until(2)
    assert "dropped a torn last line" in capsys.readouterr().out


def test_a_config_holding_nan_is_refused_on_resume(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    saved_run(out)
    config = json.load(open(os.path.join(out, "config.json")))
    open(os.path.join(out, "config.json"), "w").write(json.dumps(config | {"lr": float("nan")}))
    before = tree(tmp_path)
    refused(lambda: make_run(out, "--resume"), "--lr nan: nan is not a finite number > 0")
    assert tree(tmp_path) == before


# -----------------------------------------------------------------------------
# odd data


def test_a_data_file_with_a_byte_order_mark_or_an_upper_case_suffix_is_read(tmp_path):
    toy_file(tmp_path / "d.jsonl")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "d.jsonl").read_bytes())
    os.rename(tmp_path / "d.jsonl", tmp_path / "D.JSONL")
    assert data.load_problems(str(tmp_path / "bom.jsonl")) == data.load_problems(str(tmp_path / "D.JSONL"))
    assert len(data.load_problems(str(tmp_path / "D.JSONL"))) == 6


def test_more_evaluation_problems_than_the_test_set_holds_is_all_of_it(tmp_path, keep_signals):
    assert len(make_run(str(tmp_path / "run"), "--eval-problems", "100000").eval_rows) == 256


# -----------------------------------------------------------------------------
# evaluate.py and plot.py


def test_compare_checks_every_model_before_evaluating_any(tmp_path, monkeypatch):
    """The last of three has no final model yet (still training): found before the first two are evaluated."""
    os.makedirs(tmp_path / "unfinished")
    (tmp_path / "unfinished" / "log.jsonl").write_text(rows(0))
    no_evaluation(monkeypatch)
    argv = ["--compare", f"a={TOY}", f"b={TOY}", f"c={tmp_path / 'unfinished'}"]
    refused(lambda: run_main(monkeypatch, *argv), "is a run without a final model yet")


def test_merge_of_one_table_twice_says_so(tmp_path, monkeypatch):
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"base": {"n": 1, "pass@1": 0.5}}))
    os.symlink(table, tmp_path / "same.json")
    refused(lambda: run_main(monkeypatch, "--merge", str(table), str(tmp_path / "same.json")), "is given twice")


def test_plot_never_writes_over_a_runs_log(tmp_path, monkeypatch):
    write_run(tmp_path / "run", rows(0, 1))
    before = tree(tmp_path)
    log = str(tmp_path / "run" / "log.jsonl")
    monkeypatch.setattr(sys, "argv", ["plot.py", str(tmp_path / "run"), "--out", log])
    refused(plot.main, "exists and is not a figure (a PNG that Matplotlib drew): it is left as it is")
    assert tree(tmp_path) == before


def test_plot_of_two_runs_with_one_name_says_so(tmp_path, monkeypatch):
    write_run(tmp_path / "a" / "run", rows(0))
    write_run(tmp_path / "b" / "run", rows(0))
    monkeypatch.setattr(sys, "argv", ["plot.py", str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")])
    refused(plot.main, "two runs are named 'run': name them, NAME=FOLDER")


def test_a_users_file_beside_out_named_like_a_temporary_file_is_left_alone(tmp_path, monkeypatch):
    """evaluate.py checked that --out could be written by writing and removing <out>.tmp: a user's file of that name
    was emptied, then deleted."""
    (tmp_path / "e.json.tmp").write_text("the user's own")
    monkeypatch.setattr("evaluate.evaluate_model", lambda *a: {"n": 1, "pass@1": 0.5})
    run_main(monkeypatch, "--dataset", "toy", "--n", "1", "--out", str(tmp_path / "e.json"))
    assert (tmp_path / "e.json.tmp").read_text() == "the user's own" and sorted(os.listdir(tmp_path)) == ["e.json", "e.json.tmp"]


def test_a_key_a_user_added_to_config_json_stays_on_resume(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    saved_run(out)
    config = json.load(open(os.path.join(out, "config.json")))
    open(os.path.join(out, "config.json"), "w").write(json.dumps(config | {"note": "the good one"}))
    make_run(out, "--resume", "--steps", "3")
    assert json.load(open(os.path.join(out, "config.json")))["note"] == "the good one"


def test_a_file_where_a_checkpoint_is_written_first_does_not_stop_every_save(tmp_path, keep_signals):
    """A file `final.tmp` (what evaluate.py --out <run>/final left) made every later save fail, as a full disk."""
    out = str(tmp_path / "run")
    run = make_run(out, "--steps", "1")
    for name in ("final.tmp", "step_000001.tmp"):
        open(os.path.join(out, name), "w").write("left over")
    run.save_final()
    assert sorted(os.listdir(out)) == [".lock", "config.json", "final", "step_000001"]
