"""torch.distributed set-up for `torchrun`, and the wrappers applied to a model from outside it:
DDP, FSDP2 (`fully_shard`), activation checkpointing, torch.compile."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.checkpoint import checkpoint


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Dist:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); a plain launch is
    a world of one. gloo on the CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":  # one GPU a process, or none: processes never share a GPU (NCCL refuses it)
        use_cuda = gpus >= local_world
    elif device == "cuda":
        if gpus < local_world:
            raise ValueError(f"device cuda needs a GPU for each of the {local_world} processes on this machine; "
                             f"PyTorch sees {gpus}. Launch fewer processes or use --set device=cpu")
        use_cuda = True
    elif device == "cpu":
        use_cuda = False
    else:
        raise ValueError(f"unknown device '{device}'; use auto, cpu or cuda")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local, device=dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, strategy: str, d: Dist) -> torch.nn.Module:
    """`ddp` or `fsdp` (FSDP2: every transformer block, then the whole model, sharded)."""
    if not d.enabled or strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    if strategy == "fsdp":
        shard(model)
        return model
    raise ValueError(f"unknown parallelism '{strategy}'; choose ddp or fsdp")


def shard(model: torch.nn.Module) -> None:
    from torch.distributed.fsdp import fully_shard

    for m in model.modules():
        if m.__class__.__name__ == "Block":
            fully_shard(m)
    fully_shard(model)


def activation_checkpointing(model: torch.nn.Module) -> int:
    """Recompute every transformer block in the backward pass instead of storing its activations.
    Replaces the bound `forward` of each block, so parameter names do not change."""
    n = 0
    for m in model.modules():
        if m.__class__.__name__ == "Block":
            m.forward = functools.partial(checkpoint, m.forward, use_reentrant=False)
            n += 1
    return n


def compile_blocks(model: torch.nn.Module) -> None:
    """torch.compile each transformer block in place (names and state dicts unchanged)."""
    for m in model.modules():
        if m.__class__.__name__ == "Block":
            m.compile()


def all_mean(x: float, d: Dist) -> float:
    if not d.enabled:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=d.device if d.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item() / d.world)
