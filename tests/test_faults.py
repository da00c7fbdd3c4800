"""Faults and bad input, tried as a user would: nothing is lost, and every refusal is one line.

Run folders (no run wiped by accident, one run per folder), --resume (the log read before it is changed,
the run's own options), option ranges, data read exactly as written, prompts too long for the model,
Ctrl-C. The end-to-end cases run the scripts themselves (marked slow)."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import trainer
from conftest import ROOT, trainer_setup
from plumbing.run_folder import RunFolder
from tasks import data

SMALL = [
    "--prompts-per-step",
    "2",
    "--group-size",
    "2",
    "--max-new-tokens",
    "8",
    "--eval-problems",
    "4",
    "--eval-every",
    "2",
    "--micro-batch",
    "8",
    "--save-every",
    "2",
]


def script(name, *args, wait=True, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, os.path.join(ROOT, name), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kw)


def last_line(proc):
    return proc.stderr.strip().splitlines()[-1]


def snapshot(folder):
    return {
        os.path.relpath(os.path.join(d, f), folder): os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(folder)
        for f in files
        if f != ".lock"
    }


# -----------------------------------------------------------------------------
# options are checked when parsed


BAD_OPTIONS = [
    ["--steps", "-5"],
    ["--steps", "0"],
    ["--keep", "-1"],
    ["--keep", "0"],
    ["--top-p", "0"],
    ["--top-p", "1.5"],
    ["--group-size", "1"],
    ["--save-every", "0"],
    ["--eval-every", "0"],
    ["--micro-batch", "0"],
    ["--max-new-tokens", "0"],
    ["--lr", "nan"],
    ["--lr", "inf"],
    ["--lr", "-1e-6"],
    ["--grad-clip", "nan"],
    ["--grad-clip", "0"],
    ["--temperature", "-1"],
    ["--kl-coef", "inf"],
    ["--clip-eps", "1"],
    ["--updates-per-batch", "0"],
    ["--prompts-per-step", "0"],
    ["--rollout-batch", "0"],
    ["--top-k", "-2"],
    ["--weight-decay", "nan"],
    ["--warmup", "-1"],
    ["--eval-problems", "0"],
    ["--seed", "-3"],
    ["--seed", str(2**32)],  # numpy's seeds end at 2^32 - 1
    ["--seed", str(2**64)],
    ["--steps", "abc"],
]


@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=lambda b: " ".join(b))
def test_every_numeric_option_has_its_range(bad, capsys):
    with pytest.raises(SystemExit) as err:
        trainer.parser("x", "runs/x").parse_args(bad)
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and bad[0] in message and "error" in message


@pytest.mark.parametrize(
    "bad", [["--limit", "0"], ["--n", "3"], ["--batch-size", "0"], ["--top-p", "0"], ["--trials", "0"], ["--seed", str(2**64)]]
)
def test_evaluate_options_are_checked_too(bad, capsys):
    import evaluate

    with pytest.raises(SystemExit) as err:
        evaluate.parser().parse_args(bad)
    message = capsys.readouterr().err
    assert err.value.code == 2 and message.count("\n") == 1 and bad[0] in message, (bad, message)


# -----------------------------------------------------------------------------
# the run folder


def test_a_folder_is_locked_by_its_run(tmp_path):
    first = RunFolder(str(tmp_path / "run"))
    first.claim(resume=False, overwrite=False)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from plumbing.run_folder import RunFolder; "
        "RunFolder(sys.argv[2]).claim(resume=True, overwrite=False)"
    )
    proc = subprocess.run([sys.executable, "-c", code, ROOT, str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        f"error: another run is using {tmp_path / 'run'} (pid {os.getpid()}); wait for it to end or choose another --out"
    )


def log_lines(n):
    return "".join(json.dumps({"step": i, "reward": i / 10}) + "\n" for i in range(n))


def test_resume_drops_only_a_torn_last_line(tmp_path, capsys):
    folder = RunFolder(str(tmp_path))
    open(folder.log_path, "w").write(log_lines(10) + '{"step": 10, "rew')
    folder.keep_log_until(8)
    assert open(folder.log_path).read() == log_lines(9)  # steps 0..8: the rest will be run (and logged) again
    assert "dropped a torn last line" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["\x00\x00garbage", "42", '"text"', "[1, 2]", "null", '{"step": "3"}'])
def test_resume_refuses_a_bad_line_inside_the_log_and_changes_nothing(tmp_path, bad):
    folder = RunFolder(str(tmp_path))
    lines = log_lines(10).splitlines(keepends=True)
    lines[4] = bad + "\n"
    text = "".join(lines)
    open(folder.log_path, "w").write(text)
    with pytest.raises(SystemExit, match="line 5 is not a JSON object with an integer step; the log was not changed") as err:
        folder.keep_log_until(8)
    assert "\n" not in str(err.value)
    assert open(folder.log_path).read() == text


def test_the_log_is_strict_json(tmp_path):
    """A skipped step's grad_norm is NaN: written null (a bare NaN is not JSON, and strict readers refuse it)."""
    folder = RunFolder(str(tmp_path))
    folder.log({"step": 1, "grad_norm": float("nan"), "loss": float("-inf"), "reward": 0.5})

    def refuse(constant):
        raise ValueError(constant)

    assert json.loads(open(folder.log_path).read(), parse_constant=refuse) == {
        "step": 1,
        "grad_norm": None,
        "loss": None,
        "reward": 0.5,
    }


