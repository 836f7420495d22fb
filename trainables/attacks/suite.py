"""An evaluation suite: a threat model, the attacks (each with its own budget) and how they are run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .base import Attack
from .fgsm import FGSM
from .options import Assignment, set_budget
from .pgd import PGD
from .registry import attack_class, attack_from_dict
from .threat import ThreatModel

__all__ = ["GRADIENTS", "SuiteConfig"]

GRADIENTS = ("surrogate", "plain")  # how an attack takes a stochastic model's gradients


@dataclass(frozen=True)
class SuiteConfig:
    """The attacks that score robustness, under one threat model.

    ``cascade`` runs each attack only on the examples every earlier attack failed to break, as
    AutoAttack does (cheaper; ``acc/<attack>`` is then the robust accuracy *after* that attack);
    without it each attack runs on every naturally correct example (``acc/<attack>`` is that
    attack's own accuracy). The worst case, an example correct on clean input and under every
    attack, is the same quantity either way.

    ``gradients`` says how a stochastic model is attacked: through the straight-through surrogate
    of its stochastic layers (``"surrogate"``, adaptive), through its own sampled gradients
    (``"plain"``), or both, each attack once per way (outcomes ``<attack>`` and ``<attack>/plain``),
    the worst case taken over all of them. A deterministic model is attacked once; its outcome
    stands for every way.
    """

    threat: ThreatModel = field(default_factory=ThreatModel)
    attacks: tuple[Attack, ...] = (FGSM(), PGD())
    eot_samples: int = 8  # gradient draws per step, used only for stochastic models
    predict_samples: int = 8  # draws averaged into a stochastic model's prediction
    gradients: tuple[str, ...] = ("surrogate",)
    cascade: bool = True
    batch_size: int = 256
    seed: int | None = 0  # seeds each attack's randomness separately; None uses the global RNG

    def __post_init__(self) -> None:
        if not isinstance(self.threat, ThreatModel):
            raise ValueError(f"threat must be a ThreatModel, got {self.threat!r}")
        if not isinstance(self.attacks, tuple) or not all(isinstance(a, Attack) for a in self.attacks):
            raise ValueError(f"attacks must be a tuple of attack specs (e.g. (FGSM(), PGD(steps=10))), got "
                             f"{self.attacks!r}; SuiteConfig().select(names) builds one from names")
        names = self.names()
        if len(set(names)) != len(names):
            raise ValueError(f"attacks must not repeat, got {names}")
        fixed = [f"{a.name} eps={a.eps}" for a in self.attacks if a.eps is not None]
        if fixed:
            raise ValueError(f"set epsilon in the threat model, not per attack: {', '.join(fixed)}")
        for attack in self.attacks:
            attack.bind(self.threat)  # an L2 attack under a threat model without an L2 radius fails here
        for name in ("eot_samples", "predict_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)!r}")
        ways = self.gradients
        if isinstance(ways, str) or not ways or len(set(ways)) != len(ways) or not set(ways) <= set(GRADIENTS):
            raise ValueError(f"gradients must be distinct ways from {GRADIENTS}, got {self.gradients!r}")

    def names(self) -> tuple[str, ...]:
        """The attacks' registered names, in the order they run."""
        return tuple(a.name for a in self.attacks)

    def outcome_keys(self) -> tuple[str, ...]:
        """The outcomes a run of this suite gives: ``<attack>``, and ``<attack>/<way>`` for every later way."""
        return tuple(outcome_key(a.name, way, self.gradients) for a in self.attacks for way in self.gradients)

    def passes(self, stochastic: bool) -> list[tuple[str, str, Attack]]:
        """(outcome key, way of taking gradients, bound attack) per run of an attack, in order."""
        attacks = self.bound(stochastic)
        return [(outcome_key(name, way, self.gradients), way, attack) for name, attack in attacks.items()
                for way in self.gradients]

    def bound(self, stochastic: bool) -> dict[str, Attack]:
        """The attacks by name at the threat model's radii; EOT draws only when the model is ``stochastic``."""
        eot = self.eot_samples if stochastic else 1
        return {a.name: a.bind(self.threat, eot) for a in self.attacks}

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
        """JSON form: the threat model, one spec per attack, the run settings."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out | {"threat": asdict(self.threat), "attacks": [a.to_dict() for a in self.attacks]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SuiteConfig:
        """Inverse of ``to_dict``; suites written before attacks were specs are read as they ran."""
        from .legacy import is_legacy_suite, upgrade_suite

        values = dict(upgrade_suite(raw) if is_legacy_suite(raw) else raw)
        if "adaptive" in values:  # format 1 and the first format-2 suites: one bool for the surrogate
            values["gradients"] = ("surrogate",) if values.pop("adaptive") else ("plain",)
        if isinstance(values.get("gradients"), list):
            values["gradients"] = tuple(values["gradients"])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown suite settings: {', '.join(unknown)}")
        try:
            if "threat" in values:
                values["threat"] = ThreatModel(**values["threat"])
            if "attacks" in values:
                values["attacks"] = tuple(attack_from_dict(a) for a in values["attacks"])
        except TypeError as exc:
            raise ValueError(f"bad suite {dict(raw)!r}: {exc}") from None
        return cls(**values)


def outcome_key(name: str, way: str, ways: tuple[str, ...]) -> str:
    """``name`` for the suite's first way of taking gradients, ``name/way`` for the others."""
    return name if way == ways[0] else f"{name}/{way}"
