"""The report's figures: true-class probability per attack, adversarial examples, natural-vs-robust Pareto front.

Every function takes plain arrays (no models, no attacks) and writes one PNG with matplotlib's Agg
backend, so figures are cheap to test and never depend on a display.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainables.atomic import atomic_write
from tuner.trials.pareto import ParetoPoint, pareto_front

__all__ = [
    "AdversarialExample",
    "plot_adversarial_examples",
    "plot_epoch_curves",
    "plot_pareto",
    "plot_true_class_probability",
]

CORRECT = "tab:green"
WRONG = "tab:red"


@dataclass(frozen=True)
class AdversarialExample:
    """One attacked image: the clean and adversarial pixels (H, W) or (H, W, C) in [0, 1] and the labels."""

    clean: np.ndarray
    adversarial: np.ndarray
    label: int
    clean_pred: int
    adv_pred: int


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    _pyplot().close(fig)
    return path


def plot_true_class_probability(
    probabilities: Mapping[str, Mapping[str, np.ndarray]], path: Path, *, title: str = "",
) -> Path:
    """Violin plots of the true-class probability per attack (clean first), one panel per model.

    ``probabilities`` maps model name -> attack name -> probabilities (N,) of the true class.
    """
    if not probabilities:
        raise ValueError("need at least one model's probabilities, got none")
    plt = _pyplot()
    names = list(probabilities)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        per_attack = probabilities[name]
        labels = list(per_attack)
        data = [np.clip(np.asarray(per_attack[a], dtype=float), 0.0, 1.0) for a in labels]
        parts = ax.violinplot(data, showmedians=True, widths=0.8)
        for body in parts["bodies"]:
            body.set_alpha(0.6)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("P(true class)")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title or "True-class probability, clean and under attack")
    fig.tight_layout()
    return _save(fig, path)


def _image(pixels: np.ndarray) -> tuple[np.ndarray, str | None]:
    img = np.clip(np.asarray(pixels, dtype=float), 0.0, 1.0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img, ("gray" if img.ndim == 2 else None)


def _class(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def plot_adversarial_examples(
    examples: Mapping[str, Sequence[AdversarialExample]], class_names: Sequence[str], path: Path, *,
    title: str = "",
) -> Path:
    """A grid: the clean images on top, one row of adversarial images per attack; green titles correct, red wrong."""
    if not examples or not any(examples.values()):
        raise ValueError(f"need adversarial examples for at least one attack, got {dict(examples)!r}")
    plt = _pyplot()
    attacks = list(examples)
    cols = max(len(v) for v in examples.values())
    first = examples[attacks[0]]
    fig, axes = plt.subplots(len(attacks) + 1, cols, figsize=(1.9 * cols, 2.1 * (len(attacks) + 1)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, ex in enumerate(first):
        img, cmap = _image(ex.clean)
        axes[0, j].imshow(img, cmap=cmap, vmin=0, vmax=1)
        ok = ex.clean_pred == ex.label
        axes[0, j].set_title(f"clean\ntrue {_class(class_names, ex.label)}\npred {_class(class_names, ex.clean_pred)}",
                             fontsize=7, color=CORRECT if ok else WRONG)
    for i, attack in enumerate(attacks, start=1):
        for j, ex in enumerate(examples[attack]):
            img, cmap = _image(ex.adversarial)
            axes[i, j].imshow(img, cmap=cmap, vmin=0, vmax=1)
            ok = ex.adv_pred == ex.label
            axes[i, j].set_title(f"{attack}\ntrue {_class(class_names, ex.label)}\n"
                                 f"pred {_class(class_names, ex.adv_pred)}", fontsize=7, color=CORRECT if ok else WRONG)
    fig.suptitle(title or "Adversarial examples (green: correct, red: wrong)")
    fig.tight_layout()
    return _save(fig, path)


def plot_pareto(
    points: Sequence[ParetoPoint], path: Path, *, marked: str | None = None, title: str = "",
    others: Sequence[ParetoPoint] = (), front: Collection[str] | None = None,
) -> Path:
    """Natural vs robust accuracy (percent) of finished trials, the Pareto front drawn, trial ``marked`` starred.

    ``others`` (trials stopped early, at their last per-epoch scores) are drawn hollow, apart from the front.
    ``front``: the front's trial ids where the caller drew it (a Pareto search's, over exportable trials
    only; the legend then names it the Pareto front); default: :func:`pareto_front` of ``points``, shown
    as the non-dominated trials of a single-objective search.
    """
    if not points:
        raise ValueError("need at least one finished trial with natural and robust accuracy, got none")
    bad = [p for p in points if not (0 <= p.natural <= 1 and 0 <= p.robust <= 1)]
    if bad:
        raise ValueError(f"accuracies must lie in [0, 1], got {bad[:3]}")
    plt = _pyplot()
    drawn = pareto_front(points) if front is None else \
        sorted((p for p in points if p.trial_id in front), key=lambda p: (p.natural, -p.robust))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter([100 * p.natural for p in points], [100 * p.robust for p in points], s=22, color="tab:gray",
               alpha=0.7, label=f"finished trials ({len(points)})")
    ax.plot([100 * p.natural for p in drawn], [100 * p.robust for p in drawn], "-o", color="tab:blue", ms=6,
            label=f"{'Pareto front' if front is not None else 'non-dominated trials'} ({len(drawn)})")
    if others:
        ax.scatter([100 * p.natural for p in others], [100 * p.robust for p in others], s=22, facecolors="none",
                   edgecolors="tab:gray", label=f"stopped early, per-epoch suite ({len(others)})")
    chosen = next((p for p in points if p.trial_id == marked), None)
    if chosen is not None:
        ax.scatter([100 * chosen.natural], [100 * chosen.robust], marker="*", s=260, color="tab:orange",
                   edgecolor="black", zorder=5, label=f"exported: {chosen.trial_id}")
    ax.set_xlabel("natural accuracy (%)")
    ax.set_ylabel("robust accuracy, worst case (%)")
    ax.set_title(title or "Natural vs robust accuracy over the search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def plot_epoch_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]], path: Path, *, marked: str | None = None,
    title: str = "",
) -> Path:
    """Validation natural and robust accuracy per epoch of every trial (two panels), trial ``marked`` in bold.

    ``histories`` maps a trial id to its per-epoch rows (``epoch``, ``natural_acc``, ``robust_acc``).
    """
    rows = {t: [r for r in h if "epoch" in r] for t, h in histories.items()}
    if not any(rows.values()):
        raise ValueError("need at least one trial with per-epoch accuracies, got none")
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for ax, key, label in zip(axes, ("natural_acc", "robust_acc"), ("natural", "robust (per-epoch suite)"),
                              strict=True):
        for trial_id, history in rows.items():
            points = [(r["epoch"], 100 * r[key]) for r in history if key in r and math.isfinite(r[key])]
            if not points:
                continue
            chosen = trial_id == marked
            ax.plot(*zip(*points, strict=True), "-o", ms=3, lw=2.4 if chosen else 1.0, alpha=1.0 if chosen else 0.6,
                    label=f"{trial_id} (exported)" if chosen else trial_id, zorder=3 if chosen else 2)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"validation {label} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best", ncol=2 if len(rows) > 6 else 1)  # every curve named
    fig.suptitle(title or "Per-epoch validation accuracy of every trial")
    fig.tight_layout()
    return _save(fig, path)
