"""Parametric Noise Injection networks: initial noise scale, clean-loss weight, attack mix, optimiser."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.base import SearchSpace, known_point
from search_spaces.presets import Preset
from search_spaces.registry import register_space

__all__ = ["PNISpace"]


@register_space
class PNISpace(SearchSpace):
    """He et al.'s PNI (activation noise with a learnable scale) trained on clean + adversarial loss."""

    name = "pni"
    description = "Parametric Noise Injection (pni-cnn on quick, pni-wrn on paper), clean + adversarial loss"
    family = "pni"
    fixed_mix = "pgd:1"  # the paper's 0.5 clean + 0.5 PGD loss until tuned
    fixed_train = {"clean_weight": 0.5}
    model_params = ("pni_init",)
    train_params = ("clean_weight",)
    mix_attacks = ("fgsm", "pgd")  # the clean term comes from clean_weight, so no "none" weight
    leaderboard = ("pni_init", "lr", "mix_pgd")

    def define_family(self, trial: optuna.Trial, preset: Preset) -> None:
        """Initial noise scale and clean-loss weight."""
        trial.suggest_float("pni_init", 0.05, 0.5)
        trial.suggest_float("clean_weight", 0.3, 0.7)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """The paper's setting: alpha 0.25, 0.5 clean + 0.5 PGD loss."""
        return [known_point(preset, {"pgd": 1.0}, self.tuned_mix(preset), pni_init=0.25, clean_weight=0.5)]
