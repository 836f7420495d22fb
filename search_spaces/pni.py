"""Parametric Noise Injection networks: initial noise scale, clean-loss weight, attack mix, optimiser."""

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

__all__ = ["PNISpace"]

PNI_ATTACKS = ("fgsm", "pgd", "cw")  # the clean term comes from clean_weight, so no "none" weight


@register_space
class PNISpace(SearchSpace):
    """He et al.'s PNI (activation noise with a learnable scale) trained on clean + adversarial loss."""

    name = "pni"
    description = "Parametric Noise Injection (pni-cnn on quick, pni-wrn on paper), clean + adversarial loss"

    def fixed(self, preset: Preset) -> RunSpec:
        """PNI model of the preset's size; the paper's 0.5 clean + 0.5 PGD loss until tuned."""
        model = preset_model(preset, "pni")
        train = replace(preset.train, mix=AttackMix.parse("pgd:1"), clean_weight=0.5)
        return RunSpec(data=preset.data, model=model, train=train, suite=preset.epoch_suite)

    def define(self, trial: optuna.Trial, preset: Preset) -> None:
        """Initial noise scale, clean-loss weight, fgsm / pgd / cw weights, eps scale, step ratio, optimiser."""
        trial.suggest_float("pni_init", 0.05, 0.5)
        trial.suggest_float("clean_weight", 0.3, 0.7)
        suggest_mix(trial, PNI_ATTACKS)
        suggest_optimizer(trial)

    def apply(self, base: RunSpec, params: Mapping[str, Any]) -> RunSpec:
        """``pni_init``, ``clean_weight``, attack mix and optimiser from ``params``."""
        model = replace(base.model, pni_init=float(params.get("pni_init", base.model.pni_init)))
        train = replace(base.train, clean_weight=float(params.get("clean_weight", base.train.clean_weight)))
        return apply_optimizer(apply_mix(replace(base, model=model, train=train), params), params)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """The paper's setting: alpha 0.25, 0.5 clean + 0.5 PGD loss."""
        return [{"pni_init": 0.25, "clean_weight": 0.5, "mix_fgsm": 0.0, "mix_pgd": 1.0, "mix_cw": 0.0,
                 "eps_scale": 1.0, "step_ratio": 2.5, "lr": preset.train.lr, "weight_decay": 5e-4}]
