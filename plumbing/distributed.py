"""
Data parallelism with torch.distributed, or nothing at all when run as a plain `python script.py`.

Under `torchrun --nproc_per_node=N` (or on several machines, `--nnodes`: ranks count over all of them), every
process (rank) holds a full copy of the model, samples its own prompts, and the gradients are summed across
ranks before the optimizer step. Only global rank 0 writes (is_main), never one per machine (LOCAL_RANK 0). The loss is normalised by
totals over the global batch (loss.token_weights), so the summed gradient is exactly the gradient of one
big batch: N processes and 1 process with the same global batch take the same step. NCCL on GPUs, gloo on
CPU. We all-reduce the gradients by hand rather than wrapping the model in DistributedDataParallel: the
trainers call the decoder and the output head separately (model.response_logprobs), which DDP's hooks do
not follow, and one explicit all-reduce is easier to read.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def active(self):
        return self.world > 1

    def sum(self, x):
        """Sum of a tensor (or float) over ranks."""
        x = torch.as_tensor(x, dtype=torch.float64, device=self.device).clone()
        if self.active:
            tdist.all_reduce(x)
        return x

    def all_reduce_grads(self, model):
        if self.active:
            handles = [tdist.all_reduce(p.grad, async_op=True) for p in model.parameters() if p.grad is not None]
            for h in handles:
                h.wait()

    def check_share(self, n, what):
        """Each rank evaluates every world-th of n problems: with fewer problems than ranks, one would have none (and
        its empty batch would fail), so that stops every rank with one line."""
        if n < self.world:
            raise SystemExit(
                f"error: {what}: {n} problem{'s' * (n != 1)} for {self.world} processes, which need one each: give at "
                f"least {self.world}, or start fewer processes"
            )

    def gather_lists(self, items):
        """Concatenate a Python list from every rank, rank 0's first."""
        if not self.active:
            return items
        parts = [None] * self.world
        tdist.all_gather_object(parts, items)
        return [x for part in parts for x in part]

    def close(self):
        if self.active:
            tdist.destroy_process_group()


def setup(device):
    """Join the process group when torchrun started us; otherwise a single process on `device`."""
    if "RANK" not in os.environ:
        return Dist(device=device)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Dist(rank, world, device)
