"""Robust evaluation split across the ranks of a torch.distributed process group.

Rank r attacks examples r, r + W, r + 2W, ... of the set; the per-example outcomes are gathered so
every rank ends with the same :class:`RobustResult` over all examples. Outcomes are per example, so
the worst case stays a per-example AND over the attacks, exactly as in one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from trainables.attacks import ThreatModel

from .result import RobustResult
from .robustness import evaluate_robustness
from .suite import SuiteConfig

__all__ = ["evaluate_sharded"]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_outcomes(rows: Tensor, n: int, world: int) -> Tensor:
    """Interleave every rank's (R, n_rank) bool rows back into (R, n) in example order."""
    width = -(-n // world)  # ceil(n / world): the largest shard
    padded = torch.zeros(rows.shape[0], width, dtype=torch.uint8, device=rows.device)
    padded[:, :rows.shape[1]] = rows.to(torch.uint8)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    full = torch.zeros(rows.shape[0], n, dtype=torch.bool)
    for rank, part in enumerate(parts):
        count = len(range(rank, n, world))
        full[:, rank::world] = part[:, :count].bool().cpu()
    return full


def evaluate_sharded(model: nn.Module, images: Tensor, labels: Tensor, suite: SuiteConfig, threat: ThreatModel, *,
                     device: torch.device | str | None = None) -> RobustResult:
    """``evaluate_robustness`` with the examples shared out over the process group's ranks."""
    rank, world = _world()
    if world == 1:
        return evaluate_robustness(model, images, labels, suite, threat, device=device)
    n = images.shape[0]
    if n < world:
        raise ValueError(f"cannot share {n} examples among {world} ranks")
    part = evaluate_robustness(model, images[rank::world], labels[rank::world], suite, threat, device=device)
    names = list(part.per_attack)
    rows = torch.stack([part.natural, *(part.per_attack[a] for a in names)])  # (1 + attacks, n_rank)
    on = torch.device(device) if device is not None else torch.device("cpu")
    gather_on = on if dist.get_backend() == "nccl" else torch.device("cpu")
    full = _gather_outcomes(rows.to(gather_on), n, world)  # (1 + attacks, n)
    return RobustResult.from_outcomes(full[0], {a: full[1 + i] for i, a in enumerate(names)})
