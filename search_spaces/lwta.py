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
    - ``lwta_layers`` (small CNN): LWTA in every layer, as in the paper, or in the dense layer only
      with ReLU convolutions. At the quick budget the dense-only network was 5-7 points more robust
      under EOT attacks (L-inf worst case 73-75% against 66-68%; docs/results.md) and a third cheaper.
    - ``ibp`` and ``ibp_alpha``: the IBP utility prior on or off, and its Beta(alpha, 1) sticks (how
      many units the prior keeps in use). Off was 1-1.5 points better in both accuracies at the quick
      budget, within noise, so the search decides.
    - ``mix_*`` and ``eps_scale``: which attacks the training batches see and at what radius; the
      paper's uniform 0..7 draw and PGD training are both starting points.
    - ``clean_weight``: a clean cross-entropy term beside the attacked one on every batch, the
      natural-accuracy lever (the mix's ``none`` weight makes whole batches clean instead). At the
      quick budget 0.2 raised the dense-only starting point's test natural accuracy from 85.7% to
      86.5% at the same L-inf worst case (75.35% / 75.25%, 2000 images).
    - ``lr``, ``weight_decay``, ``label_smoothing``: what the adversarial-training literature found
      to matter most at a fixed budget (see :func:`~search_spaces.base.suggest_optimizer`).

    Fixed at the paper's values, since neither moved the quick searches' objective beyond noise:
    the Gumbel temperature (0.67) and the KL weight (1, the ELBO).

    Measured on the first starting point at the quick budget and left out (docs/results.md, "Levers
    measured"): the TRADES loss (beta 6: +0.8 points of validation objective at eps 0.1, within seed
    noise, -5.7 at eps 0.2), an EMA of the weights (decay 0.999: -0.2 at eps 0.1, the one-cycle
    schedule already ending at a learning rate of 0; -3.9 and -1.9 on two seeds at eps 0.2, each the
    same run scored both ways), a training-radius warm-up (over 30% of the steps: -2.2 robust, +1.9
    natural at eps 0.2) and the MART loss (beta 6: +1.1 at eps 0.1, -0.9 natural; at eps 0.2 its best
    epoch was the first, 43.6% against 68.4%). All four remain training settings (``trades_beta``,
    ``ema_decay``, ``eps_warmup``, ``mart_beta``; ``python -m trainables.train --trades-beta ...``).
    So does the training attack's budget: FGSM with a random start in place of PGD-3 trained in
    0.69x the time and lost 2.6 points of objective at eps 0.1 and 9.4 at eps 0.2, so PGD-3 stays;
    PGD-7 in the same minutes lost 2.4 points of test worst case at eps 0.3. At eps 0.3, a radius the
    starting point was not made at, label smoothing 0.1, lr 0.1, a training radius x 1.15 and no clean
    term all cost 1.9-36 points against it (docs/results.md, "At a radius nobody tuned").
    """

    name = "lwta"
    description = "Stochastic LWTA + IBP (lwta-cnn on quick, lwta-wrn on paper)"
    family = "lwta"
    model_params = ("competitors", "hidden_blocks", "widen", "lwta_layers", "ibp", "ibp_alpha")
    train_params = ("clean_weight",)
    leaderboard = ("lwta_layers", "competitors", "hidden_blocks", "ibp", "clean_weight", "lr", "mix_pgd")

    def define_family(self, trial: optuna.Trial, preset: Preset) -> None:
        """U, blocks and LWTA layers (small CNN) or widen (WideResNet), IBP on/off and its alpha, clean weight."""
        trial.suggest_categorical("competitors", [2, 4])
        if preset.architecture == "cnn":
            trial.suggest_categorical("hidden_blocks", [32, 64, 128])
            trial.suggest_categorical("lwta_layers", ["dense", "all"])
        else:
            trial.suggest_categorical("widen", [1, 2])
        if trial.suggest_categorical("ibp", [False, True]):
            trial.suggest_float("ibp_alpha", 1.0, 10.0, log=True)
        trial.suggest_float("clean_weight", 0.0, 0.5)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """PGD training, clean weight 0.2, U = 2 (small CNN: dense-only, no IBP); then the paper's IBP and 0..7 draw.

        On the small CNN both are dense-only: LWTA in every layer trailed by 6-7 points at every
        budget tried, and a slow, weak first trial that reaches ASHA's rungs first is promoted past
        them (its rung holds no other result yet): in one main job it ran all 15 epochs.
        """
        attacks = self.tuned_mix(preset)
        paper_mix = {"none": 1.0, "gaussian": 0.25, "fgsm": 0.25, "pgd": 0.25, "cw": 0.25}
        paper = {"competitors": 2, "ibp": True, "ibp_alpha": 3.0, "clean_weight": 0.0}
        if preset.architecture == "cnn":
            blocks = {"hidden_blocks": preset.model.hidden_blocks}
            known = {"competitors": 2, **blocks, "lwta_layers": "dense", "ibp": False, "clean_weight": 0.2}
            paper |= {**blocks, "lwta_layers": "dense"}
        else:
            known = paper = paper | {"widen": preset.model.widen}
        return [known_point(preset, {"pgd": 1.0}, attacks, **known), known_point(preset, paper_mix, attacks, **paper)]
