"""
Sharded training with torch's FSDP2 (`--fsdp`): with N ranks, each holds 1/N of the policy's fp32 weights,
of their gradients and of the AdamW state (16 bytes per parameter become 16/N), and 1/N of the reference.
Plain data parallelism (distributed.py) keeps a full replica per rank; it stays the path for small models.

    shard(model)          fully_shard each decoder layer, and the rest (embeddings, final norm, output head,
                          tied or not) as one root unit; bf16 compute on a GPU, fp32 weights and reductions
    full_weights(model)   a context for a rollout: every unit's weights gathered once, for the whole rollout
                          (the decoding loop calls the layers once per token: gathering there would cost one
                          all-gather per token), released after
    full_weights_state, full_optimizer_state   the full weights and optimizer state on rank 0, for a checkpoint
                          in the same format as an unsharded run's (save_pretrained + trainer.pt);
                          load_optimizer_state shards a saved one back, so a resumed run continues exactly

Why the root unit wraps the scoring pass: FSDP gathers a unit's weights in the unit's forward hook, and the
trainers score with model.response_logprobs, which calls the decoder and then the output head in vocabulary
chunks, outside the model's own forward. So the root unit is `ShardedScorer`, a module whose forward is that
pass, and response_logprobs(model, ...) routes through it when the model is sharded. Gradients are summed
over ranks, not averaged: the loss is already normalised by global totals (loss.token_weights), as in the
data-parallel path.
"""

from contextlib import contextmanager

import torch
import torch.distributed as tdist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

FULL_ON_RANK_0 = StateDictOptions(full_state_dict=True, cpu_offload=True)


class ShardedScorer(torch.nn.Module):
    """The FSDP root unit: its forward is model.response_logprobs on the wrapped model."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sequences, attention_mask, response_mask, chunk_elements, entropy):
        from model import _response_logprobs  # here, not at the top: model.py routes sharded models to this class

        return _response_logprobs(self.model, sequences, attention_mask, response_mask, chunk_elements, entropy)


def shard(model, device):
    """Shard `model` in place over the process group; returns it (its parameters are now DTensors)."""
    cuda = device.type == "cuda"
    if not tdist.is_initialized():  # one process, no torchrun: a group of one (one sharded step on one device)
        tdist.init_process_group("nccl" if cuda else "gloo", store=tdist.HashStore(), rank=0, world_size=1)
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if cuda else None, reduce_dtype=torch.float32)
    for layer in model.get_decoder().layers:
        fully_shard(layer, mp_policy=policy)
    scorer = ShardedScorer(model)
    fully_shard(scorer, mp_policy=policy)
    object.__setattr__(model, "sharded_scorer", scorer)  # a plain attribute: not a submodule of its own child
    for unit in _units(model):
        unit.set_gradient_divide_factor(1.0)  # summed over ranks, as the data-parallel all-reduce sums them,
        unit.set_force_sum_reduction_for_comms(True)  # with a plain SUM (gloo has no pre-multiplied sum)
    # FSDP sets itself up in the root's first forward; run one now, before a rollout calls the layers directly.
    with torch.no_grad():
        one = torch.ones((1, 2), dtype=torch.long, device=device)
        scorer(one, one, one[:, :1].bool(), 2**26, False)
    for unit in _units(model):
        unit.reshard()  # the root keeps its weights gathered after a forward: release them, so that the
        # parameters an optimizer is built on are the sharded ones that every later reshard() puts back
    return model


def is_sharded(model):
    return hasattr(model, "sharded_scorer")


def _units(model):
    return [m for m in model.sharded_scorer.modules() if isinstance(m, FSDPModule)]


@contextmanager
def full_weights(model):
    """Every weight of a sharded model gathered for the duration of the block (a rollout), then released."""
    if not is_sharded(model):
        yield model
        return
    units = _units(model)
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False)
    try:
        yield model
    finally:
        for unit in units:
            unit.set_reshard_after_forward(unit is not model.sharded_scorer)  # FSDP's own defaults
            unit.reshard()


def full_weights_state(model):
    """The full state dict of a sharded model on rank 0, named as save_pretrained names it (empty elsewhere; None
    for a model that is not sharded, whose own state dict is the full one): every rank must call this."""
    if not is_sharded(model):
        return None
    weights = get_model_state_dict(model.sharded_scorer, options=FULL_ON_RANK_0)
    return {name.removeprefix("model."): tensor for name, tensor in weights.items()}


def full_optimizer_state(model, optimizer):
    """The full optimizer state (on rank 0 only, when sharded): every rank must call this."""
    if not is_sharded(model):
        return optimizer.state_dict()
    return get_optimizer_state_dict(model.sharded_scorer, optimizer, options=FULL_ON_RANK_0)


def load_optimizer_state(model, optimizer, state):
    """Load a full optimizer state (as full_optimizer_state returned it), sharding it when the model is."""
    if not is_sharded(model):
        return optimizer.load_state_dict(state)
    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model.sharded_scorer, optimizer, optim_state_dict=state, options=options)


def local(tensor):
    """This rank's shard of a sharded tensor (the tensor itself otherwise)."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def full(tensor):
    """The whole of a sharded tensor, gathered from every rank (the tensor itself otherwise)."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
