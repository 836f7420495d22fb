"""Random Gaussian noise inside the L-inf ball: a sanity baseline, not a real adversary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from .base import Attack, check_inputs, spread
from .registry import register_attack
from .threat import Norm

__all__ = ["GaussianNoise"]


@register_attack("gaussian")
@dataclass(frozen=True, kw_only=True)
class GaussianNoise(Attack):
    """x + clamp(sigma * N(0, 1), -eps, eps), clipped to [0, 1]; ``sigma`` defaults to eps."""

    norm: ClassVar[Norm] = Norm.LINF
    per_example_radii: ClassVar[bool] = True

    sigma: float | None = None

    def work(self) -> float:
        """No model pass at all: the noise is drawn without the model."""
        return 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma is not None and not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0 or None, got {self.sigma=}")

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Noisy copy of ``x``; the model is not queried."""
        check_inputs(x, y)
        eps = spread(self.radius, x)
        sigma = eps if self.sigma is None else self.sigma
        noise = sigma * torch.randn_like(x)  # (B, C, H, W)
        noise = noise.clamp(-eps, eps) if isinstance(eps, float) else torch.maximum(torch.minimum(noise, eps), -eps)
        return (x.detach() + noise).clamp(0, 1)
