"""
Data parallelism is exact: two processes on CPU (gloo), each holding half of a batch, take the same
optimizer step as one process holding the whole batch (within fp32 tolerance), and log the same metrics;
so do two processes that shard the policy with FSDP2 (--fsdp, plumbing/sharding.py), each holding half of it.

The real code path runs on both sides: train_task.py's own setup lines build the trainer (conftest.trainer_setup), and its lines
from step 5 to the metrics (cut out of train_task.py by conftest.run_loop: the aggregation's global totals,
micro-batches, the all-reduce and clipping, AdamW, `Run.metrics` reducing the diagnostics over ranks) take the
step. The batch (a seeded rollout of the toy model, fixed advantages, log-probs from `Run.logprobs`) is built once
and shared, so any difference comes from the split.
"""

import dataclasses
import math
import os
import signal
import socket

import pytest
import torch
import torch.multiprocessing as mp

from conftest import run_loop, sample_step, trainer_scope, trainer_setup
from plumbing import distributed, sharding
from rollout import Rollout

pytestmark = pytest.mark.slow  # two spawned processes, each importing torch and transformers: ~30-50 s on 2 cores
WORLD = 2
PROMPTS, G = 4, 4  # 16 sequences: 8 per rank, whole groups on each rank
# micro_batch 3 splits the 8 (or 16) rows of a process unevenly, so gradient accumulation is covered too.
CASES = {
    "token": dict(aggregation="token", micro_batch=3),
    "sequence": dict(aggregation="sequence", micro_batch=3),
    "constant": dict(aggregation="constant", micro_batch=8),
    "ppo+kl": dict(aggregation="token", micro_batch=5, updates_per_batch=2, kl_coef=0.1),  # 2 steps, ratio + KL
}
# The same cases with the policy and the reference sharded by FSDP2 (--fsdp): compared with the one-process
# step of the case they shard, so sharded = replicated = one process.
SHARDED = {"fsdp:token": "token", "fsdp:ppo+kl": "ppo+kl"}
TIMING = ("step_time", "tokens_per_s")


def make_run(out, aggregation, micro_batch, updates_per_batch=1, kl_coef=0.0, fsdp=False):
    args = [
        "--device",
        "cpu",
        "--prompts-per-step",
        str(PROMPTS),
        "--group-size",
        str(G),
        "--max-new-tokens",
        "24",
        "--eval-problems",
        "8",
        "--aggregation",
        aggregation,
        "--micro-batch",
        str(micro_batch),
        "--updates-per-batch",
        str(updates_per_batch),
        "--kl-coef",
        str(kl_coef),
        "--out",
        out,
        *(["--fsdp"] if fsdp else []),
    ]
    return trainer_setup("train_task.py", *args)["run"]


def rows(x, sl):
    """Rows `sl` of a tensor, or of every field of a Rollout."""
    if isinstance(x, Rollout):
        return Rollout(**{f.name: getattr(x, f.name)[sl] for f in dataclasses.fields(x)})
    return x[sl]


def step(run, batch):
    """The trainer's step 5 and metrics on `batch`; returns what the two sides must agree on."""
    got = run_loop(
        "train_task.py", trainer_scope("train_task.py", run), "mask = roll.response_mask", "metrics =", **batch, t0=0.0
    )
    metrics, grad_norm = got["metrics"], got["grad_norm"]
    return {
        "loss": metrics["loss"],
        "grad_norm": grad_norm,  # metrics["loss"]: summed over ranks
        "metrics": {k: v for k, v in metrics.items() if k not in TIMING},
        # sharded: the whole tensors gathered from both ranks, and how many elements this rank holds
        "params": {n: sharding.full(p.detach()).clone() for n, p in run.policy.named_parameters()},
        "grads": {n: sharding.full(p.grad).clone() for n, p in run.policy.named_parameters()},
        "held": sum(sharding.local(p).numel() for p in run.policy.parameters()),
        "total": sum(sharding.full(p.detach()).numel() for p in run.policy.parameters()),
    }


def _worker(rank, port, batch, out):
    """One rank: join a gloo group as torchrun would set it up, then run every case on this rank's half."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    dist = distributed.setup(torch.device("cpu"))
    assert dist.world == WORLD and dist.rank == rank
    distributed.setup = lambda device: dist  # one process group, reused by the fresh Run of every case
    n = len(batch["A"]) // WORLD
    half = {k: rows(v, slice(rank * n, (rank + 1) * n)) for k, v in batch.items()}
    results = {name: step(make_run(os.path.join(out, f"rank{rank}_{name}"), **case), half) for name, case in CASES.items()}
    for name, case in SHARDED.items():
        results[name] = step(make_run(os.path.join(out, f"rank{rank}_{name}"), **CASES[case], fsdp=True), half)
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def quiet_process():
    """One torch thread (2 shared cores: more threads are slower here), and pytest's own signal handlers
    back afterwards (Run() installs SIGINT/SIGTERM handlers that only set a flag)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="module")
