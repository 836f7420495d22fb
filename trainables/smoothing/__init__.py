"""Randomized smoothing: Monte Carlo prediction and L2 certification of a Gaussian-noise model.

The noisy model itself (:class:`~trainables.models.SmoothedModel`) is a model like any other and
lives in :mod:`trainables.models`; it is re-exported here for convenience.
"""

from trainables.models.smoothed import GaussianInput, SmoothedModel

from .certify import ABSTAIN, SmoothingConfig, certified_accuracy, certified_radius, certify, predict, sample_counts

__all__ = ["ABSTAIN", "GaussianInput", "SmoothedModel", "SmoothingConfig", "certified_accuracy", "certified_radius",
           "certify", "predict", "sample_counts"]
