"""Data-parallel plumbing for ``torchrun --nproc_per_node=N``: who am I, which device, and summing metrics.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them everything is a
single process (rank 0 of 1). The backend is NCCL on GPUs and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """The process's place in a ``torchrun`` job (rank 0 of 1 outside one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    return DistContext(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"])), world)


def pick_device(requested: str, ctx: DistContext) -> torch.device:
    """``auto`` -> this process's GPU when there is one (``cuda:LOCAL_RANK`` under torchrun), else CPU."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for, but torch sees no GPU")
        if device.index is None:
            device = torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def init(ctx: DistContext, device: torch.device) -> bool:
    """Join the process group (NCCL on GPU, gloo on CPU); True when this call created it."""
    if not ctx.enabled or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank, world_size=ctx.world_size)
    return True


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``t`` over all processes (in place); a no-op in a single process."""
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
