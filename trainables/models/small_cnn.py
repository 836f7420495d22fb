"""The seed's small CNN: conv(32, 5x5)-act-pool-conv(64)-act-pool-fc(hidden)-act-fc(classes), resizable."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ..data.info import DatasetInfo
from .base import Normalize, RobustModel
from .config import ModelConfig
from .pni import NoiseInjection
from .registry import ActivationFactory, activation_factory, register_model

__all__ = ["SmallCNN"]

NoiseFactory = Callable[[], nn.Module]


def _relu(channels: int) -> nn.Module:
    return nn.ReLU()


class SmallCNN(RobustModel):
    """Two conv layers (width, 2 * width channels; the seed: 5x5, 32), 2x2 max-pooling, a dense layer, a classifier.

    ``make_noise`` (PNI) is placed after the first pool, after the second pool and after flatten.
    """

    def __init__(self, in_channels: int, size: int, classes: int, hidden: int,
                 mean: tuple[float, ...], std: tuple[float, ...],
                 make_activation: ActivationFactory = _relu, make_noise: NoiseFactory | None = None,
                 width: int = 32, kernel: int = 5) -> None:
        super().__init__()
        if size < 4:
            raise ValueError(f"image size must be >= 4, got {size=}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden=}")

        def noise() -> nn.Module:
            return make_noise() if make_noise else nn.Identity()

        pooled = size // 2 // 2
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel, padding=kernel // 2), make_activation(width), nn.MaxPool2d(2),
            noise(),
            nn.Conv2d(width, 2 * width, kernel, padding=kernel // 2), make_activation(2 * width), nn.MaxPool2d(2),
            noise(),
        )
        self.flatten_noise = noise()
        self.hidden = nn.Linear(2 * width * pooled * pooled, hidden)
        self.act = make_activation(hidden)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.features(self.normalize(x))  # (B, 2 * width, H/4, W/4)
        out = self.flatten_noise(out.flatten(1))  # (B, 2 * width * H/4 * W/4)
        return self.fc(self.act(self.hidden(out)))  # (B, classes)


def _build(cfg: ModelConfig, info: DatasetInfo, kind: str, pni: bool) -> SmallCNN:
    return SmallCNN(info.channels, info.size, info.classes, cfg.hidden_blocks * cfg.competitors,
                    info.mean, info.std, make_activation=activation_factory(cfg, kind),
                    make_noise=(lambda: NoiseInjection(cfg.pni_init)) if pni else None,
                    width=cfg.cnn_width, kernel=cfg.cnn_kernel)


@register_model("cnn")
def cnn(cfg: ModelConfig, info: DatasetInfo) -> SmallCNN:
    """Plain ReLU small CNN."""
    return _build(cfg, info, "relu", pni=False)


@register_model("lwta-cnn")
def lwta_cnn(cfg: ModelConfig, info: DatasetInfo) -> SmallCNN:
    """Small CNN with stochastic LWTA (optionally IBP) after both convs and the dense layer."""
    return _build(cfg, info, "lwta", pni=False)


@register_model("pni-cnn")
def pni_cnn(cfg: ModelConfig, info: DatasetInfo) -> SmallCNN:
    """ReLU small CNN with PNI after each pool and after flatten."""
    return _build(cfg, info, "relu", pni=True)
