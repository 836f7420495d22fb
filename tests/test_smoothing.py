"""Randomized smoothing: the noisy wrapper, Monte Carlo prediction and the L2 certificate (fast, CPU)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import binom, norm
from torch import Tensor, nn

from trainables.data.sources import DATASETS
from trainables.models import ModelConfig, build_model, is_stochastic
from trainables.smoothing import (
    ABSTAIN,
    GaussianInput,
    SmoothedModel,
    SmoothingConfig,
    certified_accuracy,
    certified_radius,
    certify,
    predict,
    sample_counts,
)

FMNIST = DATASETS["fashion-mnist"][0]
FAST = SmoothingConfig(sigma=0.25, n0=20, n=200, alpha=0.001, batch_size=100)


class RandomLogits(nn.Module):
    """Ignores its input: a uniformly random class per example."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.randn(x.shape[0], 10)


class MeanThreshold(nn.Module):
    """Deterministic: class 3 when the mean pixel is above 0.5, else class 0."""

    def forward(self, x: Tensor) -> Tensor:
        bright = (x.flatten(1).mean(1) > 0.5).float()  # (B,)
        logits = torch.zeros(x.shape[0], 10)
        logits[:, 3] = 10 * bright
        logits[:, 0] = 10 * (1 - bright)
        return logits


def _lower_bound_by_inversion(count: int, n: int, alpha: float) -> float:
    """Clopper-Pearson lower bound solved from its definition: P(X >= count | p) = alpha."""
    return brentq(lambda p: binom.sf(count - 1, n, p) - alpha, 1e-12, 1 - 1e-12, xtol=1e-14)


def test_random_classifier_abstains_with_zero_radius() -> None:
    x = torch.rand(1, 28, 28)  # pure noise
    assert certify(RandomLogits(), x, FAST) == (ABSTAIN, 0.0)
    assert predict(RandomLogits(), x, FAST) == ABSTAIN


def test_confident_deterministic_classifier_certifies_the_right_label() -> None:
    label, radius = certify(MeanThreshold(), torch.ones(1, 28, 28), FAST)
    assert label == 3
    # every vote for class 3: the Clopper-Pearson bound is alpha ** (1 / n)
    assert radius == pytest.approx(FAST.sigma * norm.ppf(FAST.alpha ** (1 / FAST.n)), rel=1e-6)
    assert radius > 0
    assert certify(MeanThreshold(), torch.zeros(1, 28, 28), FAST)[0] == 0
    assert predict(MeanThreshold(), torch.ones(1, 28, 28), FAST) == 3


def test_certified_radius_matches_the_formula_on_hand_made_counts() -> None:
    p_lower = _lower_bound_by_inversion(990, 1000, 0.001)
    assert certified_radius(990, 1000, 0.001, 0.5) == pytest.approx(0.5 * norm.ppf(p_lower), rel=1e-6)
    assert certified_radius(500, 1000, 0.001, 0.5) == 0.0  # bound below 0.5
    assert certified_radius(0, 1000, 0.001, 0.5) == 0.0
    assert certified_radius(990, 1000, 0.001, 1.0) == pytest.approx(2 * certified_radius(990, 1000, 0.001, 0.5))
    assert certified_radius(999, 1000, 0.001, 0.5) > certified_radius(990, 1000, 0.001, 0.5) > 0


def test_sample_counts_use_a_smoothed_models_own_base_and_sigma() -> None:
    x = torch.ones(1, 28, 28)
    counts = sample_counts(SmoothedModel(MeanThreshold(), sigma=0.01), x, sigma=100.0, num=150, batch_size=64)
    assert counts.dtype == torch.long and counts.shape == (10,)
    assert int(counts[3]) == 150  # sigma 100 would scatter the votes; the wrapper's 0.01 does not


def test_certify_is_reproducible_under_its_seed() -> None:
    x = torch.full((1, 28, 28), 0.52)  # close to the threshold: the votes depend on the noise
    assert certify(MeanThreshold(), x, FAST) == certify(MeanThreshold(), x, FAST)


def test_smoothed_model_is_stochastic_and_noisy_in_eval(device) -> None:
    model = build_model(ModelConfig(name="cnn", hidden_blocks=4, input_noise=0.25), FMNIST).to(device).eval()
    assert isinstance(model, SmoothedModel) and model.sigma == 0.25
    assert is_stochastic(model) and model.stochastic
    x = torch.rand(3, 1, 28, 28, device=device)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.shape == (3, 10)
    assert not torch.allclose(first, second)
    assert float(model.kl()) == 0.0
    assert all(k.startswith("base.") for k in model.state_dict())
    assert not isinstance(build_model(ModelConfig(name="cnn", hidden_blocks=4), FMNIST), SmoothedModel)


def test_certified_accuracy_is_a_non_increasing_fraction() -> None:
    images = torch.stack([torch.ones(1, 28, 28), torch.ones(1, 28, 28), torch.zeros(1, 28, 28),
                          torch.ones(1, 28, 28), torch.full((1, 28, 28), 0.5)])  # (5, 1, 28, 28)
    labels = torch.tensor([3, 3, 0, 1, 3])  # the fourth is wrong, the fifth sits on the boundary
    radii = [0.0, 0.25, 0.5, 1.0, 2.0]
    acc = certified_accuracy(MeanThreshold(), images, labels, FAST, radii)
    values = [acc[r] for r in radii]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    certified = FAST.sigma * norm.ppf(FAST.alpha ** (1 / FAST.n))  # ~0.46
    assert acc[0.0] == acc[0.25] == pytest.approx(3 / 5) and certified < 0.5
    assert acc[0.5] == acc[2.0] == 0.0


@pytest.mark.parametrize("make", [
    lambda: SmoothingConfig(sigma=-0.1),
    lambda: SmoothingConfig(sigma=0.25, alpha=1.5),
    lambda: SmoothingConfig(sigma=0.25, n=0),
    lambda: GaussianInput(-0.1),
    lambda: SmoothedModel(MeanThreshold(), sigma=-1.0),
    lambda: ModelConfig(name="cnn", input_noise=-0.1),
    lambda: ModelConfig(name="cnn", input_noise=math.nan),
    lambda: certified_radius(990, 1000, 0.001, -0.5),
    lambda: certified_radius(1001, 1000, 0.001, 0.5),
    lambda: sample_counts(MeanThreshold(), torch.ones(1, 28, 28), sigma=-0.1, num=10),
    lambda: certified_accuracy(MeanThreshold(), torch.ones(2, 1, 28, 28), torch.tensor([3, 3]), FAST, [-1.0]),
])
def test_bad_settings_raise_value_error(make) -> None:
    with pytest.raises(ValueError):
        make()
