"""Randomized smoothing: the Gaussian input-noise level, an attack mix on top, optimiser."""

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

__all__ = ["SmoothingSpace"]

SMOOTHING_ATTACKS = ("none", "pgd", "fgsm")


@register_space
class SmoothingSpace(SearchSpace):
    """Cohen et al.'s Gaussian-noise training, optionally mixed with attacks on the noisy model."""

    name = "smoothing"
    description = "randomized smoothing: Gaussian input noise sigma + attack mix (cnn on quick, wrn on paper)"

    def fixed(self, preset: Preset) -> RunSpec:
        """Plain model of the preset's size under sigma 0.25, clean (noisy) batches until tuned."""
        model = preset_model(preset,
                            input_noise=0.25)
        train = replace(preset.train, mix=AttackMix.parse("none:1"))
        return RunSpec(data=preset.data, model=model, train=train, suite=preset.epoch_suite)

    def define(self, trial: optuna.Trial, preset: Preset) -> None:
        """Noise sigma (log scale), none / pgd / fgsm weights, eps scale, step ratio, optimiser."""
        trial.suggest_float("input_noise", 0.05, 0.5, log=True)
        suggest_mix(trial, SMOOTHING_ATTACKS)
        suggest_optimizer(trial)

    def apply(self, base: RunSpec, params: Mapping[str, Any]) -> RunSpec:
        """``input_noise``, attack mix and optimiser from ``params``."""
        model = replace(base.model, input_noise=float(params.get("input_noise", base.model.input_noise)))
        return apply_optimizer(apply_mix(replace(base, model=model), params), params)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """Cohen et al.'s training: sigma 0.25, Gaussian noise only."""
        return [{"input_noise": 0.25, "mix_none": 1.0, "mix_pgd": 0.0, "mix_fgsm": 0.0,
                 "eps_scale": 1.0, "step_ratio": 2.5, "lr": preset.train.lr, "weight_decay": 5e-4}]
