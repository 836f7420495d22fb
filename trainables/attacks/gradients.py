"""Input gradients averaged over random forward passes (Expectation over Transformation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.models.base import is_stochastic

__all__ = ["LossFn", "cross_entropy", "eot_logits", "input_gradient"]

LossFn = Callable[[Tensor, Tensor], Tensor]  # (logits (B, K), labels (B,)) -> per-example loss (B,)


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example cross-entropy (B,)."""
    return F.cross_entropy(logits, y, reduction="none")


def _draws(model: nn.Module, eot_samples: int) -> int:
    if eot_samples < 1:
        raise ValueError(f"eot_samples must be >= 1, got {eot_samples=}")
    return eot_samples if is_stochastic(model) else 1


def input_gradient(
    model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn = cross_entropy, eot_samples: int = 1
) -> tuple[Tensor, Tensor]:
    """Gradient of the summed loss w.r.t. ``x`` and the per-example loss, both averaged over draws.

    A stochastic model is run ``eot_samples`` times (Athalye et al., 2018); a deterministic one once.
    Only ``x`` receives a gradient, so the model's parameters keep ``.grad`` untouched.
    """
    draws = _draws(model, eot_samples)
    x = x.detach().requires_grad_(True)
    grad = torch.zeros_like(x)  # (B, C, H, W)
    loss_sum = x.new_zeros(x.shape[0])  # (B,)
    with torch.enable_grad():
        for _ in range(draws):
            loss = loss_fn(model(x), y)  # (B,)
            (g,) = torch.autograd.grad(loss.sum(), x)
            grad += g
            loss_sum += loss.detach()
    return grad / draws, loss_sum / draws


def eot_logits(model: nn.Module, x: Tensor, eot_samples: int = 1) -> Tensor:
    """Logits (B, K) averaged over ``eot_samples`` forward passes (one for deterministic models)."""
    draws = _draws(model, eot_samples)
    total = model(x)
    for _ in range(draws - 1):
        total = total + model(x)
    return total / draws
