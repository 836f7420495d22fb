"""The attack interface: map clean inputs in [0, 1] to adversarial inputs inside a threat model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn

from trainables.models.base import predict

__all__ = ["Attack", "batch_view", "check_inputs", "l2_norms", "misclassified"]


class Attack(ABC):
    """An adversary in pixel space; ``norm`` names its ball ("linf" or "l2") of radius ``eps``.

    Subclasses are frozen dataclasses whose fields are the attack's tunables. ``perturb`` never
    changes ``model.training`` and never leaves gradients on the model's parameters.
    """

    norm: ClassVar[str] = "linf"

    @abstractmethod
    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial inputs: same shape as ``x``, inside the ball and [0, 1], detached."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return self.perturb(model, x, y)


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


def misclassified(model: nn.Module, x: Tensor, y: Tensor, samples: int = 1) -> Tensor:
    """Bool (B,): the (sample-averaged) prediction on ``x`` differs from ``y``."""
    return predict(model, x, samples) != y


def batch_view(t: Tensor, like: Tensor) -> Tensor:
    """Reshape per-example values (B,) to broadcast against ``like`` (B, ...)."""
    return t.view(-1, *([1] * (like.dim() - 1)))
