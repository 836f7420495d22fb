"""The export's scores: the model under the export suite on the validation and test splits."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from trainables.attacks import ThreatModel
from trainables.data import Splits
from trainables.evaluation import (
    PROBE_EOT,
    PROBE_EXAMPLES,
    PROBE_STEPS,
    ProgressFn,
    SuiteConfig,
    convergence_gap,
    evaluate_in_processes,
    gradient_free_gap,
    scoring_workers,
)
from trainables.models import RobustModel, model_device

__all__ = ["CONVERGENCE_KEY", "GAP_KEY", "evaluate_for_export"]

GAP_KEY = "masking/gradient_free_gap"  # in a split's metrics: the share only a gradient-free attack (Square) broke
CONVERGENCE_KEY = "convergence/stronger_gap"  # in the test metrics: the share a stronger L-inf attack broke beyond


def evaluate_for_export(
    model: RobustModel,
    splits: Splits,
    suite: SuiteConfig,
    threat: ThreatModel,
    device: torch.device | str | None = None,
    val_limit: int | None = None,
    progress: ProgressFn | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Validation (first ``val_limit``) and test accuracies under ``suite`` at ``threat``: {"validation", "test", ...}.

    ``robust_acc`` is the per-example worst case over every attack of the suite, through every way
    of taking gradients it lists (an export suite attacks a stochastic model both through its
    surrogate and through its own sampled gradients, since neither is always the stronger).
    ``progress`` hears of every batch, labelled ``<split>: <attack>``. ``workers`` > 1 scores on the
    CPU in that many processes of one thread, each a contiguous share of the examples
    (:func:`~trainables.evaluation.evaluate_in_processes`; on a GPU ``device``, this process).
    """
    where = model_device(model) if device is None else torch.device(device)
    out: dict[str, Any] = {}
    examples: dict[str, int] = {}
    for key, data in (("validation", splits.val.head(val_limit)), ("test", splits.test)):
        heard = None if progress is None else _labelled(progress, key)
        result = evaluate_in_processes(model, data.floats(), data.labels, suite, threat, workers=workers,
                                       device=where, progress=heard)
        metrics = result.as_dict()
        assert 0.0 <= metrics["robust_acc"] <= metrics["natural_acc"] <= 1.0, (key, metrics)
        gap = gradient_free_gap(result)
        if gap is not None:  # examples only the gradient-free attack broke: gradient masking shows here
            metrics[GAP_KEY] = gap
        if key == "test":  # how far the claim is from converged: a stronger attack on what stands among the first
            heard = None if progress is None else _labelled(progress, "probe")
            stronger = convergence_gap(model, data.floats(), data.labels, suite, threat, result, workers=workers,
                                       device=where, progress=heard)
            if stronger is not None:
                metrics[CONVERGENCE_KEY] = stronger
                out["probe"] = {"steps_x": PROBE_STEPS, "eot_x": PROBE_EOT, "examples": min(PROBE_EXAMPLES, result.n)}
        out[key] = metrics
        examples[key] = result.n
    out["suite"] = suite.to_dict()
    out["threat"] = asdict(threat)
    out["stochastic"] = model.stochastic  # attacked through each way of taking gradients, with EOT
    out["examples"] = examples
    out["workers"] = scoring_workers(workers, where, len(splits.test))  # tuner.evaluate scores in as many shards
    return out


def _labelled(progress: ProgressFn, split: str) -> ProgressFn:
    return lambda label, done, total: progress(f"{split}: {label}", done, total)
