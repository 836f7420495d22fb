"""What a search space is: a model family on a preset, define-by-run suggestions, and their mapping to a run.

A space never builds models or trains: it turns Optuna's suggestions (a flat dict of parameters)
into a :class:`~trainables.train.RunSpec` on top of the preset's fixed settings. Most of a space is
declarative: its model family, the weights of its fixed mix, the model and training fields its
suggestions set, and the attacks of the mix it tunes; ``define`` adds its own dimensions.

Adding a space (one file under ``search_spaces/``)::

    @register_space
    class WideLWTASpace(SearchSpace):
        name = "lwta-wide"
        description = "LWTA with 4 competitors, only the optimiser and the mix tuned"
        family = "lwta"
        model_params = ()

        def define_family(self, trial, preset):
            pass
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import optuna

from search_spaces.presets import PRESETS, Preset
from trainables.models import FAMILIES, ModelConfig
from trainables.train import RunSpec, parse_weights

__all__ = ["FALLBACK_MIX", "SearchSpace", "apply_mix", "apply_optimizer", "known_point", "preset_model",
           "suggest_mix", "suggest_optimizer"]

FALLBACK_MIX = "pgd:1"  # when the sampler draws all-zero mix weights: PGD training (Madry et al.)


class SearchSpace(ABC):
    """One model family's Optuna define-by-run space over a preset's fixed settings."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    family: ClassVar[str] = "relu"  # the registered model family ("relu", "lwta", "pni")
    fixed_mix: ClassVar[str | None] = None  # weights of the fixed run's mix (None: the preset's)
    fixed_model: ClassVar[Mapping[str, Any]] = {}  # model settings of the fixed run
    fixed_train: ClassVar[Mapping[str, Any]] = {}  # training settings of the fixed run
    model_params: ClassVar[tuple[str, ...]] = ()  # suggested parameters that are ModelConfig fields
    train_params: ClassVar[tuple[str, ...]] = ()  # suggested parameters that are TrainConfig fields
    mix_attacks: ClassVar[tuple[str, ...] | None] = None  # the mix weights it tunes (None: every one of the preset's)
    leaderboard: ClassVar[tuple[str, ...]] = ("lr", "mix_pgd")  # parameters shown beside each trial

    def fixed(self, preset: Preset) -> RunSpec:
        """Settings the search never changes under ``preset``: data, model family, epochs, suite."""
        model = preset_model(preset, self.family, **self.fixed_model)
        mix = preset.train.mix if self.fixed_mix is None else preset.train.mix.reweighted(parse_weights(self.fixed_mix))
        train = replace(preset.train, mix=mix, **self.fixed_train)
        return RunSpec(data=preset.data, model=model, train=train, suite=preset.epoch_suite, threat=preset.threat)

    def define(self, trial: optuna.Trial, preset: Preset) -> None:
        """Ask ``trial`` for every tunable under ``preset`` (Optuna define-by-run)."""
        self.define_family(trial, preset)
        suggest_mix(trial, self.tuned_mix(preset))
        suggest_optimizer(trial)

    @abstractmethod
    def define_family(self, trial: optuna.Trial, preset: Preset) -> None:
        """Ask ``trial`` for the family's own tunables (those of ``model_params`` and ``train_params``)."""

    def apply(self, base: RunSpec, params: Mapping[str, Any]) -> RunSpec:
        """The run ``params`` (as suggested by ``define``) describe on top of ``base``."""
        model = replace(base.model, **{k: params[k] for k in self.model_params if k in params})
        train = replace(base.train, **{k: params[k] for k in self.train_params if k in params})
        spec = replace(base, model=model, train=train)
        return apply_optimizer(apply_mix(spec, params, self.mix_attacks or base.train.mix.names()), params)

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """Known-good starting configurations, tried before the sampler's own suggestions."""
        return []

    def tuned_mix(self, preset: Preset) -> tuple[str, ...]:
        """The attacks whose mix weights this space tunes under ``preset``."""
        return self.mix_attacks or preset.train.mix.names()

    def preset(self, name: str) -> Preset:
        """The preset ``name`` (quick or paper)."""
        return PRESETS.get(name)


def preset_model(preset: Preset, family: str = "relu", **fields: Any) -> ModelConfig:
    """The preset's architecture and size in ``family`` ('relu', 'lwta', 'pni'), with ``fields`` set."""
    return replace(preset.model, name=FAMILIES[family].model_name(preset.architecture), **fields)


_OPTIMIZER = ("lr", "weight_decay", "label_smoothing")


def suggest_optimizer(trial: optuna.Trial) -> None:
    """Learning rate, weight decay and label smoothing, shared by every family.

    The three the adversarial-training literature found to matter most at a fixed budget (Pang et
    al. 2021, "Bag of tricks for adversarial training"; Rice et al. 2020 for weight decay against
    robust overfitting); the schedule is the preset's (one-cycle on quick, as in fast adversarial training).
    """
    trial.suggest_float("lr", 0.02, 0.2, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    trial.suggest_float("label_smoothing", 0.0, 0.2)


def apply_optimizer(spec: RunSpec, params: Mapping[str, Any]) -> RunSpec:
    """Copy lr / weight_decay / label_smoothing from ``params`` into the training config (when present)."""
    keep = {k: params[k] for k in _OPTIMIZER if k in params}
    return replace(spec, train=replace(spec.train, **keep))


def suggest_mix(trial: optuna.Trial, attacks: tuple[str, ...]) -> None:
    """Attack-mix weights (``mix_<attack>`` in [0, 1]) and the training epsilon as a multiple of the threat's.

    PGD's step keeps Madry et al.'s 2.5 eps / steps: tuning it bought nothing measurable in the
    quick searches and cost a dimension.
    """
    for name in attacks:
        trial.suggest_float(f"mix_{name}", 0.0, 1.0)
    trial.suggest_float("eps_scale", 0.75, 1.25)


def known_point(preset: Preset, mix: Mapping[str, float], attacks: tuple[str, ...], **params: Any) -> dict[str, Any]:
    """A full starting point: ``mix`` weights over ``attacks`` (others 0), the preset's optimiser, ``params``."""
    weights = {f"mix_{name}": float(mix.get(name, 0.0)) for name in attacks}
    optimizer = {"lr": preset.train.lr, "weight_decay": preset.train.weight_decay,
                 "label_smoothing": preset.train.label_smoothing}
    return {**weights, "eps_scale": 1.0, **optimizer, **params}


def apply_mix(spec: RunSpec, params: Mapping[str, Any], attacks: tuple[str, ...]) -> RunSpec:
    """Mix weights (``mix_*`` over ``attacks``), training eps scale and gradient-step ratio from ``params``."""
    mix = spec.train.mix
    if any(f"mix_{name}" in params for name in attacks):
        weights = {name: float(params.get(f"mix_{name}", 0.0)) for name in attacks}
        mix = mix.reweighted(weights if sum(weights.values()) > 1e-6 else parse_weights(FALLBACK_MIX))
    if "step_ratio" in params and any("step_ratio" in e.attack.budget() for e in mix.entries if e.attack):
        mix = mix.with_budget([(None, "step_ratio", float(params["step_ratio"])), (None, "step_size", None)])
    eps_scale = float(params.get("eps_scale", spec.train.eps_scale))
    return replace(spec, train=replace(spec.train, mix=mix, eps_scale=eps_scale))
