"""The model families: ReLU networks, Stochastic LWTA (+ IBP) and Parametric Noise Injection."""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .lwta import LWTA
from .pni import NoiseInjection
from .registry import ActivationFactory, Family, NoiseFactory, register_family

__all__ = ["LWTA_FAMILY", "PNI", "RELU"]


def _relu(cfg: ModelConfig) -> ActivationFactory:
    return lambda channels: nn.ReLU()


def _lwta(cfg: ModelConfig) -> ActivationFactory:
    return lambda channels: LWTA(channels, cfg.competitors, cfg.temperature, cfg.inference, cfg.ibp, cfg.ibp_alpha,
                                 cfg.ibp_temperature)


def _no_noise(cfg: ModelConfig) -> NoiseFactory:
    return nn.Identity


def _pni(cfg: ModelConfig) -> NoiseFactory:
    return lambda: NoiseInjection(cfg.pni_init)


RELU = register_family(Family("relu", "ReLU activations, no noise", _relu, _no_noise, prefix=""))
LWTA_FAMILY = register_family(Family("lwta", "stochastic LWTA (optionally IBP) wherever ReLU would be", _lwta,
                                     _no_noise))
PNI = register_family(Family("pni", "ReLU activations with Parametric Noise Injection", _relu, _pni))
