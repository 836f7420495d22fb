"""What several tests need before they attack a model: a few Adam steps on real training images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.data import Splits


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
