"""Scoring a model under attack: suites, their command-line overrides, per-example worst cases, gradient-masking flags.

A :class:`SuiteConfig` lists attacks and how they run; it is bound to the run's one
:class:`~trainables.attacks.ThreatModel` when it scores (:func:`evaluate_robustness`,
:func:`evaluate_sharded` across data-parallel ranks, :func:`evaluate_in_processes` across CPU
processes). The result keeps per-example outcomes, so the
robust accuracy is a per-example worst case over attacks and gradient ways. :mod:`.masking` owns
the gradient-masking checks and the rule that makes a model ``suspect``; :mod:`.convergence` asks
whether a stronger attack breaks what a suite left standing.
"""

from .convergence import (
    CONVERGENCE_LIMIT,
    PROBE_EOT,
    PROBE_EXAMPLES,
    PROBE_STEPS,
    convergence_gap,
    probe_suite,
    probe_words,
)
from .masking import (
    GRADIENT_FREE_GAP_LIMIT,
    MASKING_ACC_LIMIT,
    MASKING_EPS,
    MASKING_EXAMPLES,
    MaskingFlags,
    check_masking,
    gradient_free_gap,
    large_eps_accuracy,
)
from .overrides import SuiteOverrides, add_suite_arguments
from .processes import ShardFailed, evaluate_in_processes, scoring_workers, usable_cpus
from .result import RobustResult, outcome_norm
from .robustness import ProgressFn, RobustnessWarning, evaluate_robustness, warn_if_unreliable
from .sharded import evaluate_sharded
from .suite import GRADIENT_WAYS, GradientWay, SuiteConfig, outcome_key

__all__ = [
    "CONVERGENCE_LIMIT",
    "PROBE_EOT",
    "PROBE_EXAMPLES",
    "PROBE_STEPS",
    "convergence_gap",
    "probe_suite",
    "probe_words",
    "GRADIENT_WAYS",
    "MASKING_ACC_LIMIT",
    "MASKING_EPS",
    "MASKING_EXAMPLES",
    "GradientWay",
    "MaskingFlags",
    "GRADIENT_FREE_GAP_LIMIT",
    "gradient_free_gap",
    "ProgressFn",
    "RobustResult",
    "RobustnessWarning",
    "ShardFailed",
    "SuiteConfig",
    "SuiteOverrides",
    "add_suite_arguments",
    "check_masking",
    "evaluate_in_processes",
    "evaluate_robustness",
    "evaluate_sharded",
    "large_eps_accuracy",
    "outcome_key",
    "outcome_norm",
    "scoring_workers",
    "usable_cpus",
    "warn_if_unreliable",
]
