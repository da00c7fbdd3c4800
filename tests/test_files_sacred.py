"""The user's files are sacred (faults, round four): a refused command changes no byte and leaves no folder, a run
resumes only against the model and data it started from, --out and --overwrite never replace what is not ours,
and the smaller faults of that round. Each refusal is one line; the tree is compared byte for byte around it."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

import evaluate
import plot
import trainer
from conftest import ROOT, trainer_setup
from plumbing import checkpoint, distributed, options
from plumbing.run_folder import RunFolder
from tasks import data

TOY_ALIGNED = os.path.join(ROOT, "toy_models", "toy-aligned")
SMALL = ["--device", "cpu", "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "8"]
SMALL += ["--eval-problems", "4", "--micro-batch", "8"]


def make_run(out, *extra):
    return trainer_setup("train_task.py", *SMALL, "--out", out, *extra)["run"]


def saved_run(out, *extra):
    """A run with a checkpoint at step 2, ended (its lock let go)."""
    run = make_run(out, *extra)
    run.save(2)
    run.folder._lock.close()
    return run


def tree(root):
    """Every folder, every file's bytes by SHA-256 and every link's target, under root (hidden ones too): what 'no
    byte changed' compares."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = "folder"
        for name in files:
            path = os.path.join(folder, name)
            is_link = os.path.islink(path)
            found[os.path.relpath(path, root)] = (
                os.readlink(path) if is_link else hashlib.sha256(open(path, "rb").read()).hexdigest()
            )
    return found


def refused(call, says):
    """call() stops with one line holding `says`; returns the line."""
    with pytest.raises(SystemExit) as err:
        call()
    message = str(err.value)
    assert says in message and "\n" not in message, message
    return message


def copy_toy(path, source=None):
    shutil.copytree(source or os.path.join(ROOT, "toy_models", "toy"), path)
    return str(path)


def toy_file(path, answers=("10", "11", "9", "14", "12", "7")):
    """A local data file of toy problems."""
    questions = ["1+2+3+4", "2+2+3+4", "1+1+3+4", "5+2+3+4", "3+3+3+3", "1+1+1+4"]
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(questions, answers)))
    return str(path)


def run_main(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["evaluate.py", *argv])
    evaluate.main()


def no_evaluation(monkeypatch):
    """Make evaluating a model fail the test: what is refused must be refused before any evaluation."""
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a: pytest.fail("a model was evaluated before the refusal"))


# -----------------------------------------------------------------------------
# 1. --overwrite never wrecks a folder that is not a run of ours


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_a_model_folder_is_never_a_run_folder(tmp_path, keep_signals, flags):
    model = copy_toy(tmp_path / "M")
    before = tree(tmp_path)
    says = "is not a run folder of train_task.py or train_sharpen.py (its config.json names no trainer"
    message = refused(lambda: make_run(model, "--model", model, *flags), says)
    assert "--overwrite" not in message  # no advice that would destroy it
    assert tree(tmp_path) == before  # not even a lock file


