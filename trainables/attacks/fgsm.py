"""Fast Gradient Sign Method (Goodfellow et al., 2015): one signed-gradient step of size eps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from .base import Attack, check_inputs, spread
from .gradients import cross_entropy, input_gradient
from .registry import register_attack
from .threat import Norm

__all__ = ["FGSM"]


@register_attack("fgsm")
@dataclass(frozen=True, kw_only=True)
class FGSM(Attack):
    """L-inf FGSM: x + eps * sign(grad), EOT-averaged over ``eot_samples`` draws; no budget of its own."""

    norm: ClassVar[Norm] = Norm.LINF
    per_example_radii: ClassVar[bool] = True

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """One signed-gradient step, clipped to [0, 1]."""
        check_inputs(x, y)
        eps = self.radius
        if isinstance(eps, float) and eps == 0:
            return x.detach().clone()
        grad, _ = input_gradient(model, x, y, cross_entropy, self.eot_samples)  # (B, C, H, W)
        return (x.detach() + spread(eps, x) * grad.sign()).clamp(0, 1)
