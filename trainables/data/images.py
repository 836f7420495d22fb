"""In-memory image sets: uint8 until a batch is made, floats in [0, 1] after."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from trainables.data.info import DatasetInfo

__all__ = ["ImageSet", "Splits", "batches"]


@dataclass(frozen=True)
class ImageSet:
    """Images (N, C, H, W) uint8 and labels (N,) int64, kept together."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.dim() == 4, self.images.shape
        assert self.labels.dtype == torch.int64 and len(self.labels) == len(self.images)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: Tensor) -> ImageSet:
        """The subset at ``index`` (a 1-D index tensor)."""
        return ImageSet(self.images[index], self.labels[index])

    def head(self, n: int | None) -> ImageSet:
        """The first ``n`` examples (all of them when n is None)."""
        return self if n is None or n >= len(self) else ImageSet(self.images[:n], self.labels[:n])

    def to(self, device: torch.device | str) -> ImageSet:
        """The same examples on ``device`` (itself when they are there already); uint8, a quarter of float32's size."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        return ImageSet(self.images.to(device), self.labels.to(device))

    def floats(self) -> Tensor:
        """All images as float32 in [0, 1]."""
        return self.images.float().div_(255)


@dataclass(frozen=True)
class Splits:
    """Train / validation / test sets of one dataset; the search tunes on val, reports on test."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    info: DatasetInfo


def batches(
    data: ImageSet,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (x float [0,1] (B, C, H, W), y (B,)) batches; shuffled when a generator is given.

    ``shard=(rank, world)`` yields this replica's part (every world-th example) of each global
    batch of ``batch_size``; every replica draws the same order from the same generator, and a
    last batch too small to give each replica an example is skipped by all of them.
    """
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard=}")
    n = len(data)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(data.images.device)  # gathered where the images are: on the GPU when they live there
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if world > 1:
            if len(idx) < world:
                break
            idx = idx[rank::world]
        x = data.images[idx].to(device, non_blocking=True).float().div_(255)
        yield x, data.labels[idx].to(device, non_blocking=True)
