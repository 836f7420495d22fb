"""Gaussian input noise for randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019).

Training under smoothing is ordinary training of the wrapped model: :class:`SmoothedModel` adds
N(0, sigma^2) noise to every input, in train and in eval, through the one training loop. Because the
noise layer is a :class:`~.base.StochasticModule`, attacks on it use EOT.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import RobustModel, StochasticModule

__all__ = ["GaussianInput", "SmoothedModel"]


def _check_sigma(sigma: float) -> float:
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"smoothing sigma must be finite and > 0, got {sigma=}")
    return float(sigma)


class GaussianInput(StochasticModule):
    """Adds N(0, sigma^2) noise to [0, 1] pixels, in train and eval, without clipping (as Cohen et al.)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = _check_sigma(sigma)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"

    def forward(self, x: Tensor) -> Tensor:
        return x + self.sigma * torch.randn_like(x)  # (B, C, H, W); the gradient w.r.t. x is the identity


class SmoothedModel(RobustModel):
    """``base(x + N(0, sigma^2))``: the noisy base classifier whose majority vote is the smoothed one."""

    def __init__(self, base: nn.Module, sigma: float) -> None:
        super().__init__()
        self.noise = GaussianInput(sigma)
        self.base = base

    @property
    def sigma(self) -> float:
        """Standard deviation of the input noise (pixel units)."""
        return self.noise.sigma

    def forward(self, x: Tensor) -> Tensor:
        return self.base(self.noise(x))  # (B, classes)
