"""Auto-PGD (Croce & Hein, 2020) in the L-inf ball (cross-entropy or DLR loss) and the L2 ball, as AutoAttack runs it.

APGD needs no step size: it starts at 2 * eps and halves it per example at checkpoints where the
loss has stopped rising, restarting from the best point found. Gradients come from
:func:`~trainables.attacks.gradients.input_gradient`, so EOT and the suite's surrogate or plain
gradients on stochastic models apply unchanged. The L2 variant is the same loop with an L2 random
start, L2-normalised steps and the L2 projection (AutoAttack's ``norm="L2"``).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from .base import Attack, batch_view, check_inputs, l2_norms, project_l2
from .cw import cw_margin
from .gradients import LossFn, cross_entropy, input_gradient
from .registry import register_attack
from .threat import Norm

__all__ = ["APGDCE", "APGDDLR", "APGDL2", "dlr_loss"]

_MOMENTUM = 0.75  # weight of the new step against the last one (alpha in the paper)
_FIRST_CHECK, _CHECK_SHRINK, _SHORTEST_CHECK = 0.22, 0.03, 0.06  # checkpoint spacing, as fractions of steps


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example DLR loss (B,): -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12); needs >= 3 classes."""
    if logits.shape[1] < 3:
        raise ValueError(f"the DLR loss needs >= 3 classes, got logits of shape {tuple(logits.shape)}")
    top = logits.topk(3, dim=1).values  # (B, 3), descending
    return -cw_margin(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


def _recording(loss_fn: LossFn, probs: list[Tensor]) -> LossFn:
    """``loss_fn`` that also keeps each draw's class probabilities (B, K) in ``probs``."""

    def loss(logits: Tensor, y: Tensor) -> Tensor:
        probs.append(logits.detach().softmax(dim=1))
        return loss_fn(logits, y)

    return loss


def _beats(loss: Tensor, fooled: Tensor, old_loss: Tensor, old_fooled: Tensor) -> Tensor:
    """Bool (B,): a point that fools the model beats one that does not; otherwise the higher loss wins."""
    return (fooled & ~old_fooled) | ((fooled == old_fooled) & (loss > old_loss))


def _where(mask: Tensor, new: tuple[Tensor, ...], old: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Per example, each of ``new`` where ``mask`` (B,) holds, else the matching one of ``old`` (no host sync)."""
    return tuple(torch.where(batch_view(mask, n), n, o) for n, o in zip(new, old, strict=True))


@dataclass(frozen=True, kw_only=True)
class _AutoPGD(Attack):
    """The APGD loop; subclasses choose the loss it climbs."""

    norm: ClassVar[Norm] = Norm.LINF

    steps: int = 100  # AutoAttack's budget
    restarts: int = 1  # each runs only on the examples no earlier one fooled
    rho: float = 0.75  # halve the step when at most this fraction of the steps since the last checkpoint gained

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps=}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts=}")
        if not 0 <= self.rho <= 1:
            raise ValueError(f"rho must be in [0, 1], got {self.rho=}")

    @abstractmethod
    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per-example loss (B,) to maximise."""

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Per example, the highest-loss point the (sample-averaged) prediction gets wrong, else the highest-loss."""
        check_inputs(x, y)
        x = x.detach()
        if self.radius == 0:
            return x.clone()
        best = x.clone()  # (B, C, H, W)
        best_loss = x.new_full((x.shape[0],), -math.inf)  # (B,)
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)  # (B,)
        for _ in range(self.restarts):
            idx = (~fooled).nonzero().squeeze(1)  # (b,)
            if idx.numel() == 0:
                break
            x_adv, loss, hit = self._run(model, x[idx], y[idx])
            take = _beats(loss, hit, best_loss[idx], fooled[idx])  # (b,)
            best[idx[take]], best_loss[idx[take]] = x_adv[take], loss[take]
            fooled[idx] = hit
        return best

    def _probe(self, model: nn.Module, x_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """EOT gradient (B, C, H, W), EOT loss (B,) and whether the prediction averaged over those draws errs (B,)."""
        probs: list[Tensor] = []
        grad, loss = input_gradient(model, x_adv, y, _recording(self._loss, probs), self.eot_samples)
        return grad, loss, torch.stack(probs).mean(dim=0).argmax(dim=1) != y

    def _start(self, x: Tensor) -> Tensor:
        """A random point on the ball's surface around ``x`` (before the projection onto [0, 1])."""
        t = torch.empty_like(x).uniform_(-1, 1)  # (B, C, H, W)
        return x + self.radius * t / batch_view(t.flatten(1).abs().amax(dim=1).clamp_min(1e-12), t)

    def _direction(self, grad: Tensor) -> Tensor:
        """The unit step direction of the ball's norm: the gradient's sign."""
        return grad.sign()

    def _project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return (x + (x_adv - x).clamp(-self.radius, self.radius)).clamp(0, 1)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One APGD run from a random start: (point, its loss, whether it fools the model) per example."""
        eps = self.radius
        x_adv = self._project(self._start(x), x)
        grad, loss, fooled = self._probe(model, x_adv, y)
        out, out_loss, out_fooled = x_adv, loss, fooled  # what perturb gets
        x_best, grad_best, loss_best = x_adv, grad, loss  # where a step cut restarts
        step = x.new_full((x.shape[0],), 2 * eps)  # (B,) per-example step size
        x_prev = x_adv
        history = [loss]  # EOT loss after every step, the start first
        window = max(int(_FIRST_CHECK * self.steps), 1)
        shrink, shortest = max(int(_CHECK_SHRINK * self.steps), 1), max(int(_SHORTEST_CHECK * self.steps), 1)
        since_check = 0
        cut_last = torch.ones_like(fooled)  # (B,) step halved at the last checkpoint (none yet: skip condition 2)
        loss_best_last = loss_best
        for i in range(self.steps):
            alpha = 1.0 if i == 0 else _MOMENTUM
            z = self._project(x_adv + batch_view(step, x) * self._direction(grad), x)
            x_prev, x_adv = x_adv, self._project(x_adv + alpha * (z - x_adv) + (1 - alpha) * (x_adv - x_prev), x)
            grad, loss, fooled = self._probe(model, x_adv, y)
            history.append(loss)
            keep = _beats(loss, fooled, out_loss, out_fooled)  # (B,)
            out, out_loss, out_fooled = _where(keep, (x_adv, loss, fooled), (out, out_loss, out_fooled))
            x_best, grad_best, loss_best = _where(loss > loss_best, (x_adv, grad, loss), (x_best, grad_best, loss_best))
            since_check += 1
            if since_check < window:
                continue
            gains = (torch.stack(history[-window - 1:]).diff(dim=0) > 0).sum(dim=0)  # (B,) rises since the last check
            cut = (gains <= self.rho * window) | (~cut_last & (loss_best_last >= loss_best))  # (B,)
            step = torch.where(cut, step / 2, step)
            x_adv, grad = _where(cut, (x_best, grad_best), (x_adv, grad))
            cut_last, loss_best_last = cut, loss_best
            since_check, window = 0, max(window - shrink, shortest)
        return out, out_loss, out_fooled


@register_attack("apgd-ce")
@dataclass(frozen=True, kw_only=True)
class APGDCE(_AutoPGD):
    """L-inf APGD on the cross-entropy loss (AutoAttack's first attack)."""

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return cross_entropy(logits, y)


@register_attack("apgd-dlr")
@dataclass(frozen=True, kw_only=True)
class APGDDLR(_AutoPGD):
    """L-inf APGD on the scale-invariant DLR loss (needs >= 3 classes)."""

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return dlr_loss(logits, y)


@register_attack("apgd-l2")
@dataclass(frozen=True, kw_only=True)
class APGDL2(_AutoPGD):
    """L2 APGD on the cross-entropy loss (AutoAttack's L2 attack): Gaussian start, normalised steps, L2 projection."""

    norm: ClassVar[Norm] = Norm.L2

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return cross_entropy(logits, y)

    def _start(self, x: Tensor) -> Tensor:
        t = torch.randn_like(x)  # (B, C, H, W)
        return x + self.radius * t / batch_view(l2_norms(t).clamp_min(1e-12), t)

    def _direction(self, grad: Tensor) -> Tensor:
        return grad / batch_view(l2_norms(grad).clamp_min(1e-12), grad)

    def _project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return project_l2(x_adv, x, self.radius)
