"""What a search runs: the preset with the command line's overrides, the fixed base run, the suites."""

from __future__ import annotations

from dataclasses import dataclass, replace

from search_spaces import Preset, get_space
from trainables.attacks import SuiteConfig
from trainables.train import RunSpec
from tuner.search.config import SearchConfig
from tuner.search.resources import TrialResources

__all__ = ["SearchPlan", "resolve_run"]


@dataclass(frozen=True)
class SearchPlan:
    """The preset as overridden, the run every trial starts from, and the objective and export suites."""

    preset: Preset
    base: RunSpec
    objective_suite: SuiteConfig
    export_suite: SuiteConfig


def resolve_run(cfg: SearchConfig) -> SearchPlan:
    """The plan of ``cfg``: its threat model set once, for training and the three suites alike."""
    space = get_space(cfg.space)
    preset = space.preset(cfg.preset)
    TrialResources.resolve(cfg.cpus_per_trial, cfg.fixed_gpus_per_trial, cfg.workers_per_trial)  # NCCL's rules
    overrides = cfg.suite
    preset = preset.with_threat(overrides.threat(preset.threat))
    limits = {k: v for k, v in (("train_limit", cfg.train_limit), ("val_limit", cfg.val_limit),
                                ("test_limit", cfg.test_limit)) if v}
    data = replace(preset.data, name=cfg.dataset or preset.data.name, data_dir=cfg.data_dir, download=cfg.download,
                   **limits)
    chosen = {"epochs": cfg.epochs, "precision": cfg.precision, "memory_format": cfg.memory_format}
    train = replace(preset.train, seed=cfg.seed, **{k: v for k, v in chosen.items() if v})
    preset = replace(preset, data=data, train=train,
                     epoch_suite=overrides.apply(preset.epoch_suite, attacks=False),  # stays the cheap suite
                     objective_suite=overrides.apply(preset.objective_suite),
                     export_suite=overrides.apply(preset.export_suite))
    return SearchPlan(preset=preset, base=space.fixed(preset), objective_suite=preset.objective_suite,
                      export_suite=preset.export_suite)
