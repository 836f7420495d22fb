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

import torch

from trainables.attacks import SuiteConfig, evaluate_sharded, large_eps_accuracy
from trainables.data import ImageSet
from trainables.models import RobustModel

__all__ = ["MASKING_ACC_LIMIT", "MASKING_EXAMPLES", "score_objective"]

MASKING_ACC_LIMIT = 0.15  # accuracy at the masking check's huge eps above this is suspicious (chance is ~0.10)
MASKING_EXAMPLES = 100


def score_objective(model: RobustModel, val: ImageSet, suite: SuiteConfig,
                    device: torch.device | None = None) -> dict[str, float]:
    """Objective metrics of a trained model: ``objective``, per attack, and the masking flags."""
    result = evaluate_sharded(model, val.floats(), val.labels, suite, device=device)
    metrics = {f"final/{k}": v for k, v in result.as_dict().items()}
    subset = val.head(MASKING_EXAMPLES)
    masking = large_eps_accuracy(model, subset.floats(), subset.labels, suite, device=device)
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
