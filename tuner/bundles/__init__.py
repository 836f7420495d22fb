"""Fused trials: k Optuna trials of one shape trained as one bundle in one Ray Tune trial (``--fuse``).

:mod:`.fuse` decides k (measured with ``auto``) and builds the searcher and the trainable;
:mod:`.search` hands Tune bundles of the study's trials; :mod:`.trial` trains one bundle, each
member reporting, pruned and told as its own Optuna trial.
"""

from .fuse import (
           AUTO_SIZES,
           PAYS,
           FuseChoice,
           Fusion,
           bundle_searcher,
           bundle_trainable,
           choose,
           parse_fuse,
           resolve_fusion,
)
from .search import BundleKey, BundleSearch
from .trial import BundleContext, run_bundle_trial

__all__ = ["AUTO_SIZES", "PAYS", "BundleContext", "BundleKey", "BundleSearch", "FuseChoice", "Fusion",
           "bundle_searcher", "bundle_trainable", "choose", "parse_fuse", "resolve_fusion", "run_bundle_trial"]