def sharpen_parser():
    p = trainer.parser("x", "runs/x")
    p.add("--mode", choices=("sharpen", "tempered", "entropy", "entropy-seq", "self-certainty", "majority"), default="sharpen")
    p.prog = "train_sharpen.py"
    return p


@pytest.mark.parametrize(
    "saved,says",
    [
        ({"trainer": "train_task.py", "mode": "task"}, "is a run of train_task.py: resume it with that script"),
        (
            {"mode": "random"},
            "holds --mode 'random': 'random' is not one of this script's choices",
        ),  # before runs named their script
        ({"mode": "sharpen", "top_p": 0.0}, "holds --top-p 0.0: 0.0 is not a number in (0, 1]"),  # edited by hand
    ],
)
def test_resume_rechecks_the_saved_options_against_the_resuming_script(tmp_path, saved, says):
    folder = RunFolder(str(tmp_path))
    json.dump(saved, open(folder.config_path, "w"))
    p = sharpen_parser()
    args = p.parse_args(["--resume", "--out", str(tmp_path)])
    args.trainer = p.prog
    with pytest.raises(SystemExit, match=re.escape(says)) as err:
        folder.resumed_config(args, p)
    assert "\n" not in str(err.value)


def test_resume_on_a_missing_folder_creates_nothing(tmp_path):
    out = tmp_path / "typo"
    with pytest.raises(SystemExit, match="does not exist: check --out"):
        RunFolder(str(out)).claim(resume=True, overwrite=False)
    assert not out.exists()


def make_run(out, *extra):
    return trainer_setup("train_task.py", "--device", "cpu", "--eval-problems", "4", *SMALL, "--out", out, *extra)["run"]


@pytest.mark.parametrize(
    "bad,says",
    [
        (["--dataset", "missing.jsonl"], "no such data file"),
        (["--model", os.path.join(ROOT, "tests")], "has no tokenizer files"),
        (["--template", "{question}"], "--template '{question}' holds {question}"),
    ],
)
def test_overwrite_removes_the_old_run_only_once_the_new_one_is_good(tmp_path, keep_signals, bad, says):
    out = str(tmp_path / "run")
    os.makedirs(os.path.join(out, "step_000002"))
    for name in ("config.json", "log.jsonl", "step_000002/model.safetensors"):
        open(os.path.join(out, name), "w").write("the old run")
    open(os.path.join(out, "config.json"), "w").write('{"trainer": "the old run"}')  # a run of ours: its script named
    before = snapshot(out)
    with pytest.raises(SystemExit, match=re.escape(says)):
        make_run(out, "--overwrite", *bad)
    assert snapshot(out) == before


