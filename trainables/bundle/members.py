"""Which runs can share a bundle: everything but the per-member settings must be the same.

A member may differ from the others in every continuous setting that leaves the shapes alone: its
optimiser (learning rate, momentum, weight decay, Nesterov), its loss (label smoothing, clean
weight, TRADES's beta), its weight average's decay, its training attacks (the mix's weights and
budgets, the radius scale and warm-up), its IBP prior (``ibp_alpha``), its PNI initial scale, its
smoothing sigma, and its seed.
What changes shapes or the bundle's common loop (architecture, width, blocks, competitors, which
layers compete, batch size, epochs, schedule, data, suite, threat model, precision, layout) makes
separate bundles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from trainables.train import AttackMix, RunSpec

__all__ = ["MEMBER_MODEL_FIELDS", "MEMBER_TRAIN_FIELDS", "bundle_key", "check_bundle"]

MEMBER_TRAIN_FIELDS = ("lr", "momentum", "nesterov", "weight_decay", "label_smoothing", "clean_weight", "mix",
                       "eps_scale", "eps_warmup", "seed", "patience", "keep_best", "ema_decay", "trades_beta",
                       "mart_beta")
MEMBER_MODEL_FIELDS = ("ibp_alpha", "pni_init")


def bundle_key(spec: RunSpec) -> RunSpec:
    """``spec`` with every per-member setting at one value: runs with equal keys can share a bundle.

    Smoothing's sigma may differ, but whether a model has input noise at all may not.
    """
    train = replace(spec.train, **{name: getattr(RunSpec().train, name) for name in MEMBER_TRAIN_FIELDS
                                   if name != "mix"}, mix=AttackMix())
    model = replace(spec.model, **{name: getattr(RunSpec().model, name) for name in MEMBER_MODEL_FIELDS},
                    input_noise=1.0 if spec.model.input_noise > 0 else 0.0)
    return replace(spec, train=train, model=model)


def check_bundle(specs: Sequence[RunSpec]) -> None:
    """ValueError (one line, naming a setting) unless every run can share one bundle."""
    if not specs:
        raise ValueError("a bundle needs at least one run")
    first = bundle_key(specs[0]).to_dict()
    for i, spec in enumerate(specs[1:], start=1):
        other = bundle_key(spec).to_dict()
        if other != first:
            part = next(p for p in first if first[p] != other[p])
            field = next((f for f in first[part] if first[part][f] != other[part].get(f)), "?") \
                if isinstance(first[part], dict) else part
            raise ValueError(f"run {i} cannot share a bundle with run 0: they differ in {part}.{field}, which "
                             "changes the shapes or the loop they share")
