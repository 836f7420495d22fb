"""How a report scores every model: the attack suite, the certification budget and the figure sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from search_spaces.presets import PRESETS
from trainables.attacks import Norm, ThreatModel
from trainables.evaluation import SuiteConfig

__all__ = ["ReportConfig", "default_suite"]


def default_suite() -> SuiteConfig:
    """The paper's table: the quick objective's L-inf attacks and the export's L2 ones, each on every correct example.

    The objective suite is L-inf only; the table keeps its PGD-L2 and CW columns from the export suite.
    """
    quick = PRESETS["quick"]
    l2 = tuple(a for a in quick.export_suite.attacks if a.norm == Norm.L2)
    return replace(quick.objective_suite, attacks=quick.objective_suite.attacks + l2, cascade=False)


@dataclass(frozen=True)
class ReportConfig:
    """The attack suite and its threat model, certification budget (smoothing models) and figure sizes of a report."""

    suite: SuiteConfig = field(default_factory=default_suite)
    threat: ThreatModel = field(default_factory=lambda: PRESETS["quick"].threat)
    radii: tuple[float, ...] = (0.25, 0.5)  # L2 radii of certified accuracy (smoothing models only)
    certify_n0: int = 50
    certify_n: int = 200
    certify_alpha: float = 0.001
    certify_limit: int | None = None  # certify the first N test examples (None: all evaluated ones)
    figure_limit: int = 200  # test examples whose attacked versions the probability figure shows
    examples: int = 6  # adversarial examples per attack in the grid

    def __post_init__(self) -> None:
        if not self.suite.attacks:
            raise ValueError("a report needs at least one attack in its suite")
        self.suite.check(self.threat)
        bad = [r for r in self.radii if not (r >= 0 and math.isfinite(r))]
        if bad or not self.radii:
            raise ValueError(f"radii must be a non-empty list of finite values >= 0, got {self.radii=}")
        for name in ("certify_n0", "certify_n", "figure_limit", "examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)!r}")
        if self.certify_limit is not None and self.certify_limit < 1:
            raise ValueError(f"certify_limit must be >= 1 or None, got {self.certify_limit=}")
        if not 0 < self.certify_alpha < 1:
            raise ValueError(f"certify_alpha must be in (0, 1), got {self.certify_alpha=}")