def test_overwrite_still_replaces_a_run_of_ours(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    saved_run(out)
    run = make_run(out, "--overwrite")
    assert sorted(os.listdir(out)) == [".lock", "config.json"]  # the old run's log and checkpoint are gone
    assert json.load(open(os.path.join(out, "config.json")))["trainer"] == run.args.trainer


# -----------------------------------------------------------------------------
# 2, 5. evaluate.py --out never replaces a file it did not write, and says so before evaluating


def test_out_onto_the_dataset_it_reads_is_refused_first(tmp_path, monkeypatch):
    dataset = toy_file(tmp_path / "D.jsonl")
    before = tree(tmp_path)
    no_evaluation(monkeypatch)
    argv = ["--model", os.path.join(ROOT, "toy_models", "toy"), "--dataset", dataset, "--template", "{problem}:"]
    refused(lambda: run_main(monkeypatch, *argv, "--out", dataset), "exists and is not a table that evaluate.py --out wrote")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("where", ["folder", "final"])
def test_out_onto_a_folder_is_refused_first_and_leaves_no_tmp(tmp_path, monkeypatch, where):
    folder = tmp_path / "run" / "final" if where == "final" else tmp_path
    os.makedirs(folder, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    before = tree(tmp_path)
    no_evaluation(monkeypatch)
    refused(lambda: run_main(monkeypatch, "--dataset", "toy", "--out", str(folder)), "is a folder: give a file name")
    assert tree(tmp_path) == before


def test_out_replaces_its_own_table_and_figures_but_no_other_png(tmp_path, monkeypatch):
    """A table that --out wrote, and a figure that Matplotlib drew, are replaced; a PNG of another kind is not."""
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a: {"n": 2, "pass@1": 0.5, "pass@2": 0.75})
    out = tmp_path / "e.json"
    run_main(monkeypatch, "--dataset", "toy", "--n", "2", "--out", str(out))
    assert sorted(os.listdir(tmp_path)) == ["e.json", "e_pass_at_k.png"]
    run_main(monkeypatch, "--dataset", "toy", "--n", "2", "--out", str(out))  # again: its own files, replaced
    (tmp_path / "e_pass_at_k.png").write_bytes(b"\x89PNG\r\n\x1a\n a photo")
    before = tree(tmp_path)
    refused(lambda: run_main(monkeypatch, "--dataset", "toy", "--n", "2", "--out", str(out)), "is not a figure")
    assert tree(tmp_path) == before


def test_out_in_new_folders_makes_them_only_when_it_writes(tmp_path, monkeypatch):
    out = tmp_path / "new" / "deeper" / "e.json"
    refused(lambda: run_main(monkeypatch, "--model", str(tmp_path / "missing"), "--out", str(out)), "could not load")
    assert os.listdir(tmp_path) == []  # a refused command leaves no empty folder


# -----------------------------------------------------------------------------
# 3. a run resumes against the model and data it started from, or stops with one line


def test_resume_from_another_folder_uses_the_runs_own_model(tmp_path, keep_signals, monkeypatch):
    """config.json held --model as typed, read from the working folder at --resume: another folder's `m` became
    π_ref. The run records the model's absolute path and checksums, and the problems' checksums."""
    a, b = tmp_path / "A", tmp_path / "B"
    model = copy_toy(a / "m")
    copy_toy(b / "m", TOY_ALIGNED)  # another model under the same relative name
    monkeypatch.chdir(a)
    saved_run("run", "--model", "m")
    monkeypatch.chdir(b)
    run = make_run(str(a / "run"), "--resume")
    assert run.args.model == model
    weights = {n: p for n, p in run.ref.named_parameters()}
    from plumbing.loading import load_model

    for name, p in load_model(model, "cpu").named_parameters():
        assert (weights[name] == p).all(), name
    run.folder._lock.close()
    # the run's model, changed in place: refused, one line, nothing written
    shutil.rmtree(model)
    copy_toy(model, TOY_ALIGNED)
    before = tree(tmp_path)
    refused(lambda: make_run(str(a / "run"), "--resume"), f"the model {model} is not what the run started from (")
    assert tree(tmp_path) == before
    # the run's own model, moved: found by its files, wherever it is now
    moved = copy_toy(tmp_path / "moved")
    assert make_run(str(a / "run"), "--resume", "--model", moved).args.model == moved


def test_resume_refuses_data_that_changed(tmp_path, keep_signals):
    out, dataset = str(tmp_path / "run"), tmp_path / "d.jsonl"
    saved_run(out, "--dataset", toy_file(dataset), "--eval-dataset", "toy", "--model", os.path.join(ROOT, "toy_models", "toy"))
    toy_file(dataset, answers=("10", "11", "9", "14", "12", "8"))  # one gold answer edited
    before = tree(tmp_path)
    refused(lambda: make_run(out, "--resume"), "the training set is not what the run started from")
    assert tree(tmp_path) == before


# -----------------------------------------------------------------------------
# 6. a stray file of the system's own does not make a checkpoint bad


def test_a_hidden_stray_file_leaves_a_checkpoint_good(tmp_path, keep_signals, capsys):
    out = str(tmp_path / "run")
    saved_run(out)
    for name in (".DS_Store", "._model.safetensors"):
        open(os.path.join(out, "step_000002", name), "w").write("Finder")
    assert checkpoint.latest(out) == os.path.join(out, "step_000002")
    open(os.path.join(out, "step_000002", "stray.bin"), "w").write("a file a loader could read")
    message = refused(lambda: checkpoint.latest(out), "no good checkpoint")
    assert "restore one from a copy" in message and "--overwrite would delete" in message


# -----------------------------------------------------------------------------
# 7. fewer evaluation problems than ranks


def test_fewer_evaluation_problems_than_ranks_is_one_line_before_anything(tmp_path, keep_signals, monkeypatch):
    monkeypatch.setattr(distributed, "setup", lambda device: distributed.Dist(rank=0, world=2))
    out = tmp_path / "run"
    refused(lambda: make_run(str(out), "--eval-problems", "1"), "--eval-problems: 1 problem for 2 processes")
    assert not out.exists()


@pytest.mark.slow
def test_torchrun_with_fewer_problems_than_ranks(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", os.path.join(ROOT, "evaluate.py")]
    proc = subprocess.run(
        [*cmd, "--dataset", "toy", "--samples", "2", "--limit", "1"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    said = "error: --dataset toy --limit 1: 1 problem for 2 processes, which need one each: give at least 2"
    assert proc.returncode != 0 and proc.stderr.count(said) == 2  # each rank, one line
    assert "IndexError" not in proc.stderr and "gloo" not in proc.stderr.lower()


# -----------------------------------------------------------------------------
# 8. a tokenizer larger than the model's vocabulary


def test_a_tokenizer_larger_than_the_vocabulary_is_one_line(tmp_path, keep_signals, monkeypatch):
    model = copy_toy(tmp_path / "M")
    spec = json.load(open(os.path.join(model, "tokenizer.json")))
    spec["model"]["vocab"]["+"] = 40  # the toy model has 17 tokens
    json.dump(spec, open(os.path.join(model, "tokenizer.json"), "w"))
    says = "the tokenizer gives token id 40 (18 tokens), but the model's vocabulary has 17"
    refused(lambda: run_main(monkeypatch, "--model", model, "--dataset", "toy", "--n", "2", "--limit", "2"), says)
    before = tree(tmp_path)
    refused(lambda: make_run(str(tmp_path / "run"), "--model", model), says)
    assert tree(tmp_path) == before


# -----------------------------------------------------------------------------
# 9, 16. --compare and --merge: every model named once, every option used, no pass@k of one greedy answer


@pytest.mark.parametrize(
    "argv,says",
    [
        (["--compare", "a=toy_models/toy", "a=toy_models/toy-aligned"], "the name 'a' is given twice"),
        (["--compare", "=toy_models/toy"], "write NAME=PATH"),
        (["--compare", "a=toy_models/toy", "--model", "toy_models/toy"], "--model would not be used"),
        (["--merge", "a.json", "b.json", "--n", "64", "--dataset", "toy"], "--dataset, --n would not be used"),
        (["--temperature", "0", "--n", "8"], "--temperature 0 is greedy: its 8 samples would be one response 8 times"),
    ],
)
def test_what_evaluate_would_ignore_or_drop_is_refused_first(monkeypatch, argv, says):
    no_evaluation(monkeypatch)
    refused(lambda: run_main(monkeypatch, *argv), says)


# -----------------------------------------------------------------------------
# 10, 16. a torn last line in log.jsonl; a run still training


def write_run(folder, log, final_step=None):
    """A run folder as a trainer leaves it, for what evaluate.py and plot.py read: config.json, log.jsonl, final/."""
    os.makedirs(folder / "final")
    (folder / "config.json").write_text(json.dumps({"trainer": "train_task.py", "prompts_per_step": 2, "group_size": 2}))
    (folder / "log.jsonl").write_text(log)
    marker = {"sha256": {}} | ({} if final_step is None else {"step": final_step})
    (folder / "final" / "COMPLETE").write_text(json.dumps(marker))


def rows(*steps):
    return "".join(json.dumps({"step": s, "length": 10.0, "step_time": 1.0, "eval_accuracy": 0.5}) + "\n" for s in steps)


def test_plot_drops_a_torn_last_line_and_refuses_a_bad_one(tmp_path, monkeypatch, capsys):
    write_run(tmp_path / "run", rows(0, 1, 2) + '{"step": 3, "len')
    out = tmp_path / "curves.png"
    monkeypatch.setattr(sys, "argv", ["plot.py", str(tmp_path / "run"), "--out", str(out)])
    plot.main()
    assert out.read_bytes().startswith(b"\x89PNG") and "dropped a torn last line" in capsys.readouterr().out
    (tmp_path / "run" / "log.jsonl").write_text(rows(0) + "garbage\n" + rows(2))
    before = tree(tmp_path)
    refused(plot.main, "line 2 is not a JSON object with an integer step")
    assert tree(tmp_path) == before


def test_compare_reads_every_log_before_evaluating(tmp_path, monkeypatch):
    write_run(tmp_path / "run", rows(0) + "[1, 2]\n" + rows(2))
    no_evaluation(monkeypatch)
    refused(lambda: run_main(monkeypatch, "--compare", f"r={tmp_path / 'run'}"), "line 2 is not a JSON object")


def test_compare_counts_the_cost_of_the_steps_that_made_the_final_model(tmp_path, monkeypatch, capsys):
    """A run resumed with more --steps, still training: its old final/ (2 steps) is evaluated, with the cost of
    those 2 steps, not of the 4 it has logged since; a torn last line is dropped."""
    write_run(tmp_path / "run", rows(0, 1, 2, 3, 4) + '{"ste', final_step=2)
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a: {"n": 1, "pass@1": 0.5})
    out = tmp_path / "e.json"
    run_main(monkeypatch, "--compare", f"r={tmp_path / 'run'}", "--n", "1", "--out", str(out))
    cost = json.loads(out.read_text())["r"]
    assert cost["train_tokens"] == 3 * 10.0 * 4 and cost["train_time"] == 3.0  # steps 0, 1, 2 (batch 2 x 2)


def test_a_runs_final_model_records_its_step(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    make_run(out, "--steps", "1").save_final()
    assert checkpoint.step_of(os.path.join(out, "final")) == 1


# -----------------------------------------------------------------------------
# 11, 16. SIGHUP saves as SIGTERM does; no signal turns an exit into a traceback


def test_sighup_stops_the_run_as_sigterm_does(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    run = make_run(out)
    assert signal.getsignal(signal.SIGHUP) == run._on_signal
    os.kill(os.getpid(), signal.SIGHUP)
    refused(lambda: run.stop_if_signalled(1), "stopped by signal 1 after step 1; --resume continues")
    assert os.path.isdir(os.path.join(out, "step_000001"))
    # the run is saved and exiting: a second signal during the shutdown is ignored, not a traceback
    assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))


@pytest.mark.slow
def test_closing_the_terminal_saves_the_run(tmp_path):
    """A run in a terminal that is closed: SIGHUP, and every write to the terminal fails (EIO) from then on."""
    import pty
    import select
    import time

    out = str(tmp_path / "run")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the training run, its terminal the pty
        argv = [sys.executable, os.path.join(ROOT, "train_task.py"), "--steps", "500", "--out", out, "--save-every", "1000"]
        os.execve(sys.executable, argv, dict(os.environ, OMP_NUM_THREADS="1"))
    while not os.path.exists(os.path.join(out, "log.jsonl")):  # step 0 is logged: it is training
        if select.select([fd], [], [], 0.1)[0]:
            os.read(fd, 1 << 16)
    time.sleep(0.5)
    os.close(fd)  # the terminal closes
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1  # stopped as by SIGTERM (not killed by the signal: -1)
    saved = [name for name in os.listdir(out) if name.startswith("step_")]
    steps = [json.loads(line)["step"] for line in open(os.path.join(out, "log.jsonl"))]
    assert saved == [f"step_{steps[-1]:06d}"] and checkpoint.damage(os.path.join(out, saved[0])) is None


# -----------------------------------------------------------------------------
# 12. no memory while a checkpoint is hashed; a full disk while a figure is written


def test_no_memory_while_hashing_a_checkpoint_is_one_line_and_leaves_no_tmp(tmp_path, keep_signals, monkeypatch):
    out = str(tmp_path / "run")
    run = make_run(out)

    def no_memory(path):
        raise MemoryError

    monkeypatch.setattr(checkpoint, "_sha256", no_memory)
    refused(lambda: run.save(1), "cannot write")
    assert sorted(os.listdir(out)) == [".lock", "config.json"]


def test_a_full_disk_while_writing_a_figure_is_one_line_and_leaves_no_tmp(tmp_path):
    """RLIMIT_FSIZE makes every write past 4 kB fail as a full disk does (EFBIG; Python ignores SIGXFSZ)."""
    write_run(tmp_path / "run", rows(0, 1, 2))
    code = "import resource, sys, plot; resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY)); plot.main()"
    argv = [sys.executable, "-c", code, str(tmp_path / "run"), "--out", str(tmp_path / "curves.png")]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: cannot write {tmp_path / 'curves.png'} (File too large): free some space (a file size limit is reached), "
        f"then run again (what was written before is intact)"
    ], proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no temporary file


# -----------------------------------------------------------------------------
# 13. --merge joins tables of the same problems, and prints n


def table(path, problems, n):
    path.write_text(
        json.dumps({path.stem: {"n": n, "problems": 4, "pass@1": 0.5, "dataset": "toy", "problems_checksum": problems}})
    )
    return str(path)


def test_merge_refuses_tables_of_other_problems_and_prints_n(tmp_path, monkeypatch, capsys):
    a, b, c = table(tmp_path / "a.json", "x", 16), table(tmp_path / "b.json", "x", 256), table(tmp_path / "c.json", "y", 16)
    refused(lambda: run_main(monkeypatch, "--merge", a, c), "other problems: merge tables of the same problems")
    run_main(monkeypatch, "--merge", a, b)
    lines = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(r"n\s+16\s+256", line) for line in lines), lines


def test_a_table_records_its_problems(tmp_path, monkeypatch):
    out = tmp_path / "e.json"
    # the metrics are not this test's business (and pass@k is an exercise, blank in the course's student copy)
    monkeypatch.setattr(evaluate, "summarize", lambda records, *a, **k: {"pass@1": 0.0, "problems": len(records)})
    run_main(monkeypatch, "--dataset", "toy", "--n", "2", "--limit", "3", "--trials", "10", "--out", str(out))
    (record,) = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in --out")).values()
    rows = data.load_problems("toy", "test", 3, 0)
    assert (
        record["dataset"] == "toy"
        and record["problems_checksum"]
        == hashlib.sha256(json.dumps([[r["question"], r["answer"]] for r in rows]).encode()).hexdigest()
    )


def test_out_is_strict_json(tmp_path):
    out = tmp_path / "e.json"
    evaluate.write_results({"power": {"pass@1": 0.5, "entropy": float("nan")}}, str(out))
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}")) == {
        "power": {"pass@1": 0.5, "entropy": None}
    }


