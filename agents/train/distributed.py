"""Several processes under ``torchrun``: ranks, the all-reduce helpers, DDP and FSDP2 wrapping.

Plain PyTorch distributed: NCCL on CUDA (one GPU per local rank), gloo on CPU. With one process
every helper is the identity, so a trainer reads the same with or without ``torchrun``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from agents.vlm.device import resolve_device


@dataclass(frozen=True)
class Ranks:
    """This process's place in a (possibly one-process) distributed run."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0

    def share(self, items: Any) -> Any:
        """This rank's contiguous share of ``items`` (rank ``r`` of ``W``: the ``r``-th of ``W``
        equal parts; ``len(items)`` must divide by ``W``)."""
        size = len(items) // self.world
        return items[self.rank * size : (self.rank + 1) * size]


def setup_ranks(device: str) -> Ranks:
    """Pick the device; under ``torchrun`` (``WORLD_SIZE > 1``) join the process group: NCCL on
    CUDA with one GPU per local rank, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    target = torch.device(resolve_device(device))
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
    if world == 1:
        return Ranks(0, 1, target)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), target)


def _comm_device(ranks: Ranks) -> torch.device:
    return ranks.device if ranks.device.type == "cuda" else torch.device("cpu")


def all_mean(values: list[float], ranks: Ranks) -> list[float]:
    """Element-wise mean of ``values`` over ranks."""
    if ranks.world == 1 or not values:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device(ranks))
    dist.all_reduce(tensor)
    return (tensor / ranks.world).tolist()


def all_sum(value: float, ranks: Ranks) -> float:
    """``value`` summed over ranks."""
    if ranks.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_comm_device(ranks))
    dist.all_reduce(tensor)
    return float(tensor.item())


def all_gather_list(items: list[Any], ranks: Ranks) -> list[Any]:
    """Every rank's ``items``, concatenated in rank order."""
    if ranks.world == 1:
        return list(items)
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, items)
    return [item for part in out for item in part]


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if ranks.world > 1:
        dist.barrier()


class DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that still answers ``dtype``, which :meth:`VLMPolicy.token_logprobs` reads."""

    @property
    def dtype(self) -> torch.dtype:
        return self.module.dtype


def shard_model(model: torch.nn.Module) -> None:
    """FSDP2: shard every transformer block (text decoder layers, vision blocks), then the rest."""
    from torch.distributed.fsdp import fully_shard

    for module in list(model.modules()):
        if type(module).__name__.endswith(("DecoderLayer", "VisionBlock")):
            fully_shard(module)
    fully_shard(model)


def wrap_model(model: torch.nn.Module, ranks: Ranks, fsdp: bool) -> torch.nn.Module:
    """The module the trainer runs its backward passes through: the model itself in one process,
    sharded in place with FSDP2 (``fsdp``), or wrapped in :class:`DDP`."""
    if ranks.world == 1:
        return model
    if fsdp:
        shard_model(model)
        return model
    return DDP(model, device_ids=[ranks.device.index] if ranks.device.type == "cuda" else None)


def gradient_sync(train_model: torch.nn.Module, ranks: Ranks, fsdp: bool, last: bool) -> Any:
    """A context in which a backward pass all-reduces gradients only on the ``last`` micro-batch
    of an optimiser step (DDP's ``no_sync``; FSDP2's ``set_requires_gradient_sync``)."""
    if fsdp:
        train_model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()
    if ranks.world > 1 and not last:
        return train_model.no_sync()
    return contextlib.nullcontext()


@contextlib.contextmanager
def full_parameters(model: torch.nn.Module, fsdp: bool):
    """With FSDP2, keep every parameter gathered (ranks may run different numbers of forward
    passes while generating, so no collective may happen inside); a no-op otherwise."""
    if not fsdp:
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    modules = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for module in modules:
        module.set_reshard_after_forward(False, recurse=False)
        module.unshard()
    try:
        yield
    finally:
        for module in modules:
            module.reshard()
            module.set_reshard_after_forward(True, recurse=False)


def full_model_state(model: torch.nn.Module, fsdp: bool) -> dict[str, torch.Tensor] | None:
    """With FSDP2, the whole model's state dict gathered on the CPU (collective: every rank calls
    it); None otherwise (the model's own ``state_dict`` is complete)."""
    if not fsdp:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def full_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool
) -> dict[str, Any] | None:
    """With FSDP2, the whole optimiser state gathered on the CPU (collective); None otherwise."""
    if not fsdp:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_full_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Load a whole optimiser state (as :func:`full_optimizer_state` wrote it) into an FSDP2
    optimiser, each rank keeping its shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(
        model, optimizer, state, options=StateDictOptions(full_state_dict=True)
    )


__all__ = [
    "DDP",
    "Ranks",
    "all_gather_list",
    "all_mean",
    "all_sum",
    "barrier",
    "full_model_state",
    "full_optimizer_state",
    "full_parameters",
    "gradient_sync",
    "load_full_optimizer_state",
    "setup_ranks",
    "shard_model",
    "wrap_model",
]
