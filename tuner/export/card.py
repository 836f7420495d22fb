"""The model card (README.md) of an export, and the suite and threat model an export was scored with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables.attacks import NORMS, ThreatModel
from trainables.data import DatasetInfo
from trainables.evaluation import (
    CONVERGENCE_LIMIT,
    GRADIENT_FREE_GAP_LIMIT,
    PROBE_EOT,
    PROBE_EXAMPLES,
    PROBE_STEPS,
    GradientWay,
    SuiteConfig,
    probe_words,
)
from trainables.models import RobustModel, is_stochastic
from trainables.train.config import RunSpec
from tuner.export.scoring import CONVERGENCE_KEY, GAP_KEY

__all__ = ["accuracy_table", "claim_warnings", "gradient_free_gaps", "masking_warning", "model_card", "recorded_suite",
           "recorded_threat"]


def recorded_suite(metrics: dict[str, Any], spec: RunSpec) -> SuiteConfig:
    """The suite an export was scored with: metrics["suite"] when present, else ``spec.suite``."""
    raw = metrics.get("suite")
    return SuiteConfig.from_dict(raw) if isinstance(raw, dict) else spec.suite


def recorded_threat(metrics: dict[str, Any], spec: RunSpec) -> ThreatModel:
    """The threat model an export was scored under: metrics["threat"] when present, else ``spec.threat``."""
    raw = metrics.get("threat")
    return ThreatModel(**raw) if isinstance(raw, dict) else spec.threat


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "–"


def accuracy_table(metrics: dict[str, Any]) -> str:
    """Markdown: a row per accuracy (natural, each attack, worst case per ball and overall), a column per split."""
    splits = [s for s in ("validation", "test") if isinstance(metrics.get(s), dict)]
    if not splits:
        return "_No accuracies recorded._"
    attacks: list[str] = []
    for split in splits:
        attacks += [k for k in metrics[split] if k.startswith("acc/") and k not in attacks]
    examples = metrics.get("examples", {})
    header = [s + (f" ({examples[s]} examples)" if s in examples else "") for s in splits]
    rows = [("natural", "natural_acc")] + [(k.removeprefix("acc/"), k) for k in attacks]
    norms = [(f"worst case, {norm.title} ball", f"robust_acc/{norm}") for norm in NORMS
             if any(f"robust_acc/{norm}" in metrics[s] for s in splits)]
    rows += norms if len(norms) > 1 else []  # with one threat model its worst case is the row below
    rows.append(("**worst case**" + (", every attack" if len(norms) > 1 else ""), "robust_acc"))
    lines = ["| accuracy | " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(splits)]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(_percent(metrics[s].get(key)) for s in splits) + " |")
    return "\n".join(lines)


def _threat_lines(suite: SuiteConfig, threat: ThreatModel, stochastic: bool) -> str:
    attacks = "\n".join(f"  - `{name}`: {attack.describe()}"
                        for name, attack in suite.bound(threat, stochastic).items())
    if stochastic:
        attacks += (f"\n  - each through {' and '.join(suite.gradients)} gradients: `{GradientWay.SURROGATE}` "
                    "back-propagates through the expectation of each stochastic layer (straight-through, adaptive), "
                    f"`{GradientWay.SAMPLED}` through the sampled forward pass; rows `<attack>/<way>` name every way "
                    "after the first")
    eot = (f"{suite.eot_samples} gradient draws per attack step, predictions averaged over "
           f"{suite.predict_samples} draws" if stochastic else "not used (the model is deterministic)")
    order = ("in a cascade per threat model: each attack runs on the examples every earlier attack of its ball "
             "failed to break, and its row is that ball's robust accuracy after it" if suite.cascade
             else "each on every correctly classified example")
    l2 = "none" if threat.l2_eps is None else f"{threat.l2_eps:g}"
    return (f"- L-inf epsilon: {threat.eps:g} (pixel units, {255 * threat.eps:.1f}/255)\n- L2 epsilon: {l2}\n"
            f"- Attacks ({order}):\n{attacks or '  - none'}\n- EOT samples: {eot}")


def gradient_free_gaps(metrics: dict[str, Any]) -> dict[str, float]:
    """Per split scored (validation, test), the share only the gradient-free attack broke (none: no such attack)."""
    return {s: float(metrics[s][GAP_KEY]) for s in ("validation", "test") if GAP_KEY in metrics.get(s, {})}


def masking_warning(metrics: dict[str, Any]) -> str | None:
    """One line when an export's gradient-free check fired (its figures likely overstate robustness), else None."""
    gaps = gradient_free_gaps(metrics)
    if not gaps or max(gaps.values()) <= GRADIENT_FREE_GAP_LIMIT:
        return None
    split, gap = max(gaps.items(), key=lambda item: item[1])
    return (f"Square broke {100 * gap:.2f}% of the {split} images every gradient attack left standing (limit "
            f"{100 * GRADIENT_FREE_GAP_LIMIT:g}%): the gradients are likely masked, the robust figures rest on "
            "Square and may overstate; check with more Square queries (--budget square.n_queries=5000), attack "
            "steps and EOT draws (python -m tuner.evaluate --help)")


def _convergence(metrics: dict[str, Any]) -> tuple[float, str] | None:
    """The test split's convergence gap and how it was measured, in words (None: not probed)."""
    gap = metrics.get("test", {}).get(CONVERGENCE_KEY)
    if gap is None:
        return None
    probe = metrics.get("probe", {})
    how = probe_words(float(gap), probe.get("examples", PROBE_EXAMPLES), "test", probe.get("steps_x", PROBE_STEPS),
                      probe.get("eot_x", PROBE_EOT))
    return float(gap), how


