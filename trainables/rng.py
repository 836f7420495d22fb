"""Private random streams: a block that draws from its own seeded stream leaves the caller's untouched."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["private_rng", "stream_seed"]


def stream_seed(seed: int, key: str) -> int:
    """A seed for the stream named ``key`` under ``seed``: streams of different keys are unrelated."""
    return zlib.crc32(f"{seed}/{key}".encode())


@contextmanager
def private_rng(seed: int | None, device: torch.device | str | None = None, key: str | None = None) -> Iterator[None]:
    """Run the block on torch's RNG seeded with ``seed`` (or ``stream_seed(seed, key)``), then restore it.

    ``device``: a CUDA device whose generator is forked too. ``seed=None`` runs the block on the
    global stream, unforked, so that its draws advance it as usual.
    """
    if seed is None:
        yield
        return
    dev = torch.device(device) if device is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed if key is None else stream_seed(seed, key))
        yield
