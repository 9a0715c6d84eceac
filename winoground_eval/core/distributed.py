"""Runs split across processes started by PyTorch's own launcher (torchrun, accelerate).

Each rank scores a deterministic share of the examples still to do and appends to its own
shard of ``scores.jsonl``; rank 0 waits for all and writes ``result.json``. Nothing here
starts processes: ``torchrun --nproc_per_node=N -m winoground_eval run ...`` does.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "World":
        """The launcher's RANK / WORLD_SIZE / LOCAL_RANK (torchrun and accelerate set them)."""
        try:
            return cls(
                int(os.environ.get("RANK", 0)),
                int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)),
            )
        except ValueError:
            return cls()

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: every world_size-th, starting at its rank."""
        return list(items[self.rank :: self.world_size])

    def default_device(self) -> str:
        """The policy's device (:func:`winoground_eval.core.policy.resolve_device`); on CUDA, this rank's own GPU."""
        from .policy import resolve_device

        device = resolve_device(None)
        return f"cuda:{self.local_rank}" if device == "cuda" and self.distributed else device


def init(world: World, device: str | None) -> None:
    """Join the process group: NCCL for CUDA devices, gloo for the CPU."""
    if not world.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    on_cuda = device is not None and device.startswith("cuda")
    if on_cuda:
        torch.cuda.set_device(torch.device(device))
    # Ranks wait for each other only at the start and the end of a run, which can be hours apart.
    hours = float(os.environ.get("WG_EVAL_DIST_TIMEOUT_HOURS", "72"))
    dist.init_process_group(backend="nccl" if on_cuda else "gloo", timeout=datetime.timedelta(hours=hours))


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def finish(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
