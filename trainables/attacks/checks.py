"""Sanity checks of an evaluation, after AutoAttack's: each a named warning or a measured flag.

- :class:`RobustnessWarning` when a randomised model is attacked without Expectation over
  Transformation (its robust accuracy is then likely overestimated);
- :func:`large_eps_accuracy`: accuracy under PGD at an L-inf radius that can turn any image into
  mid-grey; far above chance it is a sign of gradient masking.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import torch
from torch import Tensor, nn

from trainables.models.base import is_stochastic

from .pgd import PGD
from .suite import SuiteConfig
from .threat import ThreatModel

__all__ = ["MASKING_EPS", "MASKING_STEPS", "RobustnessWarning", "large_eps_accuracy", "warn_if_unreliable"]

MASKING_EPS = 0.5  # L-inf radius that can turn any image into mid-grey
MASKING_STEPS = 20  # at least this many PGD steps (more when the suite's PGD takes more)


class RobustnessWarning(UserWarning):
    """An evaluation whose robust accuracy is likely overestimated."""


def warn_if_unreliable(model: nn.Module, suite: SuiteConfig) -> None:
    """Warn (``RobustnessWarning``) when a stochastic model is attacked with a single gradient draw."""
    if suite.attacks and suite.eot_samples == 1 and is_stochastic(model):
        warnings.warn("stochastic model attacked without EOT (eot_samples 1): its robust accuracy is likely "
                      "overestimated", RobustnessWarning, stacklevel=3)


def large_eps_accuracy(model: nn.Module, images: Tensor, labels: Tensor, suite: SuiteConfig,
                       device: torch.device | str | None = None, eps: float = MASKING_EPS) -> float:
    """Accuracy under PGD at L-inf radius ``eps`` (the suite's EOT and prediction settings, one restart)."""
    from .sharded import evaluate_sharded

    steps = max([MASKING_STEPS] + [a.steps for a in suite.attacks if isinstance(a, PGD)])
    huge = replace(suite, threat=ThreatModel(eps, suite.threat.l2_eps), attacks=(PGD(steps=steps, restarts=1),))
    return evaluate_sharded(model, images, labels, huge, device=device).worst_acc
