"""Robust image classifiers by name: each architecture (small CNN, WideResNet) in each family (plain, LWTA, PNI).

Architectures and families register themselves when their module is imported; every module of this
package is imported here, so a new architecture is one new file (see README, "Extending robustune").
"""

from __future__ import annotations

from trainables.discovery import import_modules

from .base import (
    Normalize,
    RobustModel,
    StochasticModule,
    evaluating,
    is_stochastic,
    model_device,
    predict,
    predict_proba,
    surrogate_gradients,
)
from .config import LWTA_LAYERS, ModelConfig
from .ibp import IBPIndicators, kumaraswamy_beta_kl
from .lwta import LWTA
from .pni import NoiseInjection, pni_parameters
from .registry import (
    ARCHITECTURES,
    FAMILIES,
    Family,
    architecture_of,
    build_model,
    list_models,
    register_architecture,
    register_family,
)
from .small_cnn import SmallCNN
from .smoothed import GaussianInput, SmoothedModel
from .wideresnet import WideResNet

import_modules(__name__, __path__)

__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "Family",
    "GaussianInput",
    "IBPIndicators",
    "LWTA",
    "LWTA_LAYERS",
    "ModelConfig",
    "NoiseInjection",
    "Normalize",
    "RobustModel",
    "SmallCNN",
    "SmoothedModel",
    "StochasticModule",
    "WideResNet",
    "architecture_of",
    "build_model",
    "evaluating",
    "is_stochastic",
    "kumaraswamy_beta_kl",
    "list_models",
    "model_device",
    "pni_parameters",
    "predict",
    "predict_proba",
    "register_architecture",
    "register_family",
    "surrogate_gradients",
]
