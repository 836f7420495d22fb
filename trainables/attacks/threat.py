"""The threat model: how far an adversary may move an image, in pixel units, per norm."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["NORMS", "Norm", "ThreatModel"]


class Norm(StrEnum):
    """The ball an attack stays in; its value names the threat model in metrics (``robust_acc/linf``)."""

    LINF = "linf"
    L2 = "l2"

    @property
    def title(self) -> str:  # type: ignore[override]
        """``L-inf`` or ``L2``, for tables and model cards."""
        return "L-inf" if self is Norm.LINF else "L2"


NORMS: tuple[Norm, ...] = tuple(Norm)


def _check_radius(name: str, value: float, most: float = math.inf) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= most):
        bound = f"in [0, {most:g}]" if math.isfinite(most) else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound} (pixel units), got {name}={value!r}")


@dataclass(frozen=True)
class ThreatModel:
    """The L-inf radius ``eps`` and the L2 radius ``l2_eps`` (None: no L2 ball) every attack is held to.

    Inputs live in [0, 1]; radii are in pixel units (8/255 or 0.1 L-inf). A run holds one threat model
    (``RunSpec.threat``, ``Preset.threat``); suites and training mixes are bound to it when they run,
    so a run sets its epsilon in this one place.
    """

    eps: float = 0.1
    l2_eps: float | None = 1.5

    def __post_init__(self) -> None:
        _check_radius("eps", self.eps, most=1.0)  # pixels live in [0, 1]: a larger L-inf ball is all of them
        if self.l2_eps is not None:
            _check_radius("l2_eps", self.l2_eps)

    def radius(self, norm: Norm | str) -> float:
        """The radius of ball ``norm``."""
        if norm == Norm.LINF:
            return self.eps
        if norm == Norm.L2:
            if self.l2_eps is None:
                raise ValueError("this threat model has no L2 radius (l2_eps=None); set one for L2 attacks")
            return self.l2_eps
        raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")

    def scaled(self, factor: float) -> ThreatModel:
        """Every radius times ``factor`` (training at a multiple of the evaluation epsilon; L-inf capped at 1)."""
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"the epsilon scale must be finite and >= 0, got {factor=}")
        return ThreatModel(min(self.eps * factor, 1.0), None if self.l2_eps is None else self.l2_eps * factor)

    def describe(self) -> str:
        """``"L-inf eps 0.1, L2 eps 1.5"`` for tables and cards."""
        l2 = "no L2 ball" if self.l2_eps is None else f"L2 eps {self.l2_eps:g}"
        return f"L-inf eps {self.eps:g}, {l2}"
