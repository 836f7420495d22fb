"""What several tests need around an attack: a few Adam steps on real training images, and accuracies."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.data import Splits
from trainables.models.base import predict


def adam_steps(model: nn.Module, splits: Splits, steps: int, lr: float = 3e-3) -> nn.Module:
    """``steps`` Adam steps on random 128-image batches of the training split; returned in eval mode, no grads."""
    x, y = splits.train.floats(), splits.train.labels
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """The share of ``x`` that ``model`` predicts as ``y``."""
    return (predict(model, x) == y).float().mean().item()


def attack_accuracy(attack, model: nn.Module, x: Tensor, y: Tensor, seed: int = 0) -> float:
    """``model``'s accuracy on ``attack``'s perturbations of ``x``, the attack's draws seeded by ``seed``."""
    torch.manual_seed(seed)
    return accuracy(model, attack.perturb(model, x, y), y)
