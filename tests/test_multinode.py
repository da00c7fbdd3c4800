"""
Several machines, as the README's multi-node command runs them: two torchrun launchers ("nodes") on
localhost, one process each, joined by the c10d rendezvous (gloo). Each node gets its own run folder, as
nodes without a shared filesystem have: only the process that the rendezvous makes global rank 0 may write,
so one folder holds the whole run and the other stays absent (a write keyed on LOCAL_RANK, 0 on both nodes,
would fill both). The run is stopped on one node, and both stop; --resume (the folder copied to both nodes,
as the README says) then ends with the log and the weights of an uninterrupted single-node 2-process run.
The same checkpoint also resumes on 1 process: a different number of processes continues the run (same
prompts, optimizer state and schedule; other samples, announced by a note).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from test_train import SMALL, TIMING, TOY, params, read_log, run

from conftest import ROOT

pytestmark = pytest.mark.slow  # 5 torchrun launchers and 1 plain run per case: ~110 s each on 2 shared cores
STEPS = 6
ARGS = ["--steps", str(STEPS), "--save-every", "2", "--keep", "3", *SMALL]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(launcher, out, *extra, **kw):
    cmd = [*TORCHRUN, *launcher, "train_task.py", *ARGS, "--out", out, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def two_nodes(folders, *extra):
    """One launcher per node, each with its own run folder; the rendezvous decides which holds global rank 0."""
    rdzv = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{free_port()}"]
    return [launch(rdzv, out, *extra) for out in folders]


def children(pid):
    """The processes `pid` started: torchrun starts its workers in a session of their own."""
    kids = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:  # ended meanwhile
            continue
        if ppid == pid:
            kids.append(int(p))
    return kids


def same_rows(a, b):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in a] == [
        {k: v for k, v in row.items() if k not in TIMING} for row in b
    ]


@pytest.mark.parametrize("sharded", [False, True], ids=["replicas", "fsdp"])
def test_two_nodes_run_as_one_stop_together_and_resume(tmp_path, sharded):
    extra = ["--fsdp"] if sharded else []
    straight = str(tmp_path / "straight")
    assert launch(["--standalone", "--nproc_per_node=2"], straight, *extra).wait(timeout=300) == 0

    folders = [str(tmp_path / "node0"), str(tmp_path / "node1")]
    nodes = two_nodes(folders, *extra)
    while not any(os.path.exists(os.path.join(f, "step_000002", "COMPLETE")) for f in folders):
        assert all(n.poll() is None for n in nodes), "a node stopped before the first checkpoint"
        time.sleep(0.01)
    writer = next(i for i, f in enumerate(folders) if os.path.exists(f))
    if sharded:  # the node holding rank 0 dies (its launcher and its worker): the other stops on a broken connection
        for pid in [nodes[writer].pid, *children(nodes[writer].pid)]:
            os.kill(pid, signal.SIGKILL)
    else:  # scancel (or Ctrl-C) on the other node: its launcher passes it on, and both ranks save after the step
        nodes[1 - writer].send_signal(signal.SIGTERM)
    assert all(n.wait(timeout=300) != 0 for n in nodes)
    assert not os.path.exists(folders[1 - writer]), "a process other than global rank 0 wrote"
    assert not os.path.exists(os.path.join(folders[writer], "final")), "the run finished before it could be stopped"

    one = str(tmp_path / "one")  # the same checkpoint, resumed below on 1 process
    shutil.copytree(folders[writer], one)
    shutil.copytree(folders[writer], folders[1 - writer])
    nodes = two_nodes(folders, *extra, "--resume")
    assert all(n.wait(timeout=300) == 0 for n in nodes)
    finals = [f for f in folders if os.path.exists(os.path.join(f, "final"))]
    assert len(finals) == 1, finals  # only global rank 0 wrote (either node: the rendezvous chose again)
    assert not any(os.path.exists(os.path.join(f, f"step_{STEPS:06d}")) for f in folders if f not in finals)
    assert [r["step"] for r in read_log(finals[0])] == list(range(STEPS + 1))
    assert same_rows(read_log(finals[0]), read_log(straight))
    pa, pb = params(os.path.join(straight, "final")), params(os.path.join(finals[0], "final"))
    assert pa.keys() == pb.keys() and all(torch.equal(pa[n], pb[n]) for n in pa)
    toy = params(TOY)
    assert any(not torch.equal(toy[n], pa[n]) for n in pa)  # it trained

    out = run("train_task.py", "--out", one, "--resume").stdout  # 2 processes -> 1 (--fsdp: a group of one)
    resumed_at = int(out.split("resumed from ")[1].split(" at step ")[1].split()[0])
    assert "saved by 2 processes, continued on 1" in out
    a, b = read_log(straight), read_log(one)
    assert [r["step"] for r in b] == list(range(STEPS + 1))
    assert same_rows(a[: resumed_at + 1], b[: resumed_at + 1])
    assert [r.get("lr") for r in a] == [r.get("lr") for r in b]  # the schedule continued
    saved = torch.load(os.path.join(one, f"step_{STEPS:06d}", "trainer.pt"), weights_only=False)
    steps = {float(s["step"]) for s in saved["optimizer"]["state"].values()}
    assert steps == {STEPS}, steps  # AdamW's moments carried over: a fresh optimizer would count STEPS - resumed_at
