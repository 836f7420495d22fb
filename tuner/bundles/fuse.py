"""``--fuse k|auto|off``: how many trials of one shape train as one bundle, and the searcher and trainable for it.

``auto`` measures, in one Ray task holding a trial's resources (the hardware trials get), a training
step of the space's first starting point alone and in bundles of 2, 4 and 8
(:func:`trainables.bundle.fusion_costs`), and bundles the k whose step costs least per run, when
that is at most :data:`PAYS` of the run alone; else every trial trains alone. The choice is said
in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import optuna
import ray
from ray import tune

from search_spaces import Preset
from trainables.bundle import FusionCost, fusion_costs
from trainables.data import DatasetInfo, Splits
from trainables.train import RunSpec
from tuner.cluster.resources import TrialResources
from tuner.cluster.storage import StudyStorage
from tuner.trials.strategy import DefineBySpace, Strategy, point_epochs
from tuner.trials.trial import TrialContext

from .search import BundleKey, BundleSearch
from .trial import BundleContext, run_bundle_trial

__all__ = ["AUTO_SIZES", "PAYS", "FuseChoice", "Fusion", "bundle_searcher", "bundle_trainable", "choose", "parse_fuse",
           "resolve_fusion"]

AUTO_SIZES = (2, 4, 8)
PAYS = 0.85  # a bundle is used when a step costs at most this share of the run alone, per run
FuseChoice = int | Literal["auto"]  # trials per bundle (1: every trial alone), or "auto": measured


def parse_fuse(text: str) -> FuseChoice:
    """``--fuse``'s value: ``off`` (1), ``auto`` or a bundle size >= 1; ValueError (one line) otherwise."""
    if text in ("off", "auto"):
        return 1 if text == "off" else "auto"
    if not (text.isdigit() and int(text) >= 1):
        raise ValueError(f"--fuse must be off, auto or a number of trials >= 1, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class Fusion:
    """Trials per bundle (1: every trial alone) and why, in one line."""

    k: int
    reason: str = ""


def choose(costs: list[FusionCost]) -> Fusion:
    """The k of the cheapest step per run, when it pays; else 1."""
    alone = next(c.seconds_per_run for c in costs if c.k == 1)
    best = min(costs, key=lambda c: c.seconds_per_run)
    shares = ", ".join(f"k={c.k} {c.seconds_per_run / alone:.2f}x" for c in costs if c.k > 1)
    if best.k > 1 and best.seconds_per_run <= PAYS * alone:
        return Fusion(best.k, f"--fuse auto: bundles of {best.k} trials (a training step per trial costs, against "
                              f"a trial alone: {shares})")
    return Fusion(1, f"--fuse auto: every trial alone (bundling does not pay here: a training step per trial costs "
                     f"{shares} of a trial alone; a bundle is used at {PAYS:.2f}x or less)")


def _measure(spec: dict[str, Any], info: DatasetInfo, device: str) -> list[FusionCost]:
    """Runs in a Ray task with one trial's resources."""
    return fusion_costs(RunSpec.from_dict(spec), info, AUTO_SIZES, device)


def resolve_fusion(fuse: FuseChoice, spec: RunSpec, info: DatasetInfo, layout: TrialResources) -> Fusion:
    """``--fuse``'s bundle size for trials of ``layout``: as given, or measured (``auto``); data-parallel: 1."""
    if fuse == 1 or layout.data_parallel:
        return Fusion(1, "--fuse: data-parallel trials train alone" if fuse != 1 else "")
    if fuse != "auto":
        return Fusion(fuse, f"--fuse {fuse}: bundles of up to {fuse} trials of one shape")
    task = ray.remote(num_cpus=layout.cpus_per_worker, num_gpus=layout.gpus_per_worker, max_retries=0)(_measure)
    device = "cuda" if layout.gpus_per_worker > 0 else "cpu"
    return choose(ray.get(task.remote(spec.to_dict(), info, device)))


def pruner_of(strategy: Strategy) -> optuna.pruners.BasePruner:
    """The members' pruner: ASHA's rule (``--scheduler asha``) or none (``fifo``; and for a Pareto search)."""
    if strategy.scheduler == "asha" and not strategy.pareto:
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=strategy.grace_period, reduction_factor=2)
    return optuna.pruners.NopPruner()


def bundle_searcher(strategy: Strategy, space: str, preset: Preset, context: TrialContext, storage: StudyStorage,
                    study_name: str, sampler: optuna.samplers.BaseSampler, points: list[dict[str, Any]],
                    k: int) -> BundleSearch:
    """The searcher of a fused search: bundles of up to ``k`` of the study's trials (a ``--points`` entry that
    names its own epochs trains in a bundle of that many epochs; one that names a warm start starts from it)."""
    return BundleSearch(DefineBySpace(space, preset, point_epochs(strategy.points)), BundleKey(context), storage,
                        study_name, sampler, pruner_of(strategy), k, strategy.num_samples, points,
                        ["maximize"] * len(strategy.metrics))


def bundle_trainable(context: TrialContext, strategy: Strategy, storage: StudyStorage, study_name: str,
                     splits: Splits, layout: TrialResources) -> Any:
    """What Tune runs per bundle, with one trial's resources."""
    bundle = BundleContext(context, storage, study_name, pruner_of(strategy), strategy.metrics)
    return tune.with_resources(tune.with_parameters(run_bundle_trial, context=bundle, splits=splits),
                               {"cpu": layout.cpus_per_worker, "gpu": layout.gpus_per_worker})
