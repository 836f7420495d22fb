"""Stochastic LWTA (+ IBP prior) networks: competition, prior, temperature, KL weight, attack mix."""

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
from trainables.train import RunSpec

__all__ = ["LWTASpace"]


@register_space
class LWTASpace(SearchSpace):
    """Panousis et al.'s Stochastic LWTA with the IBP utility prior, trained on an attack mix."""

    name = "lwta"
    description = "Stochastic LWTA + IBP (lwta-cnn on quick, lwta-wrn on paper)"

    def fixed(self, preset: Preset) -> RunSpec:
        """LWTA model of the preset's size on the preset's data and schedule."""
        model = preset_model(preset, "lwta")
        return RunSpec(data=preset.data, model=model, train=preset.train, suite=preset.epoch_suite)

    def define(self, trial: optuna.Trial, preset: Preset) -> None:
        """U, blocks or widen, IBP alpha, Gumbel temperature, KL weight, attack mix, optimiser."""
        trial.suggest_categorical("competitors", [2, 4])
        if preset.cnn:
            trial.suggest_categorical("hidden_blocks", [16, 32, 64])
        else:
            trial.suggest_categorical("widen", [1, 2])
        trial.suggest_float("ibp_alpha", 1.0, 10.0, log=True)
        trial.suggest_float("temperature", 0.3, 1.0)
        trial.suggest_float("kl_weight", 0.01, 1.0, log=True)
        suggest_mix(trial)
        suggest_optimizer(trial)

    def apply(self, base: RunSpec, params: Mapping[str, Any]) -> RunSpec:
        """Model fields, KL weight, mix and optimiser from ``params``."""
        model_keys = ("competitors", "hidden_blocks", "widen", "ibp_alpha", "temperature")
        model = replace(base.model, **{k: params[k] for k in model_keys if k in params})
        train = replace(base.train, kl_weight=float(params.get("kl_weight", base.train.kl_weight)))
        return apply_optimizer(apply_mix(replace(base, model=model, train=train), params), params)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """The seed's setting: U=2, the seed's uniform 0..7 attack draw, alpha 3, tau 0.67."""
        size = {"hidden_blocks": 64} if preset.cnn else {"widen": preset.widen}
        return [{"competitors": 2, **size, "ibp_alpha": 3.0, "temperature": 0.67, "kl_weight": 1.0,
                 "mix_none": 1.0, "mix_gaussian": 0.25, "mix_fgsm": 0.25, "mix_pgd": 0.25, "mix_cw": 0.25,
                 "eps_scale": 1.0, "step_ratio": 2.5, "lr": preset.train.lr, "weight_decay": 5e-4}]
