"""Random Gaussian noise inside the L-inf ball: a sanity baseline, not a real adversary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from .base import Attack, check_inputs

__all__ = ["GaussianNoise"]


@dataclass(frozen=True)
class GaussianNoise(Attack):
    """x + clamp(sigma * N(0, 1), -eps, eps), clipped to [0, 1]; ``sigma`` defaults to eps."""

    eps: float
    sigma: float | None = None

    norm: ClassVar[str] = "linf"

    def __post_init__(self) -> None:
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps=}")
        if self.sigma is not None and not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0 or None, got {self.sigma=}")

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Noisy copy of ``x``; the model is not queried."""
        check_inputs(x, y)
        sigma = self.eps if self.sigma is None else self.sigma
        noise = (sigma * torch.randn_like(x)).clamp(-self.eps, self.eps)  # (B, C, H, W)
        return (x.detach() + noise).clamp(0, 1)
