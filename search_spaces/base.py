"""What a search space is: fixed settings per preset, define-by-run suggestions, and their mapping.

A space never builds models or trains: it turns Optuna's suggestions (a flat dict of parameters)
into a :class:`~trainables.train.RunSpec` on top of the preset's fixed settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import optuna

from search_spaces.presets import PRESETS, Preset
from trainables.models import ModelConfig
from trainables.train import AttackMix, RunSpec

__all__ = ["SearchSpace", "apply_mix", "apply_optimizer", "preset_model", "suggest_mix", "suggest_optimizer"]


class SearchSpace(ABC):
    """One model family's Optuna define-by-run space over a preset's fixed settings."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def fixed(self, preset: Preset) -> RunSpec:
        """Settings the search never changes under ``preset``: data, model family, epochs, suite."""

    @abstractmethod
    def define(self, trial: optuna.Trial, preset: Preset) -> None:
        """Ask ``trial`` for every tunable under ``preset`` (Optuna define-by-run)."""

    @abstractmethod
    def apply(self, base: RunSpec, params: Mapping[str, Any]) -> RunSpec:
        """The run ``params`` (as suggested by ``define``) describe on top of ``base``."""

    def points_to_evaluate(self, preset: Preset) -> list[dict[str, Any]]:
        """Known-good starting configurations, tried before the sampler's own suggestions."""
        return []

    def preset(self, name: str) -> Preset:
        """The preset ``name`` (quick or paper)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return PRESETS[name]


def preset_model(preset: Preset, family: str = "", **fields: Any) -> ModelConfig:
    """The preset's architecture (small CNN or WRN of its size) for ``family`` ('', 'lwta', 'pni')."""
    arch = "cnn" if preset.cnn else "wrn"
    return ModelConfig(name=f"{family}-{arch}" if family else arch, depth=preset.depth, widen=preset.widen,
                       cnn_width=preset.cnn_width, cnn_kernel=preset.cnn_kernel, **fields)


def suggest_optimizer(trial: optuna.Trial) -> None:
    """Learning rate and weight decay, shared by every family."""
    trial.suggest_float("lr", 0.01, 0.2, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)


def apply_optimizer(spec: RunSpec, params: Mapping[str, Any]) -> RunSpec:
    """Copy lr / weight_decay from ``params`` into the training config (when present)."""
    keep = {k: params[k] for k in ("lr", "weight_decay") if k in params}
    return replace(spec, train=replace(spec.train, **keep))


def suggest_mix(trial: optuna.Trial, attacks: tuple[str, ...] = ("none", "gaussian", "fgsm", "pgd", "cw")) -> None:
    """Attack-mix weights (``mix_<attack>`` in [0, 1]), training epsilon scale and PGD step ratio."""
    for name in attacks:
        trial.suggest_float(f"mix_{name}", 0.0, 1.0)
    trial.suggest_float("eps_scale", 0.5, 1.5)
    trial.suggest_float("step_ratio", 1.0, 3.0)


def apply_mix(spec: RunSpec, params: Mapping[str, Any]) -> RunSpec:
    """Attack mix (``mix_*``), training eps (eval eps x ``eps_scale``) and PGD step from ``params``."""
    weights = {name: float(params.get(f"mix_{name}", 0.0)) for name in ("none", "gaussian", "fgsm", "pgd", "cw")}
    if not any(k.startswith("mix_") for k in params):
        mix = spec.train.mix
    elif sum(weights.values()) <= 1e-6:  # the sampler drew all-zero weights: fall back to PGD training
        mix = AttackMix(none=0, gaussian=0, fgsm=0, pgd=1, cw=0)
    else:
        mix = AttackMix(**weights)
    eps = spec.suite.eps * float(params.get("eps_scale", spec.train.eps / max(spec.suite.eps, 1e-12)))
    steps = spec.train.steps
    step = float(params["step_ratio"]) * eps / steps if "step_ratio" in params else spec.train.step_size
    return replace(spec, train=replace(spec.train, mix=mix, eps=eps, step_size=step))
