"""Model registry: builders ``(ModelConfig, DatasetInfo) -> RobustModel`` looked up by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from torch import nn

from ..data.info import DatasetInfo
from .base import RobustModel
from .config import ModelConfig
from .lwta import LWTA

__all__ = ["MODELS", "ModelBuilder", "build_model", "list_models", "register_model", "activation_factory"]

ModelBuilder = Callable[[ModelConfig, DatasetInfo], RobustModel]
ActivationFactory = Callable[[int], nn.Module]

_BUILDERS: dict[str, ModelBuilder] = {}
MODELS: Mapping[str, ModelBuilder] = MappingProxyType(_BUILDERS)


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering a model builder under ``name``."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Sorted names of the registered models."""
    return sorted(_BUILDERS)


def build_model(cfg: ModelConfig, info: DatasetInfo) -> RobustModel:
    """Build the model ``cfg.name`` for a dataset, wrapped in Gaussian input noise when ``cfg.input_noise > 0``."""
    if cfg.name not in _BUILDERS:
        raise ValueError(f"unknown model {cfg.name!r}; choose from {', '.join(list_models())}")
    model = _BUILDERS[cfg.name](cfg, info)
    if cfg.input_noise > 0:
        # Imported here: trainables.smoothing builds on trainables.models, so a top-level import is circular.
        from ..smoothing.noise import SmoothedModel

        model = SmoothedModel(model, cfg.input_noise)
    return model


def activation_factory(cfg: ModelConfig, kind: str) -> ActivationFactory:
    """``make_activation(channels)`` for ``kind`` "relu" or "lwta" (LWTA settings taken from cfg)."""
    if kind == "relu":
        return lambda channels: nn.ReLU(inplace=False)
    if kind == "lwta":
        return lambda channels: LWTA(channels, cfg.competitors, cfg.temperature, cfg.inference,
                                     cfg.ibp, cfg.ibp_alpha, cfg.ibp_temperature)
    raise ValueError(f"unknown activation {kind!r}; choose from relu, lwta")
