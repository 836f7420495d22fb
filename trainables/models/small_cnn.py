"""The paper's small CNN: conv(32, 5x5)-act-pool-conv(64)-act-pool-fc(hidden)-act-fc(classes), resizable."""

from __future__ import annotations

from torch import Tensor, nn

from ..data.info import DatasetInfo
from .base import Normalize, RobustModel
from .config import ModelConfig
from .registry import ActivationFactory, NoiseFactory, register_architecture

__all__ = ["SmallCNN"]


class SmallCNN(RobustModel):
    """Two conv layers (width, 2 * width channels; the paper: 5x5, 32), 2x2 max-pooling, a dense layer, a classifier.

    ``make_noise`` (PNI) is placed after the first pool, after the second pool and after flatten.
    ``pool_first`` swaps each pool with the activation before it: max-pooling commutes with ReLU, so
    a ReLU model is the same function, while an LWTA model runs its competitions among the pooled
    maxima, on a quarter of the positions (the LWTA step then costs ~1.2x a ReLU step on CPU, not 2x).
    ``dense_only`` puts ``make_activation`` in the dense layer alone and ReLU after the convolutions
    (``ModelConfig.lwta_layers="dense"``).
    """

    def __init__(self, in_channels: int, size: int, classes: int, hidden: int,
                 mean: tuple[float, ...], std: tuple[float, ...],
                 make_activation: ActivationFactory = lambda channels: nn.ReLU(),
                 make_noise: NoiseFactory = nn.Identity, width: int = 32, kernel: int = 5,
                 pool_first: bool = False, dense_only: bool = False) -> None:
        super().__init__()
        if size < 4:
            raise ValueError(f"image size must be >= 4, got {size=}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden=}")
        pooled = size // 2 // 2
        conv_activation = _relu if dense_only else make_activation
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            *_conv_stage(nn.Conv2d(in_channels, width, kernel, padding=kernel // 2), conv_activation(width),
                         pool_first), make_noise(),
            *_conv_stage(nn.Conv2d(width, 2 * width, kernel, padding=kernel // 2), conv_activation(2 * width),
                         pool_first), make_noise(),
        )
        self.flatten_noise = make_noise()
        self.hidden = nn.Linear(2 * width * pooled * pooled, hidden)
        self.act = make_activation(hidden)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.features(self.normalize(x))  # (B, 2 * width, H/4, W/4)
        out = self.flatten_noise(out.flatten(1))  # (B, 2 * width * H/4 * W/4)
        return self.fc(self.act(self.hidden(out)))  # (B, classes)


def _relu(channels: int) -> nn.Module:
    return nn.ReLU()


def _conv_stage(conv: nn.Conv2d, activation: nn.Module, pool_first: bool) -> tuple[nn.Module, ...]:
    """conv-act-pool (the paper's order) or conv-pool-act (the same for ReLU, a quarter of the activations)."""
    pool = nn.MaxPool2d(2)
    return (conv, pool, activation) if pool_first else (conv, activation, pool)


@register_architecture("cnn")
def small_cnn(cfg: ModelConfig, info: DatasetInfo, make_activation: ActivationFactory,
              make_noise: NoiseFactory) -> SmallCNN:
    """The small CNN at ``cnn_width`` / ``cnn_kernel``, ``hidden_blocks * competitors`` hidden units, LWTA layers."""
    return SmallCNN(info.channels, info.size, info.classes, cfg.hidden_blocks * cfg.competitors, info.mean,
                    info.std, make_activation=make_activation, make_noise=make_noise, width=cfg.cnn_width,
                    kernel=cfg.cnn_kernel, pool_first=cfg.cnn_pool_first, dense_only=cfg.lwta_layers == "dense")
