"""One Optuna define-by-run search space per model family, registered by name.

Every module of this package is imported here, so a new space is one new file (see README).
"""

import trainables  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
from search_spaces.base import SearchSpace, apply_mix, apply_optimizer, suggest_mix, suggest_optimizer
from search_spaces.presets import PRESETS, Preset
from search_spaces.registry import get_space, list_spaces, register_space
from trainables.discovery import import_modules

import_modules(__name__, __path__)

__all__ = [
    "PRESETS",
    "Preset",
    "SearchSpace",
    "apply_mix",
    "apply_optimizer",
    "get_space",
    "list_spaces",
    "register_space",
    "suggest_mix",
    "suggest_optimizer",
]
