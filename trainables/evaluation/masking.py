"""Gradient masking: the sanity checks of an evaluation, after AutoAttack's, and the rule that makes a model suspect.

- the large-eps check: accuracy under PGD at an L-inf radius that can turn any image into mid-grey
  (:data:`MASKING_EPS`); far above chance it is a sign of gradient masking;
- the robust-above-natural check: a worst case above the natural accuracy cannot be honest;
- the gradient-free check: when a suite holds an attack that reads outputs only (Square), the
  share of examples it breaks that every gradient attack of its ball left standing
  (:func:`gradient_free_gap`); above :data:`GRADIENT_FREE_GAP_LIMIT` the gradients are hiding something.

:func:`check_masking` runs them on a scored model and returns a :class:`MaskingFlags`; a model whose
flags say ``suspect`` is reported but never exported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from trainables.attacks import PGD, ThreatModel, attack_class

from .result import RobustResult, outcome_name
from .sharded import evaluate_sharded
from .suite import SuiteConfig

__all__ = ["GRADIENT_FREE_GAP_LIMIT", "MASKING_ACC_LIMIT", "MASKING_EPS", "MASKING_EXAMPLES", "MASKING_STEPS",
           "MaskingFlags", "check_masking", "gradient_free_gap", "large_eps_accuracy"]

MASKING_EPS = 0.5  # L-inf radius that can turn any image into mid-grey
MASKING_STEPS = 20  # at least this many PGD steps (more when the suite's PGD takes more)
MASKING_ACC_LIMIT = 0.15  # accuracy at MASKING_EPS above this is suspicious (chance is ~0.10)
MASKING_EXAMPLES = 100  # examples the large-eps check attacks
GRADIENT_FREE_GAP_LIMIT = 0.03  # a gradient-free attack breaking more than this beyond the gradient ones is suspicious


@dataclass(frozen=True)
class MaskingFlags:
    """The gradient-masking checks of one scored model."""

    large_eps_acc: float  # accuracy under PGD at MASKING_EPS: about zero for a model whose gradients are honest
    robust_above_natural: bool  # the worst case exceeded the natural accuracy
    gradient_free_gap: float = 0.0  # examples only a gradient-free attack broke (0: none ran, or it broke none)

    @property
    def large_eps(self) -> bool:
        """The large-eps check fired."""
        return self.large_eps_acc > MASKING_ACC_LIMIT

    @property
    def gradient_free(self) -> bool:
        """The gradient-free check fired."""
        return self.gradient_free_gap > GRADIENT_FREE_GAP_LIMIT

    @property
    def suspect(self) -> bool:
        """Any check fired: the model's robust accuracy cannot be trusted, and it is never exported."""
        return self.robust_above_natural or self.large_eps or self.gradient_free


def large_eps_accuracy(model: nn.Module, images: Tensor, labels: Tensor, suite: SuiteConfig,
                       device: torch.device | str | None = None, eps: float = MASKING_EPS) -> float:
    """Accuracy under PGD at L-inf radius ``eps`` (the suite's EOT and prediction settings, one restart)."""
    steps = max([MASKING_STEPS] + [a.steps for a in suite.attacks if isinstance(a, PGD)])
    huge = replace(suite, attacks=(PGD(steps=steps, restarts=1),))
    return evaluate_sharded(model, images, labels, huge, ThreatModel(eps, None), device=device).worst_acc


def check_masking(model: nn.Module, result: RobustResult, images: Tensor, labels: Tensor, suite: SuiteConfig,
                  device: torch.device | str | None = None) -> MaskingFlags:
    """The flags of a model scored as ``result`` on ``images``: the large-eps check runs on the first examples."""
    head = slice(0, MASKING_EXAMPLES)
    return MaskingFlags(large_eps_acc=large_eps_accuracy(model, images[head], labels[head], suite, device),
                        robust_above_natural=result.worst_acc > result.natural_acc,
                        gradient_free_gap=gradient_free_gap(result) or 0.0)


def gradient_free_gap(result: RobustResult) -> float | None:
    """The share of examples a gradient-free attack broke in a ball whose gradient attacks all left them standing.

    None when the result holds no gradient-free outcome. Per ball: the worst case over its gradient
    attacks minus the worst case over all its attacks; the largest over the balls.
    """
    gaps = []
    for norm in result.attacked_norms:
        keys = [k for k, n in result.norms.items() if n == norm]
        free = [k for k in keys if not attack_class(outcome_name(k)).uses_gradients]
        if not free:
            continue
        standing = result.natural.clone()
        for key in keys:
            if key not in free:
                standing &= result.per_attack[key]
        everything = standing.clone()
        for key in free:
            everything &= result.per_attack[key]
        gaps.append((standing.float().mean() - everything.float().mean()).item())
    return max(gaps) if gaps else None
