"""Per-example outcomes of a robustness evaluation, and the accuracies they give."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from trainables.attacks import ATTACKS, NORMS, Norm, attack_class

__all__ = ["RobustResult", "outcome_name", "outcome_norm"]


def outcome_name(key: str) -> str:
    """The registered attack behind outcome ``key`` (``<attack>[/<way>]``)."""
    return key if key in ATTACKS else key.rpartition("/")[0] or key


def outcome_norm(key: str) -> Norm:
    """The norm of the registered attack behind outcome ``key`` (``<attack>[/<way>]``)."""
    return attack_class(outcome_name(key)).norm


@dataclass(frozen=True)
class RobustResult:
    """Per-example correctness (bool, (N,)) on clean inputs, under each attack, and in the worst case.

    ``norms`` gives the norm of each outcome's attack, for the worst case per threat model.
    ``adversarial`` (when asked for) holds per attack the inputs (N, C, H, W) it produced; an example
    the attack did not run on keeps its clean input there.
    """

    n: int
    natural: Tensor  # (N,) bool
    per_attack: dict[str, Tensor]  # name -> (N,) bool
    worst: Tensor  # (N,) bool: natural AND every attack
    norms: Mapping[str, Norm]  # name -> the ball its attack stays in
    adversarial: dict[str, Tensor] | None = None  # name -> (N, C, H, W), CPU

    def __post_init__(self) -> None:
        assert self.worst.shape == self.natural.shape == (self.n,)
        assert set(self.norms) == set(self.per_attack) and set(self.norms.values()) <= set(NORMS), self.norms

    @classmethod
    def from_outcomes(cls, natural: Tensor, per_attack: dict[str, Tensor],
                      adversarial: dict[str, Tensor] | None = None,
                      norms: Mapping[str, Norm] | None = None) -> RobustResult:
        """The result of per-example outcomes; worst = natural AND every attack; norms from the registry if None."""
        worst = natural.clone()
        for robust in per_attack.values():
            worst &= robust
        norms = {key: outcome_norm(key) for key in per_attack} if norms is None else \
            {key: Norm(norm) for key, norm in norms.items()}
        return cls(n=natural.shape[0], natural=natural, per_attack=per_attack, worst=worst, norms=norms,
                   adversarial=adversarial)

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

    @property
    def attacked_norms(self) -> tuple[Norm, ...]:
        """The norms at least one outcome's attack has, in the order of ``NORMS``."""
        return tuple(norm for norm in NORMS if norm in self.norms.values())

    def worst_for(self, norm: Norm | str) -> Tensor:
        """(N,) bool: natural AND every outcome whose attack has ``norm`` (natural when none has)."""
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")
        worst = self.natural.clone()
        for name, robust in self.per_attack.items():
            if self.norms[name] == norm:
                worst &= robust
        return worst

    def worst_acc_for(self, norm: Norm | str) -> float:
        """Robust accuracy under the attacks of ``norm`` only (the worst case in that threat model)."""
        return self.worst_for(norm).float().mean().item()

    def as_dict(self) -> dict[str, float]:
        """Flat metrics: natural_acc, robust_acc (worst case), robust_acc/<norm> per attacked norm, acc/<attack>."""
        out = {"natural_acc": self.natural_acc, "robust_acc": self.worst_acc}
        out.update({f"robust_acc/{norm}": self.worst_acc_for(norm) for norm in self.attacked_norms})
        out.update({f"acc/{name}": self.attack_acc(name) for name in self.per_attack})
        return out
