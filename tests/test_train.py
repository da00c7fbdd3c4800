"""End-to-end: the scripts themselves, run as a user runs them (small settings). Marked slow."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import ROOT

pytestmark = pytest.mark.slow
TOY = os.path.join(ROOT, "toy_models", "toy")
SMALL = [
    "--prompts-per-step",
    "4",
    "--group-size",
    "4",
    "--max-new-tokens",
    "16",
    "--eval-problems",
    "8",
    "--eval-every",
    "2",
    "--micro-batch",
    "8",
]
TIMING = ("step_time", "tokens_per_s")


def run(script, *args, check=True, **kw):
    """python SCRIPT (a path from the root) or, for a module in a folder (toy_models.build_toy), python -m MODULE."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [os.path.join(ROOT, script)] if script.endswith(".py") else ["-m", script]
    proc = subprocess.run([sys.executable, *command, *args], cwd=ROOT, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def read_log(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def params(path):
    return dict(AutoModelForCausalLM.from_pretrained(path).named_parameters())


def test_build_toy_smoke(tmp_path):
    run("toy_models.build_toy", "--variant", "toy", "--steps", "3", "--out", str(tmp_path))
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "toy")
    tok = AutoTokenizer.from_pretrained(tmp_path / "toy")
    assert tok.decode(tok.encode("3+5:")) == "3+5:"
    assert 1e5 < sum(p.numel() for p in model.parameters()) < 5e6


def test_two_steps_change_every_parameter_and_log_every_metric(tmp_path):
    out = str(tmp_path / "task")
    run("train_task.py", "--steps", "2", "--out", out, *SMALL)
    before, after = params(TOY), params(os.path.join(out, "final"))
    unchanged = [name for name, p in before.items() if torch.equal(p, after[name])]
    assert not unchanged, f"parameters that did not move: {unchanged}"
    log = read_log(out)
    assert [row["step"] for row in log] == [0, 1, 2]  # step 0: the base model's evaluation
    assert log[1]["lr"] == pytest.approx(3e-4 * 0.1)  # the lr step 1's update used (warm-up starts at 0.1 x lr)
    for key in (
        "reward",
        "reward_std",
        "accuracy",
        "no_answer",
        "logp_ref",
        "logp_ref_per_token",
        "length",
        "truncated",
        "zero_std_groups",
        "entropy",
        "kl",
        "grad_norm",
        "step_time",
        "tokens_per_s",
        "eval_accuracy",
    ):
        assert key in log[-1], key
    for row in log[1:]:  # 16 responses in groups of 4, rewarded r in {0, 1}
        assert row["reward"] == row["accuracy"] and (16 * row["accuracy"]).is_integer()  # --mode task: R = r
        assert row["reward_std"] == pytest.approx(math.sqrt(row["accuracy"] * (1 - row["accuracy"])))  # a 0/1 reward's
        assert (4 * row["zero_std_groups"]).is_integer() and row["loss"] != 0 and row["grad_norm"] > 0
    # step 1 sampled from the base model itself, pi_theta = pi_ref: k1 KL 0 (to float error, ~1e-7); step 2 from the
    # policy one update (lr 3e-5) later: 7e-4 in this seeded run
    assert abs(log[1]["kl"]) < 1e-5 and abs(log[2]["kl"]) > 1e-4


def test_fixed_length_samples_all_have_max_length(tmp_path):
    out = str(tmp_path / "sharpen")
    run("train_sharpen.py", "--steps", "1", "--fixed-length", "--out", out, *SMALL)
    assert read_log(out)[1]["length"] == 16


def test_kill_and_resume_gives_the_same_run(tmp_path):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    args = ["--steps", "6", "--save-every", "3", "--keep", "5", *SMALL]
    run("train_task.py", "--out", straight, *args)
    # Start the same run, SIGKILL it once the step-3 checkpoint is complete, then resume.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "train_task.py", "--out", killed, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = os.path.join(killed, "step_000003", "COMPLETE")
    while not os.path.exists(marker) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    run("train_task.py", "--out", killed, "--resume", *args)
    a, b = read_log(straight), read_log(killed)
    assert [r["step"] for r in b] == [0, 1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}
    pa, pb = params(os.path.join(straight, "final")), params(os.path.join(killed, "final"))
    assert all(torch.equal(pa[n], pb[n]) for n in pa)


def test_sigterm_saves_a_checkpoint_first(tmp_path):
    out = str(tmp_path / "run")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "train_task.py", "--out", out, "--steps", "50", "--save-every", "100", *SMALL],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not os.path.exists(os.path.join(out, "log.jsonl")) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "--resume continues" in err
    saved = [d for d in os.listdir(out) if d.startswith("step_")]
    assert len(saved) == 1 and os.path.exists(os.path.join(out, saved[0], "COMPLETE"))


def test_checkpoint_loads_in_evaluate(tmp_path):
    out = str(tmp_path / "task")
    run("train_task.py", "--steps", "1", "--out", out, *SMALL)
    ckpt = os.path.join(out, "step_000001")
    AutoModelForCausalLM.from_pretrained(ckpt)
    proc = run(
        "evaluate.py",
        "--dataset",
        "toy",
        "--limit",
        "8",
        "--n",
        "4",
        "--compare",
        f"base={TOY}",
        f"task={out}",
        "--out",
        str(tmp_path / "cmp.json"),
    )
    assert "pass@4" in proc.stdout and "maj@4" in proc.stdout
    results = json.load(open(tmp_path / "cmp.json"))
    assert set(results) == {"base", "task"}
    for table in results.values():  # 8 problems, 4 samples each
        assert (32 * table["pass@1"]).is_integer() and (8 * table["pass@4"]).is_integer()  # shares of samples / problems
        assert table["pass@1"] <= table["pass@2"] <= table["pass@4"] and table["problems"] == 8 and table["n"] == 4


def test_family_modes_train_and_power_sampling_evaluates(tmp_path):
    for script, mode in (("train_sharpen.py", "majority"), ("train_sharpen.py", "self-certainty"), ("train_task.py", "random")):
        out = str(tmp_path / mode)
        run(script, "--mode", mode, "--steps", "1", "--out", out, *SMALL)
        reward = read_log(out)[1]["reward"]
        if mode == "self-certainty":  # logsumexp(z) - mean z = KL(uniform || pi) + log V >= log V, V = 17 toy tokens
            assert reward >= math.log(17), reward
        else:  # a 0/1 reward per response: a share of the 16
            assert 0 <= reward <= 1 and (16 * reward).is_integer(), (mode, reward)
    result = tmp_path / "power.json"
    args = ["--dataset", "toy", "--limit", "4", "--n", "2", "--max-new-tokens", "16", "--out", str(result)]
    run(
        "evaluate.py",
        *args,
        "--compare",
        f"power={tmp_path / 'majority'}",
        "--power-sample",
        "--blocks",
        "2",
        "--mcmc-steps",
        "2",
    )
    power = json.load(open(result))["power"]
    assert power["tokens_per_answer"] > power["length"] > 0  # the chain sampled more than it kept
    assert power["train_tokens"] > 0  # a run: its training cost is reported too


def test_evaluate_under_torchrun():
    """Two processes split the problems (train_task.py under torchrun: tests/test_multinode.py)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]  # a free port
    proc = subprocess.run(
        cmd + ["evaluate.py", "--dataset", "toy", "--limit", "6", "--samples", "2"],
        cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"problems": 6' in proc.stdout  # both ranks' problems were gathered
