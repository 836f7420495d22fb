"""Reading run specs of format 1, written before attacks were specs with budgets of their own.

Format 1 kept one budget per kind of attack in the suite (``steps``, ``cw_steps``, ...) and in the
training config (``eps``, ``steps``, ``step_size``, ``cw_*``, a fixed five-way mix). Exports and
checkpoints of that time still load: their settings are translated here, once, into the attack
specs they describe, and their suites run as they did then (each attack on every correct example).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FORMAT_2_TRAIN_ADDITIONS", "is_legacy_suite", "is_legacy_train", "upgrade_suite", "upgrade_train"]

# format-1 suite field -> (attack, budget field)
_SUITE_BUDGETS = {"steps": (("pgd", "steps"), ("pgd-l2", "steps")), "restarts": (("pgd", "restarts"),
                  ("pgd-l2", "restarts")), "cw_c": (("cw", "c"),), "cw_kappa": (("cw", "kappa"),),
                  "cw_steps": (("cw", "steps"),), "cw_lr": (("cw", "lr"),)}
_SUITE_KEEP = ("eot_samples", "predict_samples", "adaptive", "batch_size", "seed")
_MIX_ORDER = ("none", "gaussian", "fgsm", "pgd", "cw")
_TRAIN_DEFAULTS = {"eps": 0.1, "steps": 7, "step_size": None, "cw_c": 1.0, "cw_steps": 10, "cw_lr": 0.01}
_SUITE_DEFAULTS = {"attacks": ["fgsm", "pgd"], "eps": 0.1, "l2_eps": 1.5}


def is_legacy_suite(raw: Mapping[str, Any]) -> bool:
    """A format-1 suite: attacks as plain names, epsilon on the suite."""
    return "eps" in raw or any(isinstance(a, str) for a in raw.get("attacks", ()))


def upgrade_suite(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The format-2 dict of a format-1 suite (independent attacks, as format 1 ran them)."""
    names = list(raw.get("attacks", _SUITE_DEFAULTS["attacks"]))
    budgets: dict[str, dict[str, Any]] = {name: {} for name in names}
    for old, targets in _SUITE_BUDGETS.items():
        if old in raw:
            for name, key in targets:
                if name in budgets:
                    budgets[name][key] = raw[old]
    threat = {"eps": raw.get("eps", _SUITE_DEFAULTS["eps"]), "l2_eps": raw.get("l2_eps", _SUITE_DEFAULTS["l2_eps"])}
    kept = {k: raw[k] for k in _SUITE_KEEP if k in raw}
    return {"threat": threat, "attacks": [{"name": n, **budgets[n]} for n in names], "cascade": False, **kept}


def is_legacy_train(raw: Mapping[str, Any]) -> bool:
    """A format-1 training config: an absolute epsilon and per-attack fields."""
    return any(k in raw for k in _TRAIN_DEFAULTS) or isinstance(raw.get("mix"), Mapping)


def upgrade_train(raw: Mapping[str, Any], suite_eps: float) -> dict[str, Any]:
    """The format-2 dict of a format-1 training config; its epsilon becomes a multiple of ``suite_eps``."""
    old = {**_TRAIN_DEFAULTS, **{k: raw[k] for k in _TRAIN_DEFAULTS if k in raw}}
    weights = raw.get("mix") or {"none": 4.0, "gaussian": 1.0, "fgsm": 1.0, "pgd": 1.0, "cw": 1.0}
    specs: dict[str, dict[str, Any] | None] = {
        "none": None, "gaussian": {"name": "gaussian"}, "fgsm": {"name": "fgsm"},
        "pgd": {"name": "pgd", "steps": old["steps"], "step_size": old["step_size"]},
        "cw": {"name": "cw", "c": old["cw_c"], "steps": old["cw_steps"], "lr": old["cw_lr"], "bounded": False},
    }
    mix = [{"weight": float(weights.get(name, 0.0)), "attack": specs[name]} for name in _MIX_ORDER]
    rest = {k: v for k, v in raw.items() if k not in _TRAIN_DEFAULTS and k != "mix"}
    return {**rest, "mix": mix, "eps_scale": old["eps"] / suite_eps if suite_eps > 0 else 1.0,
            **FORMAT_2_TRAIN_ADDITIONS}


FORMAT_2_TRAIN_ADDITIONS: dict[str, Any] = {"label_smoothing": 0.0, "keep_best": False, "patience": None,
                                            "precision": "fp32", "memory_format": "contiguous"}
"""Training settings added after format 2, at the values runs written without them ran with (the last epoch
kept, float32, contiguous)."""
