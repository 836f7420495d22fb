"""The export's scores: the model under the export suite on the validation and test splits."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from trainables.attacks import SuiteConfig, evaluate_robustness
from trainables.data import Splits
from trainables.models import RobustModel, is_stochastic

__all__ = ["PLAIN_SPLIT", "evaluate_for_export"]

PLAIN_SPLIT = "test_plain"  # the test split attacked through a stochastic model's own sampled gradients


def evaluate_for_export(
    model: RobustModel,
    splits: Splits,
    suite: SuiteConfig,
    device: torch.device | str | None = None,
    val_limit: int | None = None,
) -> dict[str, Any]:
    """Validation (first ``val_limit``) and test accuracies under ``suite``: {"validation", "test", ...}.

    A stochastic model attacked through its surrogate gradients (the adaptive figure, the one that
    counts) is also attacked on the test split through its own sampled gradients, as a non-adaptive
    evaluation would: ``test_plain``. The gap between the two shows what the surrogate uncovers.
    """
    out: dict[str, Any] = {}
    examples: dict[str, int] = {}
    runs = [("validation", splits.val.head(val_limit), suite), ("test", splits.test, suite)]
    if suite.adaptive and is_stochastic(model):
        runs.append((PLAIN_SPLIT, splits.test, replace(suite, adaptive=False)))
    for key, data, scored_with in runs:
        result = evaluate_robustness(model, data.floats(), data.labels, scored_with, device=device)
        metrics = result.as_dict()
        assert 0.0 <= metrics["robust_acc"] <= metrics["natural_acc"] <= 1.0, (key, metrics)
        out[key] = metrics
        examples[key] = result.n
    out["suite"] = suite.to_dict()
    out["examples"] = examples
    return out
