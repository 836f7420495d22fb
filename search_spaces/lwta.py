"""Stochastic LWTA (+ IBP prior) networks: block size and count, IBP prior, attack mix, epsilon, optimiser."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.base import SearchSpace, known_point
from search_spaces.presets import Preset
from search_spaces.registry import register_space

__all__ = ["LWTASpace"]


@register_space
class LWTASpace(SearchSpace):
    """Panousis et al.'s Stochastic LWTA with the IBP utility prior, trained on an attack mix.

    Why each dimension is there:

    - ``competitors`` (U) and ``hidden_blocks`` / ``widen``: the competition itself, block size and
      count, the levers the LWTA papers vary; U = 2 is the paper's and the cheapest (one logistic draw).
    - ``ibp_alpha``: the IBP prior's Beta(alpha, 1) sticks, how many units the prior keeps in use.
    - ``mix_*`` and ``eps_scale``: which attacks the training batches see and at what radius; the
      paper's uniform 0..7 draw and PGD training are both starting points.
    - ``lr``, ``weight_decay``, ``label_smoothing``: what the adversarial-training literature found
      to matter most at a fixed budget (see :func:`~search_spaces.base.suggest_optimizer`).

    Fixed at the paper's values, since neither moved the quick searches' objective beyond noise:
    the Gumbel temperature (0.67) and the KL weight (1, the ELBO).
    """

    name = "lwta"
    description = "Stochastic LWTA + IBP (lwta-cnn on quick, lwta-wrn on paper)"
    family = "lwta"
    model_params = ("competitors", "hidden_blocks", "widen", "ibp_alpha")
    leaderboard = ("competitors", "hidden_blocks", "widen", "lr", "mix_pgd")

    def define_family(self, trial: optuna.Trial, preset: Preset) -> None:
        """U, blocks (small CNN) or widen (WideResNet), IBP alpha."""
        trial.suggest_categorical("competitors", [2, 4])
        if preset.architecture == "cnn":
            trial.suggest_categorical("hidden_blocks", [32, 64, 128])
        else:
            trial.suggest_categorical("widen", [1, 2])
        trial.suggest_float("ibp_alpha", 1.0, 10.0, log=True)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """PGD training with U = 2 (the known-good baseline), then the paper's uniform 0..7 draw."""
        size = {"hidden_blocks": preset.model.hidden_blocks} if preset.architecture == "cnn" else {
            "widen": preset.model.widen}
        lwta = {"competitors": 2, **size, "ibp_alpha": 3.0}
        attacks = self.tuned_mix(preset)
        paper = {"none": 1.0, "gaussian": 0.25, "fgsm": 0.25, "pgd": 0.25, "cw": 0.25}
        return [known_point(preset, {"pgd": 1.0}, attacks, **lwta), known_point(preset, paper, attacks, **lwta)]
