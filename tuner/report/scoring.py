"""Score a report's candidates: per-attack and worst-case test accuracy, certified accuracy, figure data.

The adversarial examples the figures show are the ones the suite's evaluation found: nothing is
attacked twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import norm
from torch import Tensor

from trainables.evaluation import ProgressFn, RobustResult, evaluate_robustness
from trainables.models import RobustModel, predict_proba
from trainables.rng import private_rng
from trainables.smoothing import SmoothingConfig, certified_accuracy

from . import figures
from .candidates import Candidate
from .config import ReportConfig

__all__ = ["FigureData", "ReportRow", "check_rows", "evaluate_candidate", "max_certified_radius"]


@dataclass(frozen=True)
class ReportRow:
    """One table row; accuracies in percent (``attacks`` per attack of the suite, in its order).

    ``certified`` maps an L2 radius to percent (smoothing models only).
    """

    name: str
    model: str
    sigma: float
    examples: int
    natural: float
    attacks: dict[str, float]
    worst: float
    certified: dict[float, float]
    seconds: float  # training (recipes) + scoring and certification on this machine
    source: str

    def accuracies(self) -> dict[str, float]:
        """natural, each attack, worst, in table order."""
        return {"natural": self.natural, **self.attacks, "worst": self.worst}


@dataclass
class FigureData:
    """What the figures need, gathered while each model is scored."""

    probabilities: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    examples: dict[str, list[figures.AdversarialExample]] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    first_model: str = ""


def max_certified_radius(sigma: float, n: int, alpha: float) -> float:
    """Largest L2 radius ``n`` votes can certify at level ``alpha``: sigma * Phi^-1(alpha ** (1 / n))."""
    return float(sigma * norm.ppf(alpha ** (1.0 / n)))


def _percent(flags: Tensor) -> float:
    return 100.0 * flags.float().mean().item()


def _proba(model: RobustModel, x: Tensor, samples: int, batch: int) -> Tensor:
    """Class probabilities (N, K), on a fixed private stream."""
    with private_rng(0, x.device):
        return torch.cat([predict_proba(model, x[i:i + batch], samples) for i in range(0, len(x), batch)])


def _gather_figures(cand: Candidate, result: RobustResult, cfg: ReportConfig, device: torch.device,
                    gathered: FigureData) -> None:
    """True-class probabilities clean and under each attack; the adversarial examples of the first model."""
    assert result.adversarial is not None
    k = min(cfg.figure_limit, result.n)
    suite = cfg.suite
    x, y = cand.test.head(k).floats().to(device), cand.test.head(k).labels.to(device)  # (k, C, H, W), (k,)
    inputs = {"clean": x} | {name: adv[:k].to(device) for name, adv in result.adversarial.items()}
    probs = {name: _proba(cand.model, xs, suite.predict_samples, suite.batch_size) for name, xs in inputs.items()}
    gathered.probabilities[cand.name] = {name: p.gather(1, y.view(-1, 1)).squeeze(1).cpu().numpy()
                                         for name, p in probs.items()}
    if gathered.examples:
        return
    shown = min(cfg.examples, k)
    clean_pred = probs["clean"][:shown].argmax(1).tolist()
    for name in result.adversarial:
        adv_pred = probs[name][:shown].argmax(1).tolist()
        gathered.examples[name] = [
            figures.AdversarialExample(clean=x[j].permute(1, 2, 0).cpu().numpy(),
                                       adversarial=inputs[name][j].permute(1, 2, 0).cpu().numpy(),
                                       label=int(y[j]), clean_pred=clean_pred[j], adv_pred=adv_pred[j])
            for j in range(shown)]
    gathered.class_names = cand.info.class_names
    gathered.first_model = cand.name


def evaluate_candidate(cand: Candidate, cfg: ReportConfig, device: torch.device,
                       gathered: FigureData | None = None, progress: ProgressFn | None = None) -> ReportRow:
    """Natural, per-attack and worst-case test accuracy (percent), certified accuracy when smoothed.

    With ``gathered``, the figures' data is collected from the same evaluation; ``progress`` hears of
    every batch of every attack.
    """
    began = time.perf_counter()
    model = cand.model
    result = evaluate_robustness(model, cand.test.floats(), cand.test.labels, cfg.suite, cfg.threat, device=device,
                                 keep_adversarial=gathered is not None, progress=progress)
    certified: dict[float, float] = {}
    sigma = float(cand.spec.model.input_noise)
    if sigma > 0:
        head = cand.test.head(cfg.certify_limit)
        smoothing = SmoothingConfig(sigma=sigma, n0=cfg.certify_n0, n=cfg.certify_n, alpha=cfg.certify_alpha,
                                    batch_size=max(cfg.certify_n0, min(cfg.certify_n, 1000)))
        fractions = certified_accuracy(model, head.floats().to(device), head.labels, smoothing, cfg.radii)
        certified = {r: 100.0 * v for r, v in fractions.items()}
    seconds = cand.train_seconds + time.perf_counter() - began
    if gathered is not None:
        _gather_figures(cand, result, cfg, device, gathered)
    return ReportRow(
        name=cand.name, model=cand.spec.model.name, sigma=sigma, examples=result.n, natural=_percent(result.natural),
        attacks={name: _percent(flags) for name, flags in result.per_attack.items()}, worst=_percent(result.worst),
        certified=certified, seconds=seconds, source=cand.source,
    )


def check_rows(rows: Sequence[ReportRow]) -> None:
    """Raise AssertionError unless every accuracy lies in [0, 100] and no robust one exceeds natural."""
    for row in rows:
        values = row.accuracies() | {f"certified@{r:g}": v for r, v in row.certified.items()}
        outside = {k: v for k, v in values.items() if not 0.0 <= v <= 100.0}
        if outside:
            raise AssertionError(f"{row.name}: accuracies outside [0, 100]: {outside}")
        above = {k: v for k, v in (row.attacks | {"worst": row.worst}).items() if v > row.natural + 1e-9}
        if above:
            raise AssertionError(f"{row.name}: robust accuracy above natural {row.natural}: {above}")
        if row.attacks and row.worst > min(row.attacks.values()) + 1e-9:
            raise AssertionError(f"{row.name}: worst case {row.worst} above a single attack's accuracy")
