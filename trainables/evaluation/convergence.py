"""The convergence check: does a stronger attack break what the suite left standing?

A suite's claim holds only if more attack effort does not take it lower. At 20 APGD steps it did
(2.6-5.8 points at eps 0.2-0.3, docs/results.md "How many attack steps a claim needs"), and even
at AutoAttack's 100 steps twice the steps and more EOT draws still found a few points at the
largest radius. So an export is probed: the suite's gradient attacks of one ball at
:data:`PROBE_STEPS` times their steps and :data:`PROBE_EOT` times its EOT draws, on the first
:data:`PROBE_EXAMPLES` examples that the suite's worst case of that ball left standing. The share
it breaks (of those first examples) is how far the claim is from converged; above
:data:`CONVERGENCE_LIMIT` the figure likely overstates robustness by about that much.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from trainables.attacks import Attack, Norm, ThreatModel

from .processes import evaluate_in_processes
from .result import RobustResult
from .robustness import ProgressFn
from .suite import SuiteConfig

__all__ = ["CONVERGENCE_LIMIT", "PROBE_EOT", "PROBE_EXAMPLES", "PROBE_STEPS", "convergence_gap", "probe_suite",
           "probe_words"]

PROBE_EXAMPLES = 100  # the first examples of a split the probe attacks again (those still standing)
PROBE_STEPS = 2  # times the suite's steps
PROBE_EOT = 2  # times the suite's EOT draws (stochastic models)
CONVERGENCE_LIMIT = 0.02  # a stronger attack breaking more than this share of the probed examples: not converged


def probe_suite(suite: SuiteConfig, norm: Norm | str = Norm.LINF) -> SuiteConfig | None:
    """The suite's iterative gradient attacks of ``norm`` at PROBE_STEPS x steps and PROBE_EOT x EOT (None: none)."""
    stronger = tuple(_longer(a) for a in suite.attacks if a.norm == norm and a.uses_gradients and _steps(a))
    if not stronger:
        return None
    seed = None if suite.seed is None else suite.seed + 1  # other random starts than the suite's own
    return replace(suite, attacks=stronger, eot_samples=PROBE_EOT * suite.eot_samples, seed=seed)


def convergence_gap(model: nn.Module, images: Tensor, labels: Tensor, suite: SuiteConfig, threat: ThreatModel,
                    result: RobustResult, *, workers: int = 1, device: torch.device | str | None = None,
                    norm: Norm | str = Norm.LINF, progress: ProgressFn | None = None) -> float | None:
    """Share of the first PROBE_EXAMPLES examples that ``result`` (the suite's, on ``images``) leaves standing in
    ``norm``'s ball and the probe suite breaks (None: no attack to strengthen, or no example; 0: none stands)."""
    probe = probe_suite(suite, norm)
    head = min(PROBE_EXAMPLES, result.n)
    if probe is None or head == 0:
        return None
    standing = result.worst_for(norm)[:head].nonzero().squeeze(1)  # (S,)
    if standing.numel() == 0:
        return 0.0
    again = evaluate_in_processes(model, images[standing], labels[standing], probe, threat, workers=workers,
                                  device=device, progress=progress)
    broken = again.natural & ~again.worst_for(norm)  # still right on clean input, wrong under the stronger attack
    return broken.float().sum().item() / head


def probe_words(gap: float, examples: int, split: str = "test", steps_x: int = PROBE_STEPS,
                eot_x: int = PROBE_EOT) -> str:
    """What the check found, in words: '... at 2x the steps and 2x the EOT draws broke 1.0% more of ...'."""
    return (f"the suite's L-inf gradient attacks at {steps_x}x the steps and {eot_x}x the EOT draws broke "
            f"{100 * gap:.1f}% more of the first {examples} {split} images")


def _steps(attack: Attack) -> int:
    return int(getattr(attack, "steps", 0) or 0)


def _longer(attack: Attack) -> Attack:
    return replace(attack, steps=PROBE_STEPS * _steps(attack))
