"""Pre-activation WideResNet (Zagoruyko & Komodakis 2016) with pluggable activation and PNI."""

from __future__ import annotations

from torch import Tensor, nn

from ..data.info import DatasetInfo
from .base import Normalize, RobustModel
from .config import ModelConfig
from .registry import ActivationFactory, NoiseFactory, register_architecture

__all__ = ["WideBlock", "WideResNet"]


class WideBlock(nn.Module):
    """Pre-activation basic block: bn-act-conv3x3-[noise]-bn-act-conv3x3-[noise] plus shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, make_activation: ActivationFactory,
                 make_noise: NoiseFactory = nn.Identity) -> None:
        super().__init__()
        self.bn1, self.act1 = nn.BatchNorm2d(in_ch), make_activation(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.noise1 = make_noise()
        self.bn2, self.act2 = nn.BatchNorm2d(out_ch), make_activation(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.noise2 = make_noise()
        self.shortcut = (None if in_ch == out_ch and stride == 1
                         else nn.Conv2d(in_ch, out_ch, 1, stride, 0, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        pre = self.act1(self.bn1(x))  # (B, in, H, W)
        out = self.noise1(self.conv1(pre))  # (B, out, H/s, W/s)
        out = self.noise2(self.conv2(self.act2(self.bn2(out))))  # (B, out, H/s, W/s)
        # As in the reference code, a projection shortcut sees the pre-activated input.
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(RobustModel):
    """WRN-depth-widen for 28x28 or 32x32 inputs; stages 16, 16w, 32w, 64w with strides 1, 2, 2."""

    def __init__(self, depth: int, widen: int, in_channels: int, classes: int,
                 mean: tuple[float, ...], std: tuple[float, ...],
                 make_activation: ActivationFactory = lambda channels: nn.ReLU(),
                 make_noise: NoiseFactory = nn.Identity) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth=}")
        if widen < 1:
            raise ValueError(f"widen must be >= 1, got {widen=}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.normalize = Normalize(mean, std)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        stages = []
        for i, stride in enumerate((1, 2, 2)):
            ins = [widths[i]] + [widths[i + 1]] * (n - 1)
            strides = [stride] + [1] * (n - 1)
            blocks = [WideBlock(c, widths[i + 1], s, make_activation, make_noise)
                      for c, s in zip(ins, strides, strict=True)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.bn, self.act = nn.BatchNorm2d(widths[3]), make_activation(widths[3])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.stages(self.stem(self.normalize(x)))  # (B, 64w, H/4, W/4)
        out = self.pool(self.act(self.bn(out))).flatten(1)  # (B, 64w)
        return self.fc(out)  # (B, classes)


@register_architecture("wrn")
def wide_resnet(cfg: ModelConfig, info: DatasetInfo, make_activation: ActivationFactory,
                make_noise: NoiseFactory) -> WideResNet:
    """WRN-``depth``-``widen``; PNI noise after each block's convolutions, LWTA wherever ReLU would be."""
    if cfg.lwta_layers != "all":
        raise ValueError(f"lwta_layers={cfg.lwta_layers!r} needs a dense hidden layer, which the WideResNet lacks "
                         "(the small CNN has one)")
    return WideResNet(cfg.depth, cfg.widen, info.channels, info.classes, info.mean, info.std,
                      make_activation=make_activation, make_noise=make_noise)
