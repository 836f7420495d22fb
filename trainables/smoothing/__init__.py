"""Randomized smoothing: Gaussian input noise for training and Monte Carlo L2 certification."""

from .certify import (
    ABSTAIN,
    SmoothingConfig,
    certified_accuracy,
    certified_radius,
    certify,
    predict,
    sample_counts,
)
from .noise import GaussianInput, SmoothedModel

__all__ = [
    "ABSTAIN",
    "GaussianInput",
    "SmoothedModel",
    "SmoothingConfig",
    "certified_accuracy",
    "certified_radius",
    "certify",
    "predict",
    "sample_counts",
]
