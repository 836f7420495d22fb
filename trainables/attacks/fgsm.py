"""Fast Gradient Sign Method (Goodfellow et al., 2015): one signed-gradient step of size eps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from .base import Attack, check_inputs
from .gradients import cross_entropy, input_gradient

__all__ = ["FGSM"]


@dataclass(frozen=True)
class FGSM(Attack):
    """L-inf FGSM: x + eps * sign(grad), EOT-averaged over ``eot_samples`` draws."""

    eps: float
    eot_samples: int = 1
    norm: ClassVar[str] = "linf"

    def __post_init__(self) -> None:
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps=}")
        if self.eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1, got {self.eot_samples=}")

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """One signed-gradient step, clipped to [0, 1]."""
        check_inputs(x, y)
        if self.eps == 0:
            return x.detach().clone()
        grad, _ = input_gradient(model, x, y, cross_entropy, self.eot_samples)  # (B, C, H, W)
        return (x.detach() + self.eps * grad.sign()).clamp(0, 1)