# -----------------------------------------------------------------------------
# 14. the job scripts continue an interrupted job


def test_run_toy_continues_an_interrupted_job(tmp_path):
    """A stand-in `python` records each command: the complete arm is kept, the interrupted one resumed."""
    shutil.copy(os.path.join(ROOT, "run_toy.sh"), tmp_path)
    os.makedirs(tmp_path / "plumbing")
    shutil.copy(os.path.join(ROOT, "plumbing", "jobs.sh"), tmp_path / "plumbing")
    os.makedirs(tmp_path / "runs" / "toy-7" / "sharpen" / "final")
    os.makedirs(tmp_path / "runs" / "toy-7" / "task" / "step_000020")
    (tmp_path / "runs" / "toy-7" / "task" / "step_000020" / "COMPLETE").write_text("{}")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\n')
    os.chmod(tmp_path / "bin" / "python", 0o755)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(tmp_path / "run_toy.sh"), "toy", "7"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert calls[0] == "train_task.py --dataset toy --seed 7 --out runs/toy-7/task --resume"
    assert calls[1].startswith("evaluate.py ") and len(calls) == 2
    assert "runs/toy-7/sharpen is complete: kept" in proc.stdout


@pytest.mark.parametrize(
    "holds,then", [([], ""), (["config.json"], " --overwrite"), (["config.json", "step_000002/COMPLETE"], " --resume")]
)
def test_a_job_trains_each_arm_by_what_its_folder_holds(tmp_path, holds, then):
    for name in holds:
        os.makedirs(os.path.dirname(tmp_path / "arm" / name), exist_ok=True)
        (tmp_path / "arm" / name).write_text("{}")
    script = f'python() {{ echo "$@"; }}; source {ROOT}/plumbing/jobs.sh; train train_task.py {tmp_path / "arm"} --seed 1'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == f"train_task.py --seed 1 --out {tmp_path / 'arm'}{then}"


