"""Ray Tune + Optuna search over robust classifiers, and export of the best model."""

import trainables  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
