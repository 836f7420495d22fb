"""Per-example outcomes of a robustness evaluation, and the accuracies they give."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["RobustResult"]


@dataclass(frozen=True)
class RobustResult:
    """Per-example correctness (bool, (N,)) on clean inputs, under each attack, and in the worst case.

    ``adversarial`` (when asked for) holds per attack the inputs (N, C, H, W) it produced; an example
    the attack did not run on keeps its clean input there.
    """

    n: int
    natural: Tensor  # (N,) bool
    per_attack: dict[str, Tensor]  # name -> (N,) bool
    worst: Tensor  # (N,) bool: natural AND every attack
    adversarial: dict[str, Tensor] | None = None  # name -> (N, C, H, W), CPU

    def __post_init__(self) -> None:
        assert self.worst.shape == self.natural.shape == (self.n,)

    @classmethod
    def from_outcomes(cls, natural: Tensor, per_attack: dict[str, Tensor],
                      adversarial: dict[str, Tensor] | None = None) -> RobustResult:
        """The result of per-example outcomes; worst = natural AND every attack."""
        worst = natural.clone()
        for robust in per_attack.values():
            worst &= robust
        return cls(n=natural.shape[0], natural=natural, per_attack=per_attack, worst=worst, adversarial=adversarial)

    @property
    def natural_acc(self) -> float:
        """Fraction of examples classified correctly without attack."""
        return self.natural.float().mean().item()

    def attack_acc(self, name: str) -> float:
        """Fraction of examples still correct under the attack ``name`` (after it, in a cascade)."""
        if name not in self.per_attack:
            raise ValueError(f"no attack {name!r} in this result; have {list(self.per_attack)}")
        return self.per_attack[name].float().mean().item()

    @property
    def worst_acc(self) -> float:
        """Fraction of examples correct on clean inputs and under every attack (robust accuracy)."""
        return self.worst.float().mean().item()

    def as_dict(self) -> dict[str, float]:
        """Flat metrics: natural_acc, robust_acc (worst case) and acc/<attack> per attack."""
        out = {"natural_acc": self.natural_acc, "robust_acc": self.worst_acc}
        out.update({f"acc/{name}": self.attack_acc(name) for name in self.per_attack})
        return out
