"""What a command line may change in a suite, parsed the same way by every command (search, evaluate, report, train)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any

from trainables.attacks import Assignment, ThreatModel, list_attacks, parse_assignments

from .suite import GRADIENT_WAYS, GradientWay, SuiteConfig

__all__ = ["SuiteOverrides", "add_suite_arguments"]


@dataclass(frozen=True)
class SuiteOverrides:
    """Changes to a suite: which attacks, the threat model's radii, attack budgets, EOT and the cascade."""

    attacks: tuple[str, ...] | None = None
    eps: float | None = None
    l2_eps: float | None = None
    budgets: tuple[Assignment, ...] = ()
    eot_samples: int | None = None
    predict_samples: int | None = None
    cascade: bool | None = None
    gradients: tuple[GradientWay, ...] | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SuiteOverrides:
        """The overrides the flags of :func:`add_suite_arguments` hold."""
        names = None
        if args.attacks is not None:
            names = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
            if not names:
                raise ValueError(f"--attacks needs at least one of {', '.join(list_attacks())}, got {args.attacks!r}")
        ways = None if args.gradients is None else _ways(args.gradients)
        return cls(attacks=names, eps=args.epsilon, l2_eps=args.l2_epsilon,
                   budgets=parse_assignments(args.budget or ()), eot_samples=args.eot_samples,
                   predict_samples=args.predict_samples, cascade=args.cascade, gradients=ways)

    def threat(self, base: ThreatModel) -> ThreatModel:
        """``base`` with the radii that were given (ValueError for a negative or infinite one)."""
        return ThreatModel(base.eps if self.eps is None else self.eps,
                           base.l2_eps if self.l2_eps is None else self.l2_eps)

    def apply(self, suite: SuiteConfig, *, attacks: bool = True) -> SuiteConfig:
        """``suite`` with every override but the radii (:meth:`threat`); ``attacks=False`` keeps its attacks and
        budgets (a cheap per-epoch suite)."""
        out = suite
        if attacks and self.attacks is not None:
            out = out.select(self.attacks)
        if attacks and self.budgets:
            out = out.with_budget(self.budgets)
        settings: dict[str, Any] = {k: v for k, v in (("eot_samples", self.eot_samples),
                                                      ("predict_samples", self.predict_samples),
                                                      ("cascade", self.cascade), ("gradients", self.gradients))
                                     if v is not None}
        return replace(out, **settings) if settings else out


def add_suite_arguments(parser: argparse.ArgumentParser, eps_aliases: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Add the suite flags (--attacks, --epsilon, --l2-epsilon, --budget, --eot-samples, --predict-samples,
    --cascade, --gradients); returns their destinations, the names :meth:`SuiteOverrides.from_args` reads."""
    group = parser.add_argument_group("attack suite (default: as configured)")
    actions = [
        group.add_argument("--attacks", default=None, help=f"comma-separated, from {','.join(list_attacks())}"),
        group.add_argument("--epsilon", *eps_aliases, type=float, default=None, help="L-inf radius in pixel units"),
        group.add_argument("--l2-epsilon", type=float, default=None, help="L2 radius in pixel units"),
        group.add_argument("--budget", action="append", default=None, metavar="[ATTACK.]SETTING=VALUE",
                           help="an attack's budget, e.g. pgd.steps=20 or restarts=2 (every attack that has it); "
                                "repeatable, comma-separated"),
        group.add_argument("--eot-samples", type=int, default=None,
                           help="gradient draws per step (stochastic models)"),
        group.add_argument("--predict-samples", type=int, default=None, help="draws averaged per prediction"),
        group.add_argument("--cascade", action=argparse.BooleanOptionalAction, default=None,
                           help="run each attack only on the examples still robust (AutoAttack's way); "
                                "--no-cascade runs every attack on every correct example"),
        group.add_argument("--gradients", default=None, metavar="WAYS",
                           help=f"how stochastic models are attacked, from {','.join(GRADIENT_WAYS)} (both: the worst "
                                "case over both)"),
    ]
    return tuple(action.dest for action in actions)


def _ways(text: str) -> tuple[GradientWay, ...]:
    """``--gradients surrogate,sampled`` as ways (ValueError, one line, for an unknown one)."""
    names = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in names if w not in GRADIENT_WAYS]
    if unknown or not names:
        raise ValueError(f"--gradients takes ways from {', '.join(GRADIENT_WAYS)}, got {text!r}")
    return tuple(GradientWay(w) for w in names)
