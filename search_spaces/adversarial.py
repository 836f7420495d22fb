"""Plain networks trained on a tuned attack mix: adversarial training without stochastic layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import optuna

from search_spaces.base import (
    SearchSpace,
    apply_mix,
    apply_optimizer,
    preset_model,
    suggest_mix,
    suggest_optimizer,
)
from search_spaces.presets import Preset
from search_spaces.registry import register_space
from trainables.train import AttackMix, RunSpec

__all__ = ["AdversarialSpace"]


@register_space
class AdversarialSpace(SearchSpace):
    """Deterministic ReLU networks; the search tunes the attack mix, training epsilon and optimiser."""

    name = "adversarial"
    description = "adversarial training of plain networks over an attack mix (cnn on quick, wrn on paper)"

    def fixed(self, preset: Preset) -> RunSpec:
        """Plain model of the preset's size, PGD training (Madry et al.) until the mix is tuned."""
        model = preset_model(preset)
        train = replace(preset.train, mix=AttackMix.parse("pgd:1"))
        return RunSpec(data=preset.data, model=model, train=train, suite=preset.epoch_suite)

    def define(self, trial: optuna.Trial, preset: Preset) -> None:
        """Weights of none / gaussian / fgsm / pgd / cw, eps scale, PGD step ratio, optimiser."""
        suggest_mix(trial)
        suggest_optimizer(trial)

    def apply(self, base: RunSpec, params: Mapping[str, Any]) -> RunSpec:
        """Attack mix and optimiser from ``params``."""
        return apply_optimizer(apply_mix(base, params), params)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """Madry et al.'s PGD training at the evaluation epsilon, step 2.5 eps / steps."""
        return [{"mix_none": 0.0, "mix_gaussian": 0.0, "mix_fgsm": 0.0, "mix_pgd": 1.0, "mix_cw": 0.0,
                 "eps_scale": 1.0, "step_ratio": 2.5, "lr": preset.train.lr, "weight_decay": 5e-4}]
