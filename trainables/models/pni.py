"""Parametric Noise Injection on activations (He, Rakin & Fan, CVPR 2019).

The layer adds alpha * std(x) * N(0, 1) to its input, with one learnable scalar alpha per layer and
std(x) the (detached) standard deviation of the whole activation tensor, as in the reference code.
Noise stays on at evaluation. The paper's main variant perturbs weights (PNI-W); this is its
activation variant (PNI-A-a), placed on tensors between layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import StochasticModule

__all__ = ["NoiseInjection", "pni_parameters"]


class NoiseInjection(StochasticModule):
    """Adds learnable-scale Gaussian noise alpha * std(x).detach() * N(0, 1), in train and eval."""

    def __init__(self, init: float = 0.25) -> None:
        super().__init__()
        if init < 0:
            raise ValueError(f"PNI init must be >= 0, got {init=}")
        self.alpha = nn.Parameter(torch.tensor(float(init)))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha.item():.4f}"

    def forward(self, x: Tensor) -> Tensor:
        scale = x.detach().std() if x.numel() > 1 else x.new_zeros(())
        return x + self.alpha * scale * torch.randn_like(x)


def pni_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The alpha scales of every :class:`NoiseInjection` in ``model`` (keep them out of weight decay)."""
    return [m.alpha for m in model.modules() if isinstance(m, NoiseInjection)]
