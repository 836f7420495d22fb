"""Plain networks trained on a tuned attack mix: adversarial training without stochastic layers."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.base import SearchSpace, known_point
from search_spaces.presets import Preset
from search_spaces.registry import register_space

__all__ = ["AdversarialSpace"]


@register_space
class AdversarialSpace(SearchSpace):
    """Deterministic ReLU networks; the search tunes the attack mix, training epsilon and optimiser."""

    name = "adversarial"
    description = "adversarial training of plain networks over an attack mix (cnn on quick, wrn on paper)"
    fixed_mix = "pgd:1"  # PGD training (Madry et al.) until the mix is tuned
    mix_attacks = ("none", "fgsm", "pgd")  # the L-inf attacks and clean batches: the objective is L-inf

    def define_family(self, trial: optuna.Trial, preset: Preset) -> None:
        """Nothing beyond the mix and the optimiser: the model is the preset's plain network."""

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """Madry et al.'s PGD training at the evaluation epsilon, step 2.5 eps / steps."""
        return [known_point(preset, {"pgd": 1.0}, self.tuned_mix(preset))]