def single_and_split(tmp_path_factory, quiet_process):
    """The whole batch in this process (one Run per case), and the same batch split over 2 spawned ranks."""
    out = str(tmp_path_factory.mktemp("ddp"))
    run = make_run(os.path.join(out, "sample"), "token", 16)
    roll, r, answers = sample_step(run, 0)
    ref_logp = run.logprobs(run.ref, roll)
    logp, entropy = run.logprobs(run.policy, roll, entropy=True)
    init = {n: p.detach().clone() for n, p in run.policy.named_parameters()}
    A = torch.randn(len(r), generator=torch.Generator().manual_seed(0))  # fixed advantages, none zero
    R = r + 0.5 * A  # any per-sequence reward will do for the metrics
    batch = dict(roll=roll, r=r, R=R, answers=answers, A=A, logp=logp, ref_logp=ref_logp, entropy=entropy)
    assert len(set(roll.lengths.tolist())) > 1, "the batch needs responses of different lengths"
    single = {name: step(make_run(os.path.join(out, name), **case), batch) for name, case in CASES.items()}
    mp.spawn(_worker, args=(free_port(), batch, out), nprocs=WORLD, join=True)
    split = [torch.load(os.path.join(out, f"rank{k}.pt")) for k in range(WORLD)]
    return init, single, split


@pytest.mark.parametrize("case", [*CASES, *SHARDED])
def test_two_ranks_take_the_same_step_as_one_process(single_and_split, case):
    """Loss, pre-clip grad norm, the summed (clipped) gradient and the parameters after AdamW all match."""
    init, single, split = single_and_split
    one, two = single[SHARDED.get(case, case)], split[0][case]
    assert math.isclose(two["loss"], one["loss"], rel_tol=1e-5, abs_tol=1e-7)
    assert math.isclose(two["grad_norm"], one["grad_norm"], rel_tol=1e-5)  # catches a wrongly scaled gradient
    for name, g in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], g, rtol=1e-4, atol=1e-7, msg=lambda m: f"grad of {name}: {m}")
    # The first AdamW step is lr * g / (|g| + 1e-8): 3e-5 per weight here, whatever |g|. Where |g| is near eps
    # (~1e-8) the step turns on g's last digits, which the summation order rounds differently: there the step
    # may differ by a share of lr; everywhere else 1e-6 is tight, while a flipped sign would cost 6e-5.
    for name, p in one["params"].items():
        steady = one["grads"][name].abs() > 1e-6
        torch.testing.assert_close(two["params"][name][steady], p[steady], rtol=0, atol=1e-6, msg=lambda m: f"{name}: {m}")
        torch.testing.assert_close(two["params"][name], p, rtol=0, atol=3e-5, msg=lambda m: f"{name}: {m}")
        assert not torch.equal(p, init[name]), f"{name} did not move: the comparison would prove nothing"


def test_sharded_ranks_hold_half_of_the_policy_each(single_and_split):
    """--fsdp: each of the two ranks holds half of the policy's elements (the rest of a row padded), not a replica."""
    _, single, split = single_and_split
    for case in SHARDED:
        held = [split[rank][case]["held"] for rank in range(WORLD)]
        total = split[0][case]["total"]
        assert total == single[SHARDED[case]]["total"] and sum(held) >= total and max(held) <= 0.55 * total, (held, total)
    assert split[0]["token"]["held"] == split[0]["token"]["total"]  # the data-parallel path: a full replica


def test_every_rank_ends_with_the_same_parameters(single_and_split):
    """The all-reduced gradient is identical on every rank, so the replicas never drift apart."""
    _, _, split = single_and_split
    for case in [*CASES, *SHARDED]:
        for name, p in split[0][case]["params"].items():
            assert torch.equal(split[1][case]["params"][name], p), (case, name)


def test_metrics_are_reduced_over_ranks(single_and_split):
    """Run.metrics on two halves reports the whole batch's numbers (means, std, per-token averages, counts)."""
    _, single, split = single_and_split
    for case in [*CASES, *SHARDED]:
        one, two = single[SHARDED.get(case, case)]["metrics"], split[0][case]["metrics"]
        assert one.keys() == two.keys()
        for key, value in one.items():
            assert math.isclose(two[key], value, rel_tol=1e-5, abs_tol=1e-7), (case, key, two[key], value)
        assert split[1][case]["metrics"] == two  # rank 1 computes the same reduced numbers
