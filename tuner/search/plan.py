"""What a search runs: the preset with the command line's overrides, the fixed base run, the suites, the strategy."""

from __future__ import annotations

from dataclasses import dataclass, replace

from search_spaces import Preset, get_space
from trainables.attacks import ThreatModel, parse_assignments
from trainables.evaluation import SuiteConfig
from trainables.train import AttackMix, RunSpec
from tuner.cluster.resources import TrialResources
from tuner.search.config import SearchConfig
from tuner.trials.strategy import Strategy

__all__ = ["SearchPlan", "resolve_run"]


@dataclass(frozen=True)
class SearchPlan:
    """The preset as overridden, the run every trial starts from, and how the search explores."""

    preset: Preset
    base: RunSpec
    strategy: Strategy

    @property
    def threat(self) -> ThreatModel:
        """The run's one threat model: training (times the searched eps scale) and every suite."""
        return self.preset.threat

    @property
    def objective_suite(self) -> SuiteConfig:
        """What ranks finished trials (validation split)."""
        return self.preset.objective_suite

    @property
    def export_suite(self) -> SuiteConfig:
        """What scores the exported model (validation and test splits)."""
        return self.preset.export_suite


def _trained_mix(preset: Preset, budget: tuple[str, ...]) -> AttackMix:
    """The preset's training mix with ``--train-budget`` applied (ValueError, one line, for a setting no attack has)."""
    if not budget:
        return preset.train.mix
    try:
        return preset.train.mix.with_budget(parse_assignments(budget))
    except ValueError as exc:
        raise ValueError(f"--train-budget: {exc}") from None


def resolve_run(cfg: SearchConfig) -> SearchPlan:
    """The plan of ``cfg``: its threat model set once, for training and the three suites alike.

    Every setting is checked here, before Ray starts.
    """
    space = get_space(cfg.space)
    preset = space.preset(cfg.preset)
    TrialResources.resolve(cfg.cpus_per_trial, cfg.fixed_gpus_per_trial, cfg.workers_per_trial)  # NCCL's rules
    overrides = cfg.suite
    limits = {k: v for k, v in (("train_limit", cfg.train_limit), ("val_limit", cfg.val_limit),
                                ("test_limit", cfg.test_limit)) if v}
    data = replace(preset.data, name=cfg.dataset or preset.data.name, data_dir=cfg.data_dir, download=cfg.download,
                   **limits)
    chosen = {"epochs": cfg.epochs, "precision": cfg.precision, "memory_format": cfg.memory_format}
    train = replace(preset.train, seed=cfg.seed, mix=_trained_mix(preset, cfg.train_budget),
                    **{k: v for k, v in chosen.items() if v})
    preset = replace(preset, data=data, train=train, threat=overrides.threat(preset.threat),
                     epoch_suite=overrides.apply(preset.epoch_suite, attacks=False),  # stays the cheap suite
                     objective_suite=overrides.apply(preset.objective_suite),
                     export_suite=overrides.apply(preset.export_suite))
    cfg.screened(preset.screen)  # --promote and --screen-epochs refused here when nothing is screened
    return SearchPlan(preset=preset, base=space.fixed(preset),
                      strategy=cfg.strategy(cfg.num_samples or preset.num_samples))
