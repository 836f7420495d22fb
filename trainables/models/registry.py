"""Models by name: each architecture is registered once and each family once; a name is ``[family-]arch``.

An *architecture* (``cnn``, ``wrn``) lays out the layers and asks two factories where an activation
and a noise layer go. A *family* (plain, ``lwta``, ``pni``) supplies those factories from the
:class:`ModelConfig`. Every family x architecture pair is a model: ``cnn``, ``lwta-cnn``, ``pni-wrn``...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from torch import nn

from ..data.info import DatasetInfo
from .base import RobustModel
from .config import ModelConfig
from .smoothed import SmoothedModel

__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "ActivationFactory",
    "Architecture",
    "Family",
    "NoiseFactory",
    "architecture_of",
    "build_model",
    "list_models",
    "register_architecture",
    "register_family",
]

ActivationFactory = Callable[[int], nn.Module]  # channels -> activation layer
NoiseFactory = Callable[[], nn.Module]  # -> noise layer (nn.Identity where a family adds none)
Architecture = Callable[[ModelConfig, DatasetInfo, ActivationFactory, NoiseFactory], RobustModel]


@dataclass(frozen=True)
class Family:
    """What a family puts into any architecture: its activation and its noise layer, built from the config."""

    name: str  # "" for the plain family: its models are named after the architecture alone
    description: str
    activation: Callable[[ModelConfig], ActivationFactory]
    noise: Callable[[ModelConfig], NoiseFactory]

    def model_name(self, architecture: str) -> str:
        """The registered name of this family's variant of ``architecture``."""
        return f"{self.name}-{architecture}" if self.name else architecture


_ARCHITECTURES: dict[str, Architecture] = {}
_FAMILIES: dict[str, Family] = {}
ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(_ARCHITECTURES)
FAMILIES: Mapping[str, Family] = MappingProxyType(_FAMILIES)


def register_architecture(name: str) -> Callable[[Architecture], Architecture]:
    """Decorator registering ``build(cfg, info, make_activation, make_noise)`` as architecture ``name``."""

    def decorator(build: Architecture) -> Architecture:
        if not name or "-" in name or name in _ARCHITECTURES:
            raise ValueError(f"architecture name {name!r} is empty, holds '-' or is already registered")
        _ARCHITECTURES[name] = build
        return build

    return decorator


def register_family(family: Family) -> Family:
    """Register a model family under its name."""
    if family.name in _FAMILIES or "-" in family.name:
        raise ValueError(f"family name {family.name!r} holds '-' or is already registered")
    _FAMILIES[family.name] = family
    return family


def _models() -> dict[str, tuple[Family, str]]:
    return {f.model_name(a): (f, a) for f in _FAMILIES.values() for a in _ARCHITECTURES}


def architecture_of(name: str) -> str:
    """The architecture of the model ``name`` (``lwta-wrn`` -> ``wrn``)."""
    models = _models()
    if name not in models:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(models))}")
    return models[name][1]


def list_models() -> list[str]:
    """Sorted names of every family x architecture model."""
    return sorted(_models())


def build_model(cfg: ModelConfig, info: DatasetInfo) -> RobustModel:
    """Build the model ``cfg.name`` for a dataset, wrapped in Gaussian input noise when ``cfg.input_noise > 0``."""
    models = _models()
    if cfg.name not in models:
        raise ValueError(f"unknown model {cfg.name!r}; choose from {', '.join(sorted(models))}")
    family, architecture = models[cfg.name]
    model = _ARCHITECTURES[architecture](cfg, info, family.activation(cfg), family.noise(cfg))
    return SmoothedModel(model, cfg.input_noise) if cfg.input_noise > 0 else model