def convergence_warning(metrics: dict[str, Any]) -> str | None:
    """One line when a stronger attack broke more than the limit of what the suite left standing, else None."""
    measured = _convergence(metrics)
    if measured is None or measured[0] <= CONVERGENCE_LIMIT:
        return None
    gap, how = measured
    return (f"{how} (limit {100 * CONVERGENCE_LIMIT:g}%): the attacks had not converged, and the L-inf figure is "
            f"likely about {100 * gap:.0f} points too high")


def claim_warnings(metrics: dict[str, Any]) -> list[str]:
    """The export's checks that fired, one line each: gradient masking, an attack that had not converged."""
    return [w for w in (masking_warning(metrics), convergence_warning(metrics)) if w is not None]


def _convergence_line(metrics: dict[str, Any]) -> str:
    """The convergence check's sentence (empty when it did not run)."""
    measured = _convergence(metrics)
    if measured is None:
        return ""
    gap, how = measured
    verdict = ("above the limit: the attacks had not converged, so the L-inf figure above likely overstates "
               "robustness by about that much" if gap > CONVERGENCE_LIMIT else "within the limit")
    return f"\nConvergence check: {how} than the suite; limit {100 * CONVERGENCE_LIMIT:g}%, {verdict}.\n"


def _gap_line(metrics: dict[str, Any]) -> str:
    """The gradient-free check's sentence (empty when the suite held no gradient-free attack)."""
    gaps = gradient_free_gaps(metrics)
    if not gaps:
        return ""
    shown = ", ".join(f"{100 * g:.2f}% of {s}" for s, g in gaps.items())
    masked = max(gaps.values()) > GRADIENT_FREE_GAP_LIMIT
    verdict = ("above the limit: the gradient attacks miss what a gradient-free one finds, so the gradients are "
               "likely masked and the figures above rest on the gradient-free attack (a longer run of it may "
               "lower them)" if masked
               else "within the limit: no sign of gradient masking")
    return (f"\nGradient-free check: the gradient-free attack (Square) broke {shown} images that every gradient "
            f"attack of its ball left standing; limit {100 * GRADIENT_FREE_GAP_LIMIT:g}%, {verdict}.\n")


def _predict_lines(suite: SuiteConfig, stochastic: bool) -> str:
    """How to predict as the reported figures did: a stochastic model's forward pass is one random draw."""
    if not stochastic:
        return "labels = model(images).argmax(1)  # images: (B, C, H, W) pixels in [0, 1]\n"
    n = suite.predict_samples
    return (f"from trainables.models import predict\n\n"
            f"labels = predict(model, images, samples={n})  # as every figure above: {n} draws averaged\n"
            f"# model(images) is ONE random draw: its accuracy is lower and two calls disagree on some images\n")


def model_card(
    model: RobustModel,
    spec: RunSpec,
    info: DatasetInfo,
    *,
    metrics: dict[str, Any],
    config: dict[str, Any],
    command: str,
    location: Path,
) -> str:
    """The README.md of an export: model, data, threat model, accuracies, hyperparameters, usage."""
    suite, threat = recorded_suite(metrics, spec), recorded_threat(metrics, spec)
    stochastic = is_stochastic(model)
    n_params = sum(p.numel() for p in model.parameters())
    model_settings = ", ".join(f"{k}={v}" for k, v in spec.model.settings().items())
    params = config.get("params") or {}
    param_rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in params.items())
    params_md = f"| hyperparameter | value |\n| --- | --- |\n{param_rows}" if params else "_None searched._"
    train = spec.train.to_dict() | {"mix": str(spec.train.mix)}
    train_md = ", ".join(f"{k}={v}" for k, v in train.items())
    prov = config.get("provenance", {})
    return f"""# {spec.model.name} on {info.name}

Adversarially robust classifier exported by robustune from the search space `{config.get("space")}`.

## Model

- Architecture: `{spec.model.name}` ({type(model).__name__}, {n_params:,} parameters, \
{"stochastic" if stochastic else "deterministic"} forward pass)
- Settings: {model_settings}
- Dataset: {info.name}, {info.channels}x{info.size}x{info.size} images, {info.classes} classes; inputs are \
pixels in [0, 1], normalisation (mean {info.mean}, std {info.std}) happens inside the model
- Weights: `model.safetensors`, sha256 `{config["sha256"]}`

## Threat model

{_threat_lines(suite, threat, stochastic)}
- Robust accuracy is the per-example worst case: an example counts only when it is classified correctly
  without attack and under every attack.

## Accuracy

{accuracy_table(metrics)}
{_gap_line(metrics)}{_convergence_line(metrics)}
## Hyperparameters

{params_md}

Training: {train_md}

The full run spec is in `config.json` under `spec`.

## Reproduce

```bash
{command}
```

Git revision `{prov.get("git_revision")}`, torch {prov.get("torch")}, seed {prov.get("seed")}, \
created {prov.get("created")}.

## Load

```python
from tuner.export import load_model

model = load_model("{location}")  # eval mode; refuses weights whose sha256 differs from config.json
{_predict_lines(suite, stochastic)}```

Re-evaluate under another suite: `python -m tuner.evaluate {location} --attacks {",".join(suite.names())} \
--epsilon {threat.eps:g}`.
"""
