"""Stochastic LWTA (+ IBP prior) networks: competition, prior, temperature, KL weight, attack mix."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.base import SearchSpace
from search_spaces.presets import Preset
from search_spaces.registry import register_space

__all__ = ["LWTASpace"]


@register_space
class LWTASpace(SearchSpace):
    """Panousis et al.'s Stochastic LWTA with the IBP utility prior, trained on an attack mix."""

    name = "lwta"
    description = "Stochastic LWTA + IBP (lwta-cnn on quick, lwta-wrn on paper)"
    family = "lwta"
    model_params = ("competitors", "hidden_blocks", "widen", "ibp_alpha", "temperature")
    train_params = ("kl_weight",)
    leaderboard = ("competitors", "hidden_blocks", "widen", "lr", "mix_pgd")

    def define_family(self, trial: optuna.Trial, preset: Preset) -> None:
        """U, blocks (small CNN) or widen (WideResNet), IBP alpha, Gumbel temperature, KL weight."""
        trial.suggest_categorical("competitors", [2, 4])
        if preset.architecture == "cnn":
            trial.suggest_categorical("hidden_blocks", [16, 32, 64])
        else:
            trial.suggest_categorical("widen", [1, 2])
        trial.suggest_float("ibp_alpha", 1.0, 10.0, log=True)
        trial.suggest_float("temperature", 0.3, 1.0)
        trial.suggest_float("kl_weight", 0.01, 1.0, log=True)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """The paper's setting: U=2, the paper's uniform 0..7 attack draw, alpha 3, tau 0.67."""
        size = {"hidden_blocks": 64} if preset.architecture == "cnn" else {"widen": preset.model.widen}
        return [{"competitors": 2, **size, "ibp_alpha": 3.0, "temperature": 0.67, "kl_weight": 1.0,
                 "mix_none": 1.0, "mix_gaussian": 0.25, "mix_fgsm": 0.25, "mix_pgd": 0.25, "mix_cw": 0.25,
                 "eps_scale": 1.0, "step_ratio": 2.5, "lr": preset.train.lr, "weight_decay": 5e-4}]