def test_resume_refuses_fewer_steps_than_the_checkpoint_has(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    run = make_run(out, "--steps", "4")
    run.save(4)
    run.folder._lock.close()  # the run ends
    with pytest.raises(SystemExit, match=re.escape("--steps 2 is below the checkpoint's step 4")) as err:
        make_run(out, "--resume", "--steps", "2")
    assert "\n" not in str(err.value) and [n for n in os.listdir(out) if n.startswith("step_")] == ["step_000004"]


slow = pytest.mark.slow


@slow
def test_a_new_run_never_wipes_an_old_one(tmp_path):
    out = str(tmp_path / "run")
    assert script("train_task.py", "--steps", "2", "--out", out, *SMALL).returncode == 0
    before = snapshot(out)
    again = script("train_task.py", "--steps", "2", "--out", out, *SMALL)
    assert again.returncode == 1 and "--resume" in last_line(again) and "--overwrite" in last_line(again)
    assert "Traceback" not in again.stderr and snapshot(out) == before
    # --overwrite replaces the run, on purpose
    assert script("train_task.py", "--steps", "1", "--out", out, "--overwrite", *SMALL).returncode == 0
    assert [json.loads(line)["step"] for line in open(os.path.join(out, "log.jsonl"))] == [0, 1]


@slow
def test_a_second_run_on_the_same_folder_stops_at_once(tmp_path):
    out = str(tmp_path / "run")
    first = script("train_task.py", "--steps", "200", "--out", out, *SMALL, wait=False)
    try:
        while not os.path.exists(os.path.join(out, "log.jsonl")) and first.poll() is None:
            time.sleep(0.05)
        second = script("train_task.py", "--steps", "2", "--out", out, "--resume", *SMALL)
        assert second.returncode == 1 and last_line(second).startswith(f"error: another run is using {out}")
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()


@slow
def test_resume_keeps_the_runs_options_and_refuses_changes(tmp_path):
    out = str(tmp_path / "run")
    assert script("train_task.py", "--steps", "2", "--out", out, "--lr", "1e-4", *SMALL).returncode == 0
    changed = script("train_task.py", "--steps", "4", "--out", out, "--resume", "--lr", "1e-3", "--group-size", "4")
    assert changed.returncode == 1
    assert "--lr 0.001 (the run has 0.0001)" in last_line(changed) and "--group-size 4 (the run has 2)" in last_line(changed)
    # without those options the run continues as it was configured; --steps may grow
    assert script("train_task.py", "--steps", "4", "--out", out, "--resume").returncode == 0
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["lr"] == 1e-4 and config["group_size"] == 2 and config["steps"] == 4
    assert [json.loads(line)["step"] for line in open(os.path.join(out, "log.jsonl"))] == [0, 1, 2, 3, 4]


@slow
def test_a_damaged_newest_checkpoint_falls_back_on_resume(tmp_path):
    out = str(tmp_path / "run")
    assert script("train_task.py", "--steps", "4", "--out", out, "--keep", "3", *SMALL).returncode == 0
    weights = os.path.join(out, "step_000004", "model.safetensors")
    data_ = bytearray(open(weights, "rb").read())
    data_[-50] ^= 0xFF
    open(weights, "wb").write(data_)
    proc = script("train_task.py", "--steps", "4", "--out", out, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipping checkpoint" in proc.stdout and "resumed from" in proc.stdout and "step_000002" in proc.stdout


@slow
def test_a_diverging_run_stops_and_writes_no_final_model(tmp_path):
    """One step at --lr 1e38 leaves finite weights whose logits overflow: the next step's loss (its samples'
    log-probs are NaN) stops the run before anything is logged or saved."""
    out = str(tmp_path / "run")
    proc = script("train_task.py", "--lr", "1e38", "--warmup", "0", "--steps", "3", "--out", out, *SMALL)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert last_line(proc) == (
        "error: the loss is not finite: the run diverged (a lower --lr may help): stopping without saving "
        "(the last checkpoint is intact; --resume continues from it)"
    )
    assert sorted(os.listdir(out)) == [
        ".lock",
        "config.json",
        "log.jsonl",
        "samples.jsonl",
    ]  # no checkpoint of it, no final/ (samples.jsonl: the step-0 evaluation's)
    strict = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in log.jsonl")) for line in open(f"{out}/log.jsonl")
    ]
    assert [row["step"] for row in strict] == [0, 1]


# -----------------------------------------------------------------------------
# Ctrl-C


@slow
def test_ctrl_c_during_the_imports_exits_quietly():
    # -X importtime writes a line to stderr as each module finishes loading: the first line of a torch submodule
    # says that the script is inside `import torch` (plumbing.options, imported first, has set its handler by then).
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-X", "importtime", os.path.join(ROOT, "train_task.py"), "--steps", "1", "--out", "/nonexistent/never"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    loaded = []  # module names, as each finishes
    for line in proc.stderr:
        loaded.append(line.split("|")[-1].strip())
        if loaded[-1].startswith("torch."):
            break
    assert "plumbing.options" in loaded, "plumbing.options was not imported before torch"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err


@slow
def test_a_second_ctrl_c_stops_at_once(tmp_path):
    # Steps of 256 responses (seconds each): the first Ctrl-C lands as step 1 begins, the second as soon as the run
    # has said it heard the first (two signals sent back to back could reach the handler as one).
    out = str(tmp_path / "run")
    big = ["--prompts-per-step", "32", "--group-size", "8", "--max-new-tokens", "48", "--eval-problems", "4"]
    proc = script("train_task.py", "--steps", "500", "--out", out, "--save-every", "1000", *big, wait=False)
    while not os.path.exists(os.path.join(out, "log.jsonl")) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    for line in proc.stdout:
        if "saving after this step" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "second signal" in err.strip().splitlines()[-1]
    # at once: step 1 was neither finished (logged) nor saved, as the first signal alone would have had it
    assert [json.loads(line)["step"] for line in open(os.path.join(out, "log.jsonl"))] == [0]
    assert not [name for name in os.listdir(out) if name.startswith("step_")]


# -----------------------------------------------------------------------------
# data is read as written


def test_local_json_answers_keep_their_spelling(tmp_path):
    rows = [
        {"question": "a", "answer": 9007199254740993},
        {"question": "b", "answer": 1e25},
        {"question": "c", "answer": 0.1},
        {"question": "d", "answer": "025"},
    ]
    path = tmp_path / "golds.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows).replace("1e+25", "1e25") + "\n")
    assert [r["answer"] for r in data.load_problems(str(path))] == ["9007199254740993", "1e25", "0.1", "025"]
    path = tmp_path / "golds.json"
    path.write_text('[{"question": "a", "answer": 12345678901234567890123}, {"question": "b", "answer": 2.50}]')
    assert [r["answer"] for r in data.load_problems(str(path))] == ["12345678901234567890123", "2.50"]


@pytest.mark.parametrize(
    "content,says",
    [
        ("", "holds no rows"),
        ("42", "holds no rows"),
        ('"text"', "holds no rows"),
        ("[1, 2]", "holds no rows"),
        ("{not json", "not valid JSON"),
    ],
)
def test_empty_or_scalar_files_are_one_line(tmp_path, content, says):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(SystemExit, match=says) as err:
        data.load_or_exit(str(path))
    assert "\n" not in str(err.value)


def test_a_hub_name_without_network_says_what_to_do(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'HuggingFaceH4/MATH-500' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SystemExit) as err:
        data.load_or_exit("math500")
    message = str(err.value)
    assert "\n" not in message and "local file" in message and "DATA_DIR" in message and "HF_DATASETS_OFFLINE" in message


def test_prompts_too_long_for_the_model_are_dropped_with_a_count(toy_path):
    from types import SimpleNamespace

    from plumbing.loading import load_tokenizer

    tok = load_tokenizer(toy_path)
    config = SimpleNamespace(max_position_embeddings=28)  # 28 positions - 8 new tokens: room for 20
    rows = [{"question": "1+2", "answer": "3"}, {"question": "+".join(["1"] * 60), "answer": "60"}]
    with pytest.warns(UserWarning, match="dropped 1 of 2 prompts longer than 20 tokens"):
        kept = data.drop_long_prompts(rows, tok, "{problem}:", config, 8, "training set")
    assert kept == [dict(rows[0], prompt_ids=tok.encode("1+2:", add_special_tokens=False))]  # with the ids the rollout reads
    with pytest.warns(UserWarning), pytest.raises(SystemExit, match="every prompt is longer"):
        data.drop_long_prompts(rows[1:], tok, "{problem}:", config, 8, "training set")
    with pytest.raises(SystemExit, match="leaves no room"):
        data.drop_long_prompts(rows, tok, "{problem}:", config, 28, "training set")
    assert len(data.drop_long_prompts(rows, tok, "{problem}:", SimpleNamespace(), 8, "x")) == 2  # no limit known


@pytest.mark.parametrize(
    "line,says",
    [
        ('{"question": "a", "answer": true}', "row 1 holds true in its 'answer' column: write it as a string or a number"),
        ('{"question": "a", "answer": [1, 2]}', "row 1 holds a list in its 'answer' column"),
        ('{"question": {"x": 1}, "answer": "2"}', "row 1 holds an object in its 'question' or 'problem' column"),
        ('{"question": "a", "ans', "not valid JSON (line 2: "),  # the file's own line, not the line's first
    ],
)
def test_golds_and_questions_are_text_or_numbers_and_errors_name_their_line(tmp_path, line, says):
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "1+1", "answer": "2"}\n' + line + "\n")
    with pytest.raises(SystemExit, match=re.escape(says)) as err:
        data.load_or_exit(str(path))
    assert "\n" not in str(err.value)


