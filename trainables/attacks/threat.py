"""The threat model: how far an adversary may move an image, in pixel units, per norm."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["NORMS", "ThreatModel"]

NORMS = ("linf", "l2")


def _check_radius(name: str, value: float, most: float = math.inf) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= most):
        bound = f"in [0, {most:g}]" if math.isfinite(most) else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound} (pixel units), got {name}={value!r}")


@dataclass(frozen=True)
class ThreatModel:
    """The L-inf radius ``eps`` and the L2 radius ``l2_eps`` (None: no L2 ball) every attack is held to.

    Inputs live in [0, 1]; radii are in pixel units (8/255 or 0.1 L-inf). Each attack takes the radius
    of its own norm from here, so a run sets its epsilon in this one place.
    """

    eps: float = 0.1
    l2_eps: float | None = 1.5

    def __post_init__(self) -> None:
        _check_radius("eps", self.eps, most=1.0)  # pixels live in [0, 1]: a larger L-inf ball is all of them
        if self.l2_eps is not None:
            _check_radius("l2_eps", self.l2_eps)

    def radius(self, norm: str) -> float:
        """The radius of ball ``norm`` ("linf" or "l2")."""
        if norm == "linf":
            return self.eps
        if norm == "l2":
            if self.l2_eps is None:
                raise ValueError("this threat model has no L2 radius (l2_eps=None); set one for L2 attacks")
            return self.l2_eps
        raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")

    def scaled(self, factor: float) -> ThreatModel:
        """Every radius times ``factor`` (training at a multiple of the evaluation epsilon; L-inf capped at 1)."""
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"the epsilon scale must be finite and >= 0, got {factor=}")
        return ThreatModel(min(self.eps * factor, 1.0), None if self.l2_eps is None else self.l2_eps * factor)
