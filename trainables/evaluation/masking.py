"""Gradient masking: the sanity checks of an evaluation, after AutoAttack's, and the rule that makes a model suspect.

- the large-eps check: accuracy under PGD at an L-inf radius that can turn any image into mid-grey
  (:data:`MASKING_EPS`); far above chance it is a sign of gradient masking;
- the robust-above-natural check: a worst case above the natural accuracy cannot be honest.

:func:`check_masking` runs them on a scored model and returns a :class:`MaskingFlags`; a model whose
flags say ``suspect`` is reported but never exported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from trainables.attacks import PGD, ThreatModel

from .result import RobustResult
from .sharded import evaluate_sharded
from .suite import SuiteConfig

__all__ = ["MASKING_ACC_LIMIT", "MASKING_EPS", "MASKING_EXAMPLES", "MASKING_STEPS", "MaskingFlags", "check_masking",
           "large_eps_accuracy"]

MASKING_EPS = 0.5  # L-inf radius that can turn any image into mid-grey
MASKING_STEPS = 20  # at least this many PGD steps (more when the suite's PGD takes more)
MASKING_ACC_LIMIT = 0.15  # accuracy at MASKING_EPS above this is suspicious (chance is ~0.10)
MASKING_EXAMPLES = 100  # examples the large-eps check attacks


@dataclass(frozen=True)
class MaskingFlags:
    """The gradient-masking checks of one scored model."""

    large_eps_acc: float  # accuracy under PGD at MASKING_EPS: about zero for a model whose gradients are honest
    robust_above_natural: bool  # the worst case exceeded the natural accuracy

    @property
    def large_eps(self) -> bool:
        """The large-eps check fired."""
        return self.large_eps_acc > MASKING_ACC_LIMIT

    @property
    def suspect(self) -> bool:
        """Any check fired: the model's robust accuracy cannot be trusted, and it is never exported."""
        return self.robust_above_natural or self.large_eps


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
                        robust_above_natural=result.worst_acc > result.natural_acc)
