"""Ray Tune + Optuna search over robust classifiers, and export of the best model."""
