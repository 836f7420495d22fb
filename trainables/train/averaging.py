"""Weight averaging: an exponential moving average (EMA) of a run's weights, the model its epochs are scored on.

After every optimiser step the average moves towards the trained weights by ``1 - d_n``, with the
decay warmed up as TensorFlow's ``ExponentialMovingAverage(num_updates=n)`` does:
``d_n = min(decay, (1 + n) / (10 + n))``, so an average over a short run (an early rung, a short
screening schedule) is not dominated by the initial weights. Floating-point buffers (BatchNorm's
running statistics) are averaged with the weights, as timm's ``ModelEmaV3`` does; integer buffers
(BatchNorm's batch count) are copied.

One average serves a single model (k = 1) and a bundle of k members (:mod:`trainables.bundle`),
each member with its own decay: a bundled tensor holds its members one after the other along its
flattened length, as :class:`~trainables.bundle.optim.MemberSGD` reads them. Written here rather
than with ``torch.optim.swa_utils.AveragedModel`` because that takes one averaging function for
every parameter (no per-member decay) and its EMA helper has no warm-up.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage", "ema_weight"]


def ema_weight(decay: float, updates: int) -> float:
    """The share of the current weights the average takes at its update number ``updates`` (0-based).

    1 when ``decay`` is 0 (no averaging: the average is the weights).
    """
    return 1.0 - min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """The EMA of a model's (or a k-member bundle's) state, held in a copy of the model that can be scored."""

    def __init__(self, model: nn.Module, decays: Sequence[float], updates: int = 0) -> None:
        """Start the average at ``model``'s weights; ``decays``: one per member (one for a single model)."""
        if not decays or not all(0.0 <= d < 1.0 for d in decays):
            raise ValueError(f"EMA decays must be in [0, 1), one per member, got {list(decays)}")
        self.model = copy.deepcopy(model)
        self.decays = tuple(float(d) for d in decays)
        self.updates = updates

    @property
    def k(self) -> int:
        """Members averaged (1 for a single model)."""
        return len(self.decays)

    @torch.no_grad()
    def update(self, source: nn.Module) -> None:
        """Move the average towards ``source``'s weights (a model of the same structure), one step."""
        shares = [ema_weight(d, self.updates) for d in self.decays]
        theirs = source.state_dict()
        for name, mine in self.model.state_dict().items():
            _move(mine, theirs[name], shares)
        self.updates += 1

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights (CPU copies), keyed as the model's state dict."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor], updates: int) -> None:
        """Restore an average written by :meth:`state_dict` after ``updates`` updates."""
        self.model.load_state_dict(state)
        self.updates = updates


def _move(mine: Tensor, theirs: Tensor, shares: Sequence[float]) -> None:
    """``mine += share * (theirs - mine)``, member by member along the flattened tensor; copy what is not a float."""
    k = len(shares)
    if not mine.is_floating_point() or all(s == 1.0 for s in shares) or (k > 1 and mine.numel() % k):
        mine.copy_(theirs)
        return
    if k == 1:
        mine.lerp_(theirs.to(mine.dtype), shares[0])
        return
    weight = torch.tensor(shares, dtype=mine.dtype, device=mine.device).view(k, 1)
    a, b = mine.reshape(k, -1), theirs.reshape(k, -1).to(mine.dtype)
    moved = torch.where(weight == 1.0, b, torch.lerp(a, b, weight))
    mine.copy_(moved.reshape(mine.shape))
