"""Data-parallel replicas of one training run: this process's rank and the collectives the loop needs.

The loop runs unchanged in one process (rank 0 of 1). When a torch.distributed process group is up
(Ray Train's TorchTrainer sets one up for every worker: gloo on CPU, NCCL on GPUs), each replica
trains on its shard of every global batch, DistributedDataParallel averages the gradients, and
these helpers keep everything else in step: loss checks, epoch sums, BatchNorm buffers, RNG states.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["Replicas"]


@dataclass(frozen=True)
class Replicas:
    """This process's place among the replicas of one run; ``Replicas()`` is a run of its own."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"need 0 <= rank < world_size, got {self.rank=}, {self.world_size=}")

    @classmethod
    def current(cls) -> Replicas:
        """The replicas of the initialised torch.distributed process group, else a single one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def parallel(self) -> bool:
        """More than one replica."""
        return self.world_size > 1

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world_size), the form ``trainables.data.batches`` takes."""
        return self.rank, self.world_size

    def _device(self, fallback: torch.device) -> torch.device:
        """Where collectives run: the CUDA device for NCCL, else the CPU."""
        return fallback if self.parallel and dist.get_backend() == "nccl" else torch.device("cpu")

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Each value summed over the replicas (float64)."""
        if not self.parallel:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._device(device))
        dist.all_reduce(t)
        return t.tolist()

    def all_finite(self, value: Tensor) -> bool:
        """Whether ``value`` is finite on every replica, so that all of them stop together."""
        finite = bool(torch.isfinite(value).all())
        if not self.parallel:
            return finite
        return self.sum([float(finite)], value.device)[0] == self.world_size

    def broadcast_buffers(self, model: nn.Module, device: torch.device) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every replica."""
        if not self.parallel:
            return
        for buffer in model.buffers():
            staged = buffer.detach().to(self._device(device))
            dist.broadcast(staged, src=0)
            buffer.copy_(staged.to(buffer.device))

    def gather_rng_states(self) -> list[Tensor]:
        """Every replica's CPU generator state, in rank order (what a checkpoint keeps)."""
        state = torch.get_rng_state()
        if not self.parallel:
            return [state]
        states: list[Tensor | None] = [None] * self.world_size
        dist.all_gather_object(states, state)
        return [s for s in states if s is not None]

    def seed(self, seed: int) -> None:
        """Give replicas other than rank 0 their own noise stream (rank 0 keeps the single-run stream)."""
        if self.rank > 0:
            torch.manual_seed(seed * 1_000_003 + 7919 * self.rank)