# -----------------------------------------------------------------------------
# 16. the smaller ones


def test_a_config_value_of_the_wrong_type_is_refused_on_resume(tmp_path):
    folder = RunFolder(str(tmp_path))
    json.dump({"lr": "0.0003", "fixed_length": "yes", "steps": 4.5}, open(folder.config_path, "w"))
    p = trainer.parser("x", "runs/x")
    args = p.parse_args(["--resume", "--out", str(tmp_path)])
    args.trainer = p.prog
    message = refused(lambda: folder.resumed_config(args, p), "--fixed-length 'yes': 'yes' is not true or false")
    assert "--lr '0.0003': '0.0003' is not a number" in message and "--steps 4.5: '4.5' is not an integer >= 1" in message


def test_a_log_that_ends_before_the_checkpoint_is_noted(tmp_path, capsys):
    folder = RunFolder(str(tmp_path))
    open(folder.log_path, "w").write(rows(0, 1, 2))
    folder.keep_log_until(4)
    assert "ends at step 2, and the checkpoint is at step 4: the steps in between are not in the log" in capsys.readouterr().out


def test_the_evaluation_set_gets_its_own_template(tmp_path, keep_signals):
    """--dataset a file (the math template) with --eval-dataset toy: the toy's prompts are the toy's '{problem}:'."""
    toy = os.path.join(ROOT, "toy_models", "toy")
    run = make_run(str(tmp_path / "run"), "--dataset", toy_file(tmp_path / "d.jsonl"), "--eval-dataset", "toy", "--model", toy)
    question = run.eval_rows[0]["question"]
    assert run.eval_rows[0]["prompt_ids"] == run.tokenizer.encode(question + ":", add_special_tokens=False)
    assert run.train_rows[0]["prompt_ids"] != run.tokenizer.encode(run.train_rows[0]["question"] + ":", add_special_tokens=False)


