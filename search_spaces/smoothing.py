"""Randomized smoothing: the Gaussian input-noise level, an attack mix on top, optimiser."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.base import SearchSpace, known_point
from search_spaces.presets import Preset
from search_spaces.registry import register_space

__all__ = ["SmoothingSpace"]


@register_space
class SmoothingSpace(SearchSpace):
    """Cohen et al.'s Gaussian-noise training, optionally mixed with attacks on the noisy model."""

    name = "smoothing"
    description = "randomized smoothing: Gaussian input noise sigma + attack mix (cnn on quick, wrn on paper)"
    fixed_mix = "none:1"  # clean (noisy) batches until tuned
    fixed_model = {"input_noise": 0.25}
    model_params = ("input_noise",)
    mix_attacks = ("none", "pgd", "fgsm")
    leaderboard = ("input_noise", "lr", "mix_pgd")

    def define_family(self, trial: optuna.Trial, preset: Preset) -> None:
        """Noise sigma (log scale)."""
        trial.suggest_float("input_noise", 0.05, 0.5, log=True)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """Cohen et al.'s training (sigma 0.25, Gaussian noise only), and sigma 0.1 under PGD training."""
        attacks = self.tuned_mix(preset)
        return [known_point(preset, {"none": 1.0}, attacks, input_noise=0.25),
                known_point(preset, {"pgd": 1.0}, attacks, input_noise=0.1)]
