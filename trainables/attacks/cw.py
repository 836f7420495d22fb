"""Carlini-Wagner L2 (Carlini & Wagner, 2017) with a fixed trade-off constant c, like torchattacks.CW."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor, nn

from .base import Attack, check_inputs
from .gradients import eot_logits
from .registry import register_attack
from .threat import Norm, ThreatModel

__all__ = ["CarliniWagnerL2", "cw_margin"]

_TANH_SHRINK = 1 - 1e-6  # keeps atanh finite for pixels at exactly 0 or 1


def cw_margin(logits: Tensor, y: Tensor) -> Tensor:
    """Z_y - max_{i != y} Z_i per example (B,); negative once the example is misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)  # (B,)
    others = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -math.inf)
    return true - others.max(dim=1).values


@register_attack("cw")
@dataclass(frozen=True, kw_only=True)
class CarliniWagnerL2(Attack):
    """Adam in tanh space on ||delta||_2^2 + c * max(margin, -kappa); no binary search over c.

    Returns per example the smallest-L2 misclassified iterate, else the original image; with
    ``eps`` set, adversarials further than eps in L2 are rejected as well. ``eps=None`` is the
    minimum-norm attack of torchattacks.CW; a spec with ``bounded=False`` stays unbounded when it is
    bound to a threat model (what training mixes use).
    """

    norm: ClassVar[Norm] = Norm.L2
    per_example_radii: ClassVar[bool] = True

    c: float = 1.0
    kappa: float = 0.0
    steps: int = 50
    lr: float = 0.01
    bounded: bool = True  # take the threat model's L2 radius when bound; False: minimum-norm, no radius

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.c >= 0:
            raise ValueError(f"c must be >= 0, got {self.c=}")
        if not self.kappa >= 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa=}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps=}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr=}")

    def bind(self, threat: ThreatModel, eot_samples: int = 1) -> CarliniWagnerL2:
        """At ``threat``'s L2 radius when ``bounded``, else unbounded; ``eot_samples`` draws per step."""
        return replace(self, eps=threat.radius(self.norm) if self.bounded else None, eot_samples=eot_samples)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Smallest-L2 adversarial found per example (the original where none was found)."""
        check_inputs(x, y)
        x = x.detach()
        best = x.clone()  # (B, C, H, W)
        best_sq = torch.full((x.shape[0],), math.inf, device=x.device, dtype=x.dtype)  # (B,)
        max_sq = math.inf if self.eps is None else self.radius**2  # (B,) with per-example radii
        w = torch.atanh((2 * x - 1) * _TANH_SHRINK).requires_grad_(True)  # (B, C, H, W)
        optimizer = torch.optim.Adam([w], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                x_adv = (torch.tanh(w) + 1) / 2  # (B, C, H, W)
                dist_sq = (x_adv - x).flatten(1).pow(2).sum(dim=1)  # (B,)
                logits = eot_logits(model, x_adv, self.eot_samples)  # (B, K)
                f = cw_margin(logits, y).clamp(min=-self.kappa)  # (B,)
                (w.grad,) = torch.autograd.grad((dist_sq + self.c * f).sum(), [w])
                optimizer.step()
                with torch.no_grad():
                    better = (logits.argmax(dim=1) != y) & (dist_sq < best_sq) & (dist_sq <= max_sq)
                    best_sq = torch.where(better, dist_sq, best_sq)
                    best[better] = x_adv[better]
        return best.detach()
