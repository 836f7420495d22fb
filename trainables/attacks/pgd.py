"""Projected Gradient Descent (Madry et al., 2018) in the L-inf and L2 balls, with restarts; TRADES's inner PGD."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Attack, Radius, batch_view, check_inputs, l2_norms, misclassified, project_l2, spread
from .gradients import LossFn, cross_entropy, input_gradient
from .registry import register_attack
from .threat import Norm

__all__ = ["PGD", "PGDKL", "PGDL2"]


@dataclass(frozen=True, kw_only=True)
class _ProjectedGradient(Attack):
    """Shared PGD loop; subclasses define the random start, the step and the projection.

    Radii may be one per example (:meth:`~.base.Attack.per_example`); the step size follows each.
    """

    per_example_radii: ClassVar[bool] = True
    steps: int = 10
    step_size: float | None = None  # pixel units; None: step_ratio * eps / steps
    step_ratio: float = 2.5  # step size as a multiple of eps / steps (Madry et al.'s 2.5)
    random_start: bool = True
    restarts: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps=}")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be > 0 or None, got {self.step_size=}")
        if not self.step_ratio > 0:
            raise ValueError(f"step_ratio must be > 0, got {self.step_ratio=}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts=}")

    @property
    def alpha(self) -> Radius:
        """The step size in use: ``step_size``, or step_ratio * eps / steps when it is None."""
        return self._alpha(self.radius)

    def _alpha(self, eps: Radius) -> Radius:
        return self.step_ratio * eps / self.steps if self.step_size is None else self.step_size

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Per example, the first restart that fools the model, else the last restart."""
        check_inputs(x, y)
        x, eps = x.detach(), self.radius
        if isinstance(eps, float) and eps == 0:
            return x.clone()
        best = x.clone()  # (B, C, H, W)
        todo = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)  # (B,) not yet fooled
        for restart in range(self.restarts):
            idx = todo.nonzero().squeeze(1)  # (b,)
            if idx.numel() == 0:
                break
            x_adv = self._run(model, x[idx], y[idx], eps if isinstance(eps, float) else eps[idx])
            best[idx] = x_adv
            if restart < self.restarts - 1:
                todo[idx] = ~misclassified(model, x_adv, y[idx], self.eot_samples)
        return best

    def _loss(self, model: nn.Module, x: Tensor) -> LossFn:
        """What the steps climb on the examples ``x``: the cross-entropy."""
        return cross_entropy

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: Radius) -> Tensor:
        loss = self._loss(model, x)
        x_adv = self._project(self._random_start(x, eps), x, eps) if self.random_start else x.clone()
        for _ in range(self.steps):
            grad, _ = input_gradient(model, x_adv, y, loss, self.eot_samples)
            x_adv = self._project(self._step(x_adv, grad, eps), x, eps)
        return x_adv

    @abstractmethod
    def _random_start(self, x: Tensor, eps: Radius) -> Tensor: ...

    @abstractmethod
    def _step(self, x_adv: Tensor, grad: Tensor, eps: Radius) -> Tensor: ...

    @abstractmethod
    def _project(self, x_adv: Tensor, x: Tensor, eps: Radius) -> Tensor: ...


@register_attack("pgd")
@dataclass(frozen=True, kw_only=True)
class PGD(_ProjectedGradient):
    """L-inf PGD: signed-gradient steps projected onto the eps-cube around x and onto [0, 1]."""

    norm: ClassVar[Norm] = Norm.LINF

    def _random_start(self, x: Tensor, eps: Radius) -> Tensor:
        if isinstance(eps, float):
            return x + torch.empty_like(x).uniform_(-eps, eps)  # same draw as torchattacks
        return x + torch.empty_like(x).uniform_(-1, 1) * spread(eps, x)

    def _step(self, x_adv: Tensor, grad: Tensor, eps: Radius) -> Tensor:
        return x_adv + spread(self._alpha(eps), grad) * grad.sign()

    def _project(self, x_adv: Tensor, x: Tensor, eps: Radius) -> Tensor:
        ball = spread(eps, x)
        if isinstance(ball, Tensor):
            ball = ball.to(x.dtype)
            return (x + torch.maximum(torch.minimum(x_adv - x, ball), -ball)).clamp(0, 1)
        return (x + (x_adv - x).clamp(-ball, ball)).clamp(0, 1)


@dataclass(frozen=True, kw_only=True)
class PGDKL(PGD):
    """L-inf PGD on the KL divergence from the clean prediction: TRADES's inner maximisation (Zhang et al. 2019).

    Training attacks only (a run with ``trades_beta`` > 0 trains on it where its mix says ``pgd``), so
    not registered: as an evaluation attack it is weaker than PGD on the cross-entropy. Its random
    start is PGD's uniform one (TRADES's code starts at 0.001 x a normal draw); the KL is zero at x.
    """

    name: ClassVar[str] = "pgd-kl"

    def _loss(self, model: nn.Module, x: Tensor) -> LossFn:
        with torch.no_grad():
            clean = F.log_softmax(model(x).float(), dim=1)  # (B, K): one draw of a stochastic model

        def kl(logits: Tensor, y: Tensor) -> Tensor:
            return F.kl_div(F.log_softmax(logits.float(), dim=1), clean, reduction="none", log_target=True).sum(1)

        return kl

    @classmethod
    def of(cls, pgd: PGD) -> PGDKL:
        """``pgd``'s budget, radius and draws, climbing the KL instead."""
        return cls(eps=pgd.eps, eot_samples=pgd.eot_samples, **pgd.budget())


@register_attack("pgd-l2")
@dataclass(frozen=True, kw_only=True)
class PGDL2(_ProjectedGradient):
    """L2 PGD: L2-normalised gradient steps projected onto the eps-ball around x and onto [0, 1]."""

    norm: ClassVar[Norm] = Norm.L2

    def _random_start(self, x: Tensor, eps: Radius) -> Tensor:
        direction = torch.randn_like(x)  # (B, C, H, W)
        radius = torch.rand(x.shape[0], device=x.device, dtype=x.dtype) * eps  # (B,)
        scale = radius / l2_norms(direction).clamp_min(1e-12)  # (B,)
        return x + direction * batch_view(scale, x)

    def _step(self, x_adv: Tensor, grad: Tensor, eps: Radius) -> Tensor:
        scale = self._alpha(eps) / l2_norms(grad).clamp_min(1e-12)  # (B,)
        return x_adv + grad * batch_view(scale, grad)

    def _project(self, x_adv: Tensor, x: Tensor, eps: Radius) -> Tensor:
        return project_l2(x_adv, x, eps)
