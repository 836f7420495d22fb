"""An evaluation suite: the attacks (each with its own budget) and how they run, bound to a threat model to score."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from trainables.attacks import FGSM, PGD, Assignment, Attack, ThreatModel, attack_class, attack_from_dict, set_budget

__all__ = ["GRADIENT_WAYS", "GradientWay", "SuiteConfig", "outcome_key"]


class GradientWay(StrEnum):
    """How an attack takes a stochastic model's input gradients."""

    SURROGATE = "surrogate"  # through each stochastic layer's smooth expectation (straight-through, adaptive)
    SAMPLED = "sampled"  # through the sampled forward pass itself


GRADIENT_WAYS: tuple[GradientWay, ...] = tuple(GradientWay)


@dataclass(frozen=True)
class SuiteConfig:
    """The attacks that score robustness; the radii come from the run's threat model when it runs.

    ``cascade`` runs each attack only on the examples every earlier attack of its norm failed to
    break, as AutoAttack does (cheaper; ``acc/<attack>`` is then the robust accuracy *after* that
    attack); without it each attack runs on every naturally correct example (``acc/<attack>`` is
    that attack's own accuracy). The worst case, an example correct on clean input and under every
    attack, is the same quantity either way.

    ``gradients`` says how a stochastic model is attacked: through the straight-through surrogate
    of its stochastic layers, through its own sampled gradients, or both, each attack once per way
    (outcomes ``<attack>`` and ``<attack>/sampled``), the worst case taken over all of them. A
    deterministic model is attacked once; its outcome stands for every way.
    """

    attacks: tuple[Attack, ...] = (FGSM(), PGD())
    eot_samples: int = 8  # gradient draws per step, used only for stochastic models
    predict_samples: int = 8  # draws averaged into a stochastic model's prediction
    gradients: tuple[GradientWay, ...] = (GradientWay.SURROGATE,)
    cascade: bool = True
    batch_size: int = 256
    seed: int | None = 0  # seeds each attack's randomness separately; None uses the global RNG

    def __post_init__(self) -> None:
        if not isinstance(self.attacks, tuple) or not all(isinstance(a, Attack) for a in self.attacks):
            raise ValueError(f"attacks must be a tuple of attack specs (e.g. (FGSM(), PGD(steps=10))), got "
                             f"{self.attacks!r}; SuiteConfig().select(names) builds one from names")
        names = self.names()
        if len(set(names)) != len(names):
            raise ValueError(f"attacks must not repeat, got {names}")
        fixed = [f"{a.name} eps={a.eps}" for a in self.attacks if a.eps is not None]
        if fixed:
            raise ValueError(f"set epsilon in the threat model, not per attack: {', '.join(fixed)}")
        for name in ("eot_samples", "predict_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)!r}")
        ways = self.gradients
        if isinstance(ways, str) or not ways or len(set(ways)) != len(ways) or not set(ways) <= set(GRADIENT_WAYS):
            raise ValueError(f"gradients must be distinct ways from {', '.join(GRADIENT_WAYS)}, got {self.gradients!r}")
        object.__setattr__(self, "gradients", tuple(GradientWay(w) for w in ways))

    def names(self) -> tuple[str, ...]:
        """The attacks' registered names, in the order they run."""
        return tuple(a.name for a in self.attacks)

    def outcome_keys(self) -> tuple[str, ...]:
        """The outcomes a run of this suite gives: ``<attack>``, and ``<attack>/<way>`` for every later way."""
        return tuple(outcome_key(a.name, way, self.gradients) for a in self.attacks for way in self.gradients)

    def check(self, threat: ThreatModel) -> None:
        """ValueError (one line) when an attack cannot run under ``threat`` (an L2 attack and no L2 radius)."""
        self.bound(threat, stochastic=False)

    def passes(self, threat: ThreatModel, stochastic: bool) -> list[tuple[str, GradientWay, Attack]]:
        """(outcome key, way of taking gradients, attack bound to ``threat``) per run of an attack, in order."""
        attacks = self.bound(threat, stochastic)
        return [(outcome_key(name, way, self.gradients), way, attack) for name, attack in attacks.items()
                for way in self.gradients]

    def repeats(self, way: GradientWay, attack: Attack, stochastic: bool) -> bool:
        """Whether the run of ``attack`` through ``way`` has the outcome of its first way's run.

        It does on a deterministic model (one gradient) and for a gradient-free attack (none at all).
        """
        return way != self.gradients[0] and not (stochastic and attack.uses_gradients)

    def work(self, threat: ThreatModel, stochastic: bool) -> float:
        """Model passes per example of a run of this suite (:meth:`Attack.work`; a forward pass counts a third).

        Every run of an attack on every example (the cascade makes later runs cheaper, on both sides
        of a comparison alike), and each run's averaged prediction besides the natural one.
        """
        runs = [attack for _, way, attack in self.passes(threat, stochastic) if not self.repeats(way, attack,
                                                                                                 stochastic)]
        predict = (self.predict_samples if stochastic else 1) / 3
        return sum(attack.work() for attack in runs) + predict * (len(runs) + 1)

    def bound(self, threat: ThreatModel, stochastic: bool) -> dict[str, Attack]:
        """The attacks by name at ``threat``'s radii; EOT draws only when the model is ``stochastic``."""
        eot = self.eot_samples if stochastic else 1
        return {a.name: a.bind(threat, eot) for a in self.attacks}

    def select(self, names: Sequence[str]) -> SuiteConfig:
        """The suite running ``names`` in that order: budgets of this suite's attacks, defaults for the others."""
        if isinstance(names, str) or not names:
            raise ValueError(f"need a list of attack names, got {names!r}")
        mine = {a.name: a for a in self.attacks}
        return replace(self, attacks=tuple(mine[n] if n in mine else attack_class(n)() for n in names))

    def with_budget(self, assignments: Iterable[Assignment]) -> SuiteConfig:
        """The suite with budget assignments (``pgd.steps=20``, ``restarts=3``) applied to its attacks."""
        return replace(self, attacks=set_budget(self.attacks, assignments))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: one spec per attack, the run settings."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out | {"attacks": [a.to_dict() for a in self.attacks], "gradients": [str(w) for w in self.gradients]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SuiteConfig:
        """Inverse of ``to_dict``; unknown settings raise ValueError."""
        values = dict(raw)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown suite settings: {', '.join(unknown)}")
        try:
            if "gradients" in values:
                values["gradients"] = tuple(GradientWay(w) for w in values["gradients"])
            if "attacks" in values:
                values["attacks"] = tuple(attack_from_dict(a) for a in values["attacks"])
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"bad suite {dict(raw)!r}: {exc}") from None


def outcome_key(name: str, way: GradientWay, ways: tuple[GradientWay, ...]) -> str:
    """``name`` for the suite's first way of taking gradients, ``name/way`` for the others."""
    return name if way == ways[0] else f"{name}/{way}"
