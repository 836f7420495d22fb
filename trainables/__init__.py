"""Trainable components of robustune: data, models, attacks and training loops."""
