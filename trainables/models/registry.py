"""Models by name: each architecture is registered once and each family once; a name is ``[family-]arch``.

An *architecture* (``cnn``, ``wrn``) lays out the layers and asks two factories where an activation
and a noise layer go. A *family* (``relu``, ``lwta``, ``pni``) supplies those factories from the
:class:`ModelConfig`. Every family x architecture pair is a model: ``cnn`` (the ReLU family's models
carry the architecture's name alone), ``lwta-cnn``, ``pni-wrn``...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from trainables.registry import Registry

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

    name: str  # "relu", "lwta", "pni"
    description: str
    activation: Callable[[ModelConfig], ActivationFactory]
    noise: Callable[[ModelConfig], NoiseFactory]
    prefix: str | None = None  # of its models' names (None: the family's name; "": the architecture's name alone)

    def model_name(self, architecture: str) -> str:
        """The registered name of this family's variant of ``architecture``."""
        prefix = self.name if self.prefix is None else self.prefix
        return f"{prefix}-{architecture}" if prefix else architecture


def _no_dash(name: str) -> str | None:
    return "it holds '-', which separates family and architecture in model names" if "-" in name else None


ARCHITECTURES: Registry[Architecture] = Registry("architecture", _no_dash)
FAMILIES: Registry[Family] = Registry("model family", _no_dash)


def register_architecture(name: str) -> Callable[[Architecture], Architecture]:
    """Decorator registering ``build(cfg, info, make_activation, make_noise)`` as architecture ``name``."""
    return ARCHITECTURES.register(name)


def register_family(family: Family) -> Family:
    """Register a model family under its name."""
    return FAMILIES.add(family.name, family)


def _models() -> dict[str, tuple[Family, str]]:
    return {FAMILIES[f].model_name(a): (FAMILIES[f], a) for f in FAMILIES for a in ARCHITECTURES}


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
    model = ARCHITECTURES[architecture](cfg, info, family.activation(cfg), family.noise(cfg))
    return SmoothedModel(model, cfg.input_noise) if cfg.input_noise > 0 else model
