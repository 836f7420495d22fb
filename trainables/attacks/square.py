"""Square Attack (Andriushchenko et al., 2020), L-inf: random search over square patches, no gradients at all.

The score-based attack of AutoAttack's standard version: it only reads the model's output, so a
model whose gradients are masked (shattered, stochastic, obfuscated) cannot hide from it the way
it can from PGD or APGD. Start from vertical stripes of +-eps; then, per query, move one random
square window of every still-correct example to a new +-eps corner of the ball (one sign per
channel), and keep it where the margin ``log p_y - max_{k != y} log p_k`` fell. The window's side
shrinks with the query count as in the paper's schedule (``p_init`` of the pixels at first, halved
at fixed fractions of the budget, rescaled from 10,000 queries). A stochastic model is queried
through its prediction averaged over ``eot_samples`` draws, as its accuracy is measured.

``follow_up``: where the first run broke more than
:data:`trainables.evaluation.robustness.FOLLOW_UP_SHARE` of a batch (as the evaluation measures a
break: the prediction its accuracy is taken from), a second run of that many queries (its own
schedule, large windows first) on what it left standing. A short
Square understates what a long one finds exactly where it finds something: on an eps-0.3 LWTA
export the suite's gradient attacks left 59.0% of 500 test images, Square at 300 queries 53.4%, at
1000 50.8%, at 3000 50.6% (docs/results.md, "Square's budget"); where 300 queries break nothing
beyond the gradient attacks (an eps-0.1 export of the same space) the follow-up costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor, nn

from trainables.models.base import predict_proba

from .base import Attack, check_inputs
from .registry import register_attack
from .threat import Norm

__all__ = ["Square", "square_fraction"]

_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # queries (of 10,000) where the window halves


def square_fraction(p_init: float, query: int, n_queries: int) -> float:
    """The share of an image's pixels the window covers at ``query`` of ``n_queries`` (the paper's schedule)."""
    scaled = int(query / n_queries * 10000)
    return p_init / 2 ** sum(scaled > mark for mark in _SCHEDULE)


def _margin(model: nn.Module, x: Tensor, y: Tensor, draws: int) -> Tensor:
    """Per-example margin (B,) of the averaged prediction: log p_y - max_{k != y} log p_k (< 0: misclassified)."""
    logp = predict_proba(model, x, draws).clamp_min(1e-12).log()  # (B, classes)
    own = logp.gather(1, y[:, None]).squeeze(1)
    other = logp.scatter(1, y[:, None], -math.inf).amax(dim=1)
    return own - other


@register_attack("square")
@dataclass(frozen=True, kw_only=True)
class Square(Attack):
    """L-inf Square Attack: ``n_queries`` model queries per example (stops early once it is misclassified); in a
    suite, ``follow_up`` more where those broke enough of a batch."""

    norm: ClassVar[Norm] = Norm.LINF
    uses_gradients: ClassVar[bool] = False

    n_queries: int = 300
    p_init: float = 0.8
    follow_up: int = 0  # queries of a second run on what the first left standing, when the first broke enough

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_queries < 1:
            raise ValueError(f"n_queries must be >= 1, got {self.n_queries=}")
        if self.follow_up < 0:
            raise ValueError(f"follow_up must be >= 0, got {self.follow_up=}")
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {self.p_init=}")

    def work(self) -> float:
        """Forward passes only (a third of a forward and backward pass each): n_queries x averaged draws.

        The follow-up is not counted: it runs only where the first run broke enough.
        """
        return self.n_queries * self.eot_samples / 3

    @torch.no_grad()
    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Inputs inside the L-inf ball and [0, 1] whose (averaged) margin is the lowest the queries found."""
        check_inputs(x, y)
        eps = float(self.radius)
        x = x.detach()
        if eps == 0 or x.shape[0] == 0:
            return x.clone()
        b, c, h, w = x.shape
        stripes = eps * torch.randint(0, 2, (b, c, 1, w), device=x.device, dtype=x.dtype).mul(2).sub(1)
        best = (x + stripes).clamp(0, 1)
        margin = _margin(model, best, y, self.eot_samples)  # (B,)
        for query in range(1, self.n_queries):
            active = (margin > 0).nonzero().squeeze(1)  # (A,): still classified correctly
            if active.numel() == 0:
                break
            share = square_fraction(self.p_init, query, self.n_queries)
            side = min(max(round(math.sqrt(share * h * w)), 1), h - 1, w - 1)
            top = int(torch.randint(0, h - side + 1, ()).item())
            left = int(torch.randint(0, w - side + 1, ()).item())
            xa, delta = x[active], best[active] - x[active]  # (A, C, H, W)
            signs = torch.randint(0, 2, (active.numel(), c, 1, 1), device=x.device, dtype=x.dtype)
            corner = eps * signs.mul(2).sub(1)
            delta[:, :, top:top + side, left:left + side] = corner
            candidate = (xa + delta).clamp(0, 1)
            tried = _margin(model, candidate, y[active], self.eot_samples)
            better = tried < margin[active]
            best[active[better]] = candidate[better]
            margin[active[better]] = tried[better]
        return best

    def follow_up_attack(self) -> Square | None:
        """The second run, ``follow_up`` queries on its own schedule (None: no follow-up)."""
        return replace(self, n_queries=self.follow_up, follow_up=0) if self.follow_up else None
