"""The attack interface: map clean inputs in [0, 1] to adversarial inputs inside a threat model.

An attack is a frozen dataclass whose fields are its budget (steps, restarts, ...), each with a
default, plus two fields every attack shares: ``eps``, the radius of its ball, and ``eot_samples``,
the gradient draws per step on a stochastic model. In a suite or a training mix an attack is a
*spec*: ``eps`` stays None and :meth:`Attack.bind` fills it in from the run's threat model, so that
a run sets its epsilon in one place. Used on its own, an attack takes ``eps`` directly, as in
torchattacks: ``PGD(eps=0.1, steps=10).perturb(model, x, y)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from trainables.models.base import predict

from .threat import NORMS, Norm, ThreatModel

__all__ = ["SHARED_FIELDS", "Attack", "Radius", "batch_view", "check_inputs", "l2_norms", "misclassified", "project_l2",
           "spread"]

Radius = float | Tensor  # one radius, or one per example (B,) when a bundle's members each attack at their own

SHARED_FIELDS = ("eps", "eot_samples")  # what the suite sets; every other field is the attack's own budget


@dataclass(frozen=True, kw_only=True)
class Attack(ABC):
    """An adversary in pixel space: the ball ``norm`` of radius ``eps`` around each input, clipped to [0, 1].

    ``perturb`` never changes ``model.training`` and never leaves gradients on the model's parameters.
    Subclasses register with :func:`~trainables.attacks.registry.register_attack`, which sets ``name``.
    """

    name: ClassVar[str] = ""
    norm: ClassVar[Norm] = Norm.LINF
    per_example_radii: ClassVar[bool] = False  # whether perturb honours one radius per example (per_example)
    uses_gradients: ClassVar[bool] = True  # False: reads outputs only (a stochastic model's gradient way is moot)

    eps: float | None = None  # radius in pixel units; None until bound to a threat model
    eot_samples: int = 1  # gradient draws per step (used on stochastic models only)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"{type(self).__name__}.norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.eps is not None and not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps must be finite and >= 0, got {self.eps=}")
        if self.eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1, got {self.eot_samples=}")

    @abstractmethod
    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial inputs: same shape as ``x``, inside the ball and [0, 1], detached."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return self.perturb(model, x, y)

    @property
    def radius(self) -> Radius:
        """``eps`` (or the per-example radii of :meth:`per_example`); ValueError when it was never given one."""
        radii = self.__dict__.get("_radii")
        if radii is not None:
            return radii
        if self.eps is None:
            raise ValueError(f"attack {self.name or type(self).__name__} has no eps: pass eps=... or bind it to "
                             "a threat model")
        return self.eps

    def per_example(self, radii: Tensor) -> Attack:
        """This attack with one radius per example (B,) instead of ``eps``: each member of a bundle at its own.

        The copy keeps ``eps`` (its spec is unchanged); ValueError for an attack that does not support it.
        """
        if not self.per_example_radii:
            raise ValueError(f"attack {self.name} takes one radius for all examples: members of a bundle that "
                             "train on it need the same eps_scale")
        if radii.dim() != 1 or not bool(torch.isfinite(radii).all()) or bool((radii < 0).any()):
            raise ValueError(f"per-example radii must be finite, >= 0 and of shape (B,), got {tuple(radii.shape)}")
        clone = replace(self)
        object.__setattr__(clone, "_radii", radii)
        return clone

    def bind(self, threat: ThreatModel, eot_samples: int = 1) -> Attack:
        """This attack at ``threat``'s radius for its norm, with ``eot_samples`` gradient draws per step."""
        return replace(self, eps=threat.radius(self.norm), eot_samples=eot_samples)

    def work(self) -> float:
        """Model passes per example, a forward and backward pass counting 1: its steps x restarts x gradient draws.

        A relative measure of cost (what an ETA scales measured seconds by), not a promise.
        """
        budget = self.budget()
        return float(budget.get("steps", 1) * budget.get("restarts", 1) * self.eot_samples)

    def follow_up_attack(self) -> Attack | None:
        """A second run for where this one broke enough of a batch (None: none; Square's ``follow_up``)."""
        return None

    def budget(self) -> dict[str, Any]:
        """The attack's own settings: every field but the shared ``eps`` and ``eot_samples``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in SHARED_FIELDS}

    def describe(self) -> str:
        """One line for tables and model cards: ``"L-inf eps 0.1; steps 10, restarts 1"``."""
        ball = "unbounded L2" if self.eps is None else f"{Norm(self.norm).title} eps {self.eps:g}"
        knobs = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.budget().items()
                          if v is not None)
        return f"{ball}; {knobs}" if knobs else ball

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON: ``{"name": ..., **budget}`` (eps comes from the threat model)."""
        return {"name": self.name, **self.budget()}


def check_inputs(x: Tensor, y: Tensor) -> None:
    """Raise ValueError unless ``x`` is a float batch in [0, 1] with one label per example."""
    if not x.is_floating_point():
        raise ValueError(f"inputs must be a float tensor in [0, 1], got {x.dtype=}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"need one label per input, got {tuple(x.shape)=} and {tuple(y.shape)=}")
    if x.numel() and not (0 <= x.min() and x.max() <= 1):
        raise ValueError(f"inputs must lie in [0, 1], got min={x.min().item()}, max={x.max().item()}")


def l2_norms(t: Tensor) -> Tensor:
    """Per-example L2 norm (B,) of a batch (B, ...)."""
    return t.flatten(1).norm(p=2, dim=1)


def project_l2(x_adv: Tensor, x: Tensor, eps: Radius) -> Tensor:
    """``x_adv`` projected onto the L2 ball of radius ``eps`` (or per-example radii (B,)) around ``x``, then [0, 1]."""
    delta = x_adv - x  # (B, C, H, W)
    factor = (eps / l2_norms(delta).clamp_min(1e-12)).clamp(max=1.0)  # (B,)
    return (x + delta * batch_view(factor, delta)).clamp(0, 1)


def misclassified(model: nn.Module, x: Tensor, y: Tensor, samples: int = 1) -> Tensor:
    """Bool (B,): the (sample-averaged) prediction on ``x`` differs from ``y``."""
    return predict(model, x, samples) != y


def spread(value: Radius, like: Tensor) -> Radius:
    """A radius to broadcast against ``like`` (B, ...): a float as it is, per-example values (B,) as (B, 1, ...)."""
    return value if isinstance(value, (int, float)) else batch_view(value, like)


def batch_view(t: Tensor, like: Tensor) -> Tensor:
    """Reshape per-example values (B,) to broadcast against ``like`` (B, ...)."""
    return t.view(-1, *([1] * (like.dim() - 1)))