def test_a_refused_run_leaves_no_empty_folder(tmp_path, keep_signals):
    out = tmp_path / "new" / "deeper" / "run"
    refused(lambda: make_run(str(out), "--dataset", str(tmp_path / "missing.jsonl")), "no such data file")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", ["folder named .jsonl", "folder"])
def test_a_folder_as_dataset_says_so(tmp_path, kind):
    folder = tmp_path / ("d.jsonl" if kind == "folder named .jsonl" else "d")
    folder.mkdir()
    refused(lambda: data.load_or_exit(str(folder)), "is a folder")


def test_out_that_is_a_file_is_named_so(tmp_path, keep_signals):
    (tmp_path / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    refused(lambda: make_run(str(tmp_path / "notes.txt")), "is a file, not a folder: choose another --out")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("first_has_level", [True, False])
def test_a_missing_level_is_none_whichever_row_lacks_it(tmp_path, first_has_level):
    path = tmp_path / "d.jsonl"
    lines = [{"question": "a", "answer": "1", "level": 3}, {"question": "b", "answer": "2"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in (lines if first_has_level else lines[::-1])))
    levels = {row["question"]: row["level"] for row in data.load_problems(str(path))}
    assert levels == {"a": 3, "b": None}


# -----------------------------------------------------------------------------
# 17. a refused --resume changes nothing, config.json included


def test_a_refused_resume_leaves_every_byte(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    saved_run(out)
    open(os.path.join(out, "log.jsonl"), "w").write("42\n" + rows(1, 2))  # a line that is not an object
    before = tree(tmp_path)
    refused(lambda: make_run(out, "--resume", "--steps", "4"), "line 1 is not a JSON object with an integer step")
    assert tree(tmp_path) == before


def test_saved_values_are_checked_as_their_option_would_be():
    p = options.Parser("x")
    p.add("--lr", type=options.POSITIVE)
    p.add("--name")
    p.add("--flag", action="store_true")
    assert [p.refuses("lr", v) for v in (3e-4, 1)] == [None, None]
    assert p.refuses("lr", True) == "True is not a number" and p.refuses("name", 5) == "5 is not text"
    assert p.refuses("flag", 1) == "1 is not true or false" and p.refuses("flag", False) is None


def test_an_atomic_write_makes_the_mode_a_plain_write_makes(tmp_path):
    """tables, figures and logs written whole (replaced_atomically) get the umask's mode, not mkstemp's private 0600."""
    from plumbing.run_folder import write_json_atomically

    open(tmp_path / "plain", "w").close()
    write_json_atomically(str(tmp_path / "atomic.json"), {"a": 1})
    assert os.stat(tmp_path / "atomic.json").st_mode == os.stat(tmp_path / "plain").st_mode
