"""Monte Carlo prediction and L2 certification of a Gaussian-smoothed classifier.

The smoothed classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c) of a base classifier f is
certified robust within the L2 radius sigma * Phi^-1(pA_lower) (Cohen, Rosenfeld & Kolter, ICML 2019,
Theorem 1 and the PREDICT / CERTIFY procedures of their Section 3.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from scipy.stats import beta, binomtest, norm
from torch import Tensor, nn

from trainables.models import SmoothedModel, evaluating, model_device
from trainables.rng import private_rng

__all__ = [
    "ABSTAIN",
    "SmoothingConfig",
    "certified_accuracy",
    "certified_radius",
    "certify",
    "predict",
    "sample_counts",
]

ABSTAIN = -1  # the label returned when the smoothed classifier abstains


@dataclass(frozen=True)
class SmoothingConfig:
    """Noise level and Monte Carlo budget of prediction and certification (Cohen et al.'s defaults)."""

    sigma: float
    n0: int = 100  # selection samples (guess the top class)
    n: int = 1000  # estimation samples (lower-bound its probability)
    alpha: float = 0.001  # failure probability of the certificate / prediction
    batch_size: int = 500  # noisy copies per forward pass
    seed: int | None = 0  # seeds the noise on a private RNG stream; None uses the global RNG

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be finite and > 0, got {self.sigma=}")
        for name in ("n0", "n", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha=}")


def _unwrap(model: nn.Module, sigma: float) -> tuple[nn.Module, float]:
    """The base classifier and the noise level: a SmoothedModel brings its own base and sigma."""
    if isinstance(model, SmoothedModel):
        return model.base, model.sigma
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be finite and > 0, got {sigma=}")
    return model, float(sigma)


@torch.no_grad()
def sample_counts(base_model: nn.Module, x: Tensor, sigma: float, num: int, batch_size: int = 500) -> Tensor:
    """How often the base classifier predicts each class under ``num`` draws of N(0, sigma^2) noise on x (C, H, W).

    Returns a LongTensor (classes,) on the CPU. Given a :class:`SmoothedModel`, its ``base`` and its own
    ``sigma`` are used (the argument ``sigma`` is then ignored). The model runs in eval mode.
    """
    base, sigma = _unwrap(base_model, sigma)
    if x.dim() != 3:
        raise ValueError(f"x must be one image (C, H, W), got shape {tuple(x.shape)}")
    if num < 1 or batch_size < 1:
        raise ValueError(f"num and batch_size must be >= 1, got {num=}, {batch_size=}")
    device = model_device(base)
    x = (x.float() / 255 if x.dtype == torch.uint8 else x.float()).to(device)
    counts: Tensor | None = None
    with evaluating(base):
        for start in range(0, num, batch_size):
            copies = min(batch_size, num - start)
            batch = x.unsqueeze(0).expand(copies, *x.shape)  # (b, C, H, W)
            logits = base(batch + sigma * torch.randn_like(batch))  # (b, classes)
            votes = torch.bincount(logits.argmax(1).cpu(), minlength=logits.shape[1])  # (classes,)
            counts = votes if counts is None else counts + votes
    assert counts is not None
    return counts.long()


def _lower_bound(count: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion."""
    return 0.0 if count == 0 else float(beta.ppf(alpha, count, n - count + 1))


def certified_radius(count_a: int, n: int, alpha: float, sigma: float) -> float:
    """L2 radius sigma * Phi^-1(pA_lower) certified by ``count_a`` of ``n`` votes; 0.0 when pA_lower < 0.5."""
    if n < 1 or not 0 <= count_a <= n:
        raise ValueError(f"need n >= 1 and 0 <= count_a <= n, got {count_a=}, {n=}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha=}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be finite and > 0, got {sigma=}")
    p_lower = _lower_bound(int(count_a), int(n), alpha)
    return 0.0 if p_lower < 0.5 else float(sigma * norm.ppf(p_lower))


def _predict(model: nn.Module, x: Tensor, cfg: SmoothingConfig) -> int:
    counts = sample_counts(model, x, cfg.sigma, cfg.n, cfg.batch_size)  # (classes,)
    top2 = counts.topk(min(2, counts.numel()))
    n_a = int(top2.values[0])
    n_b = int(top2.values[1]) if counts.numel() > 1 else 0
    if binomtest(n_a, n_a + n_b, 0.5).pvalue > cfg.alpha:
        return ABSTAIN
    return int(top2.indices[0])


def _certify(model: nn.Module, x: Tensor, cfg: SmoothingConfig) -> tuple[int, float]:
    _, sigma = _unwrap(model, cfg.sigma)
    selection = sample_counts(model, x, sigma, cfg.n0, cfg.batch_size)  # (classes,)
    label = int(selection.argmax())
    estimation = sample_counts(model, x, sigma, cfg.n, cfg.batch_size)  # independent draws
    n_a = int(estimation[label])
    if _lower_bound(n_a, cfg.n, cfg.alpha) < 0.5:
        return ABSTAIN, 0.0
    return label, certified_radius(n_a, cfg.n, cfg.alpha, sigma)


def predict(base: nn.Module, x: Tensor, cfg: SmoothingConfig) -> int:
    """The smoothed classifier's label for one image (C, H, W), or -1 (abstain) when the top two are not separable."""
    with private_rng(cfg.seed, model_device(base)):
        return _predict(base, x, cfg)


def certify(base: nn.Module, x: Tensor, cfg: SmoothingConfig) -> tuple[int, float]:
    """(label, L2 radius) certified for one image (C, H, W) with probability 1 - alpha; (-1, 0.0) abstains."""
    with private_rng(cfg.seed, model_device(base)):
        return _certify(base, x, cfg)


def certified_accuracy(
    base: nn.Module, images: Tensor, labels: Tensor, cfg: SmoothingConfig, radii: Sequence[float],
) -> dict[float, float]:
    """Per radius r, the fraction of images (N, C, H, W) certified with the right label at radius >= r."""
    if images.dim() != 4 or images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"need a non-empty batch (N, C, H, W) with one label per image, got "
                         f"{tuple(images.shape)=}, {tuple(labels.shape)=}")
    bad = [r for r in radii if not r >= 0]
    if bad:
        raise ValueError(f"radii must be >= 0, got {bad}")
    with private_rng(cfg.seed, model_device(base)):
        results = [_certify(base, img, cfg) for img in images]
    n = len(results)
    hits = [(label == int(y), radius) for (label, radius), y in zip(results, labels.tolist(), strict=True)]
    return {float(r): sum(ok and radius >= r for ok, radius in hits) / n for r in radii}
