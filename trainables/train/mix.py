"""The training mix: which attack perturbs each training batch, drawn by weight; "none" is a clean batch.

Also what a run makes of its mix: TRADES's PGD in place of PGD (:func:`training_attacks`) and the
training-radius warm-up (:func:`warmed_up`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from trainables.attacks import (
    FGSM,
    PGD,
    PGDKL,
    Assignment,
    Attack,
    CarliniWagnerL2,
    GaussianNoise,
    ThreatModel,
    attack_class,
    attack_from_dict,
    set_budget,
)

__all__ = ["CLEAN", "AttackMix", "MixEntry", "paper_mix", "parse_weights", "radius_share", "training_attacks",
           "warmed_up"]

CLEAN = "none"  # the mix's name for a batch trained on as it is


@dataclass(frozen=True)
class MixEntry:
    """One choice of the mix: its relative weight and the attack spec (None: a clean batch)."""

    weight: float
    attack: Attack | None = None

    @property
    def name(self) -> str:
        """The attack's registered name, or "none" for a clean batch."""
        return CLEAN if self.attack is None else self.attack.name


def paper_mix() -> tuple[MixEntry, ...]:
    """The paper's draw: uniform over 0..7, where 0-3 are gaussian, fgsm, pgd (7 steps), cw and 4-7 no attack."""
    return (MixEntry(4.0), MixEntry(1.0, GaussianNoise()), MixEntry(1.0, FGSM()), MixEntry(1.0, PGD(steps=7)),
            MixEntry(1.0, CarliniWagnerL2(steps=10, bounded=False)))


@dataclass(frozen=True)
class AttackMix:
    """Relative weights of the attack drawn for each training batch, each attack with its own budget.

    Entries with weight 0 stay in the mix (a search space re-weights them). The attacks are specs:
    their radius comes from the training threat model when the loop binds them.
    """

    entries: tuple[MixEntry, ...] = field(default_factory=paper_mix)

    def __post_init__(self) -> None:
        if not isinstance(self.entries, tuple) or not all(isinstance(e, MixEntry) for e in self.entries):
            raise ValueError(f"a mix holds a tuple of MixEntry, got {self.entries!r}")
        weights = self.weights()
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"attack mix weights must be finite and >= 0, got {self}")
        if sum(weights) <= 0:
            raise ValueError(f"attack mix needs a positive weight, got {self}")
        names = self.names()
        if len(set(names)) != len(names):
            raise ValueError(f"an attack appears twice in the mix {self}")
        bound = [e.name for e in self.entries if e.attack is not None and e.attack.eps is not None]
        if bound:
            raise ValueError(f"mix attacks take their eps from the training threat model; {', '.join(bound)} set one")

    def __str__(self) -> str:
        return ",".join(f"{e.name}:{e.weight:g}" for e in self.entries)

    def names(self) -> tuple[str, ...]:
        """The entries' names ("none" for clean batches), in order."""
        return tuple(e.name for e in self.entries)

    def weights(self) -> tuple[float, ...]:
        """The entries' weights, in order."""
        return tuple(float(e.weight) for e in self.entries)

    @classmethod
    def parse(cls, text: str, budgets: Iterable[Attack] = ()) -> AttackMix:
        """``"pgd:1,none:1"`` in that order; an attack takes its spec from ``budgets``, else its defaults."""
        specs = {a.name: a for a in budgets}
        weights = parse_weights(text)
        return cls(tuple(MixEntry(w, _spec(name, specs)) for name, w in weights.items()))

    def reweighted(self, weights: Mapping[str, float]) -> AttackMix:
        """The same attacks and budgets with new weights: entries not named get 0, new names are appended."""
        specs = {e.name: e.attack for e in self.entries}
        entries = [MixEntry(float(weights.get(e.name, 0.0)), e.attack) for e in self.entries]
        entries += [MixEntry(float(w), _spec(name, specs)) for name, w in weights.items() if name not in specs]
        return AttackMix(tuple(entries))

    def with_budget(self, assignments: Iterable[Assignment]) -> AttackMix:
        """The mix with budget assignments (``pgd.steps=5``, ``step_ratio=2``) applied to its attacks."""
        attacks = [e.attack for e in self.entries if e.attack is not None]
        updated = iter(set_budget(attacks, assignments))
        return AttackMix(tuple(e if e.attack is None else MixEntry(e.weight, next(updated)) for e in self.entries))

    def bound(self, threat: ThreatModel) -> tuple[Attack | None, ...]:
        """Per entry, the attack at ``threat``'s radii (None for clean batches)."""
        return tuple(None if e.attack is None else e.attack.bind(threat) for e in self.entries)

    def draw(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` entry indices (count,) drawn by weight, with replacement."""
        return torch.multinomial(torch.tensor(self.weights()), count, replacement=True, generator=generator)

    def to_dict(self) -> list[dict[str, Any]]:
        """JSON form: one ``{"weight": w, "attack": spec or None}`` per entry."""
        return [{"weight": e.weight, "attack": None if e.attack is None else e.attack.to_dict()} for e in self.entries]

    @classmethod
    def from_dict(cls, raw: Sequence[Mapping[str, Any]]) -> AttackMix:
        """Inverse of ``to_dict``."""
        try:
            return cls(tuple(MixEntry(float(e["weight"]), None if e.get("attack") is None
                                      else attack_from_dict(e["attack"])) for e in raw))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad attack mix {raw!r}: {exc}") from None


def parse_weights(text: str) -> dict[str, float]:
    """``"pgd:1,none:2"`` -> {"pgd": 1.0, "none": 2.0}; a name alone weighs 1."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition(":")
        name = name.strip()
        if name != CLEAN:
            try:
                attack_class(name)
            except ValueError as exc:
                raise ValueError(f"{exc} (in the mix {text!r}; 'none' is a clean batch)") from None
        try:
            weights[name] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"bad weight {value!r} for {name!r} in mix {text!r}") from None
    return weights


def _spec(name: str, specs: Mapping[str, Attack | None]) -> Attack | None:
    if name == CLEAN:
        return None
    return specs[name] if name in specs else attack_class(name)()


def training_attacks(mix: AttackMix, threat: ThreatModel, trades_beta: float = 0.0) -> tuple[Attack | None, ...]:
    """Per mix entry, its attack at ``threat``'s radii (None: clean); with TRADES, L-inf PGD climbs the KL."""
    bound = mix.bound(threat)
    if trades_beta <= 0:
        return bound
    return tuple(PGDKL.of(a) if type(a) is PGD else a for a in bound)


def radius_share(warmup: float, step: int, total: int) -> float:
    """The share of its training radius a run attacks at on step ``step`` (0-based) of ``total``.

    Grows linearly to 1 over the first ``warmup`` share of the steps (the training-epsilon warm-up
    of Gowal et al. 2019 and of curriculum adversarial training); 1 throughout when ``warmup`` is 0.
    """
    if warmup <= 0:
        return 1.0
    return min(1.0, (step + 1) / max(1, round(warmup * total)))


def warmed_up(attack: Attack | None, share: float) -> Attack | None:
    """``attack`` at ``share`` of its radius (itself at share 1, for clean batches and unbounded attacks)."""
    if attack is None or share >= 1.0 or attack.eps is None:
        return attack
    return replace(attack, eps=attack.eps * share)
