"""The search and what surrounds it, by job: ``search/`` (Ray Tune + Optuna), ``export/`` (write, score, load),
``report/`` (score and render models), ``evaluate`` (re-score an export), ``provenance``."""

import trainables  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
