"""The processes that evaluate together: one, or the ranks of ``accelerate launch -m e2wm.evaluation``.

Each process takes every ``count``-th example of a task (``share``), scores it, and the shares are
gathered back into the original order (``gather``): every example is scored exactly once, whatever
the number of processes, so results are those of one process. Only the main process reads and writes
files; what it decides (which tasks to run) it ``broadcast``s to the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["Processes"]

T = TypeVar("T")


class Processes:
    """The evaluation's processes (one when not launched by ``accelerate launch`` / ``torchrun``)."""

    def __init__(self, index: int = 0, count: int = 1, device: str | None = None) -> None:
        self.index, self.count, self.device = index, count, device

    @classmethod
    def current(cls) -> Processes:
        """One process, or this rank of a distributed launch (``WORLD_SIZE`` > 1); the latter starts
        ``torch.distributed`` through accelerate's ``PartialState`` (gloo on CPU, NCCL on GPUs)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        import torch
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        # CPU ranks (ACCELERATE_USE_CPU=1, or no GPU) need cpu=True, as Trainer passes for use_cpu: else each
        # rank would start alone
        cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
        state = PartialState(cpu=cpu)
        return cls(state.process_index, state.num_processes, str(state.device))

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's items: every ``count``-th one, starting at its index."""
        return list(items[self.index :: self.count])

    def gather(self, share: list[T]) -> list[T]:
        """Every process's share, back in the order of the items they were taken from (on every process)."""
        if self.count == 1:
            return list(share)
        import torch.distributed as dist

        parts: list[Any] = [None] * self.count
        dist.all_gather_object(parts, share)
        out: list[Any] = [None] * sum(len(p) for p in parts)
        for rank, part in enumerate(parts):
            out[rank :: self.count] = part
        return out

    def broadcast(self, value: T) -> T:
        """The main process's ``value``, on every process."""
        if self.count == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
