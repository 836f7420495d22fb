"""The honest objective: worst-case robust accuracy on validation, with the gradient-masking checks.

Robust accuracy is the per-example worst case over the space's objective suite (stochastic models
are attacked with EOT, see :func:`trainables.evaluation.evaluate_robustness`). The checks and the
rule that makes a trial suspect live in :mod:`trainables.evaluation.masking`; suspect trials are
reported but never exported. Inside a data-parallel trial every rank scores its share of the
examples and all of them end with the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainables.attacks import ThreatModel
from trainables.data import ImageSet
from trainables.evaluation import MaskingFlags, SuiteConfig, check_masking, evaluate_sharded
from trainables.models import RobustModel

__all__ = ["ObjectiveScore", "score_objective"]


@dataclass(frozen=True)
class ObjectiveScore:
    """A trained model under the objective suite: its metrics (``robust_acc`` the objective) and masking checks."""

    metrics: dict[str, float]  # natural_acc, robust_acc (the worst case), robust_acc/<norm>, acc/<attack>
    masking: MaskingFlags


def score_objective(model: RobustModel, val: ImageSet, suite: SuiteConfig, threat: ThreatModel,
                    device: torch.device | None = None) -> ObjectiveScore:
    """Score a trained model on the validation split: the suite's worst case and the masking checks."""
    images = val.floats()
    result = evaluate_sharded(model, images, val.labels, suite, threat, device=device)
    return ObjectiveScore(result.as_dict(), check_masking(model, result, images, val.labels, suite, device))
