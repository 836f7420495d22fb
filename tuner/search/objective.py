"""The honest objective: worst-case robust accuracy on validation, with gradient-masking checks.

Robust accuracy is the per-example worst case over the space's evaluation suite (stochastic
models are attacked with EOT through their straight-through surrogate, see
:func:`trainables.attacks.evaluate_robustness`). A trial is *suspect* when its robust accuracy is
above its natural accuracy, or when a very large L-inf budget fails to drive a small batch's
accuracy to about zero (AutoAttack's sanity check for gradient masking); suspect trials are
reported but never exported. Inside a data-parallel trial every rank scores its share of the
examples and all of them end with the same metrics.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from trainables.attacks import SuiteConfig, evaluate_sharded
from trainables.data import ImageSet
from trainables.models import RobustModel

__all__ = ["MASKING_ACC_LIMIT", "MASKING_EPS", "score_objective"]

MASKING_EPS = 0.5  # L-inf budget that can turn any image into mid-grey
MASKING_ACC_LIMIT = 0.15  # accuracy at MASKING_EPS above this is suspicious (a constant classifier keeps ~0.10)
MASKING_EXAMPLES = 100


def _masking_accuracy(model: RobustModel, val: ImageSet, suite: SuiteConfig, device: torch.device | None) -> float:
    """PGD accuracy at eps ``MASKING_EPS`` on the first examples of ``val``."""
    huge = replace(suite, attacks=("pgd",), eps=MASKING_EPS, steps=max(suite.steps, 20), restarts=1)
    subset = val.head(MASKING_EXAMPLES)
    return evaluate_sharded(model, subset.floats(), subset.labels, huge, device=device).worst_acc


def score_objective(model: RobustModel, val: ImageSet, suite: SuiteConfig,
                    device: torch.device | None = None) -> dict[str, float]:
    """Objective metrics of a trained model: ``objective``, per attack, and the masking flags."""
    result = evaluate_sharded(model, val.floats(), val.labels, suite, device=device)
    metrics = {f"final/{k}": v for k, v in result.as_dict().items()}
    masking = _masking_accuracy(model, val, suite, device)
    above = result.worst_acc > result.natural_acc
    masked = masking > MASKING_ACC_LIMIT
    metrics |= {
        "objective": result.worst_acc,
        "final/masking_acc": masking,
        "suspect": float(above or masked),
        "suspect_robust_above_natural": float(above),
        "suspect_large_eps": float(masked),
        "final_evaluated": 1.0,
    }
    return metrics