def test_empty_questions_are_dropped_with_a_count(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps({"question": q, "answer": "1"}) for q in ("1+0", "", "  \t", "0+1")) + "\n")
    with pytest.warns(UserWarning, match="dropped 2 rows whose question is empty"):
        assert [r["question"] for r in data.load_problems(str(path))] == ["1+0", "0+1"]


@pytest.mark.parametrize(
    "template,says",
    [
        ("{problem} {x}", "holds {problem}, {x}"),
        ("{0}", "holds {0}"),
        ("{}", "holds {}"),
        ("{problem", "cannot be filled (expected '}' before end of string)"),
        ("Solve:", "holds no field"),
        ("", "holds no field"),
        ("{problem:%}", "cannot be filled"),
    ],
)
def test_a_template_must_hold_problem_and_nothing_else(template, says):
    with pytest.raises(SystemExit, match=re.escape(says)) as err:
        data.check_template(template)
    assert "\n" not in str(err.value) and "{problem}" in str(err.value)


def test_good_templates_pass_as_they_are():
    for template in ("{problem}", "Q: {problem} A: {problem}", "{problem} \\boxed{{}}"):
        assert data.check_template(template) == template


@pytest.mark.parametrize(
    "name,content,says",
    [
        ("latin1.jsonl", b'{"question": "1+1", "answer": "\xff"}\n', "is not UTF-8 text (byte 31: invalid start byte)"),
        ("cut.parquet", b"PAR1\x00\x01", "could not be read as parquet"),
        ("blank.jsonl", b'{"question": "", "answer": "1"}\n', "no row has both a question and a readable gold answer"),
    ],
)
def test_unreadable_data_files_are_one_line_naming_the_file(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.warns() if name == "blank.jsonl" else contextlib.nullcontext(), pytest.raises(SystemExit) as err:
        data.load_or_exit(str(path))
    assert str(err.value).startswith(f"error: {path}") and says in str(err.value) and "\n" not in str(err.value)
