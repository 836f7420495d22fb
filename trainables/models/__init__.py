"""Robust image classifiers by name: small CNN and WideResNet, each plain, LWTA(+IBP) or PNI."""

from __future__ import annotations

from . import small_cnn, wideresnet  # noqa: F401  (register the builders)
from .base import (
    Normalize,
    RobustModel,
    StochasticModule,
    is_stochastic,
    predict,
    predict_proba,
    surrogate_gradients,
)
from .config import ModelConfig
from .ibp import IBPIndicators, kumaraswamy_beta_kl
from .lwta import LWTA
from .pni import NoiseInjection, pni_parameters
from .registry import MODELS, build_model, list_models, register_model
from .small_cnn import SmallCNN
from .wideresnet import WideResNet

__all__ = [
    "IBPIndicators",
    "LWTA",
    "MODELS",
    "ModelConfig",
    "NoiseInjection",
    "Normalize",
    "RobustModel",
    "SmallCNN",
    "StochasticModule",
    "WideResNet",
    "build_model",
    "is_stochastic",
    "kumaraswamy_beta_kl",
    "list_models",
    "pni_parameters",
    "predict",
    "predict_proba",
    "register_model",
    "surrogate_gradients",
]
