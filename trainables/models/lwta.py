"""Stochastic Local Winner-Takes-All activation (Panousis et al. 2021).

Follows "Stochastic Local Winner-Takes-All Networks Enable Profound Adversarial Robustness"
(Panousis, Chatzis, Alexos, Theodoridis 2021): channels form blocks of U competitors; in each block
one winner, drawn from Categorical(softmax(h)), passes its raw linear value (possibly negative, no
ReLU) and the losers output 0. Training uses the Gumbel-softmax relaxation. The KL of the winner
indicators to a uniform prior, used in the paper, is omitted; the optional IBP utility
indicators (:mod:`.ibp`), which scale h before the competition, add their own KL.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import StochasticModule
from .fused import fused_enabled, relaxed_pair
from .ibp import IBPIndicators, stacked_kl

__all__ = ["LWTA"]

_INFERENCE = ("sample", "argmax")


class LWTA(StochasticModule):
    """Stochastic LWTA over (B, C) or (B, C, H, W); channels kU..kU+U-1 compete (per pixel)."""

    def __init__(self, channels: int, competitors: int = 2, temperature: float = 0.67,
                 inference: str = "sample", ibp: bool = False, ibp_alpha: float = 3.0,
                 ibp_temperature: float = 0.67) -> None:
        super().__init__()
        if competitors < 2:
            raise ValueError(f"competitors must be >= 2, got {competitors=}")
        if channels < 1 or channels % competitors:
            raise ValueError(f"channels must be a positive multiple of competitors, got {channels=}, "
                             f"{competitors=}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature=}")
        if inference not in _INFERENCE:
            raise ValueError(f"inference must be one of {_INFERENCE}, got {inference=}")
        self.channels, self.competitors = channels, competitors
        self.temperature, self.inference = temperature, inference
        self.indicators = (IBPIndicators(channels, ibp_alpha, ibp_temperature, group=competitors)
                           if ibp else None)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, competitors={self.competitors}, "
                f"temperature={self.temperature}, inference={self.inference!r}")

    def forward(self, h: Tensor) -> Tensor:
        if h.dim() not in (2, 4) or h.shape[1] != self.channels:
            raise ValueError(f"expected (B, {self.channels}) or (B, {self.channels}, H, W), "
                             f"got {tuple(h.shape)}")
        batch, spatial = h.shape[0], h.shape[2:]
        z = None if self.indicators is None else self.indicators(batch, surrogate=self.surrogate)  # (B, C)
        if self.competitors == 2 and self.training and not self.surrogate and fused_enabled():
            return relaxed_pair(h, z, self.temperature)  # _pair's training path, fused
        if z is not None:  # in the activations' dtype: under bf16 autocast a float32 z would promote h
            h = h * z.to(h.dtype).view(batch, self.channels, *([1] * len(spatial)))
        if self.competitors == 2:
            return self._pair(h)
        k, u = self.channels // self.competitors, self.competitors
        blocks = h.view(batch, k, u, *spatial)  # (B, K, U, ...)
        return (blocks * self._mask(blocks)).view_as(h)

    def _pair(self, h: Tensor) -> Tensor:
        """U = 2: :meth:`_mask`'s competition through the pair's difference, one logistic draw per block.

        softmax((a + g_a, b + g_b) / tau)[0] = sigmoid((a - b + g_a - g_b) / tau), and the difference
        of two Gumbel draws is a Logistic(0, 1) draw: the same distribution with half the noise, no
        softmax over the strided U dim and fewer passes over memory (1.7x faster on CPU). Pairs are
        channel slices of ``h`` (B, C, ...), written back into a tensor of ``h``'s memory layout (a
        channels-last model stays channels-last). In training mode :func:`.fused.relaxed_pair` runs
        instead (the indicators' scaling included); this is its reference, used inside
        :func:`.fused.reference_kernels`.
        """
        a, b = h[:, 0::2], h[:, 1::2]  # (B, K, ...) each
        diff = a - b
        if self.training and not self.surrogate:
            first = torch.sigmoid((diff + _logistic_like(diff)) / self.temperature)
        else:
            scores = diff if self.inference == "argmax" else diff + _logistic_like(diff)
            first = (scores > 0).to(diff.dtype)
            if self.surrogate:
                soft = torch.sigmoid(diff)  # E[xi_a] under Categorical(softmax(a, b))
                first = first + (soft - soft.detach())
        out = torch.empty_like(h)  # (B, C, ...), h's layout
        out[:, 0::2] = a * first
        out[:, 1::2] = b * (1 - first)
        return out

    def _mask(self, blocks: Tensor) -> Tensor:
        """Winner mask over dim 2 of (B, K, U, ...): relaxed while training, one-hot otherwise."""
        if self.training and not self.surrogate:
            return F.softmax((blocks + _gumbel_like(blocks)) / self.temperature, dim=2)
        scores = blocks if self.inference == "argmax" else blocks + _gumbel_like(blocks)
        # one-hot of the block's maximum; a comparison with amax is ~50x faster on CPU than argmax +
        # one_hot over the strided U dim (ties have probability zero for sampled scores)
        hard = (scores == scores.amax(dim=2, keepdim=True)).to(blocks.dtype)
        if not self.surrogate:
            return hard
        soft = F.softmax(blocks, dim=2)  # expected mask E[xi] under Categorical(softmax(h))
        return hard + (soft - soft.detach())  # exact hard value forward

    def kl_divergence(self) -> Tensor | None:
        """KL of the IBP utility indicators, or None without IBP."""
        return None if self.indicators is None else self.indicators.kl_divergence()

    @classmethod
    def stacked_kl(cls, layers: Sequence[StochasticModule]) -> Tensor | None:
        """The layers' IBP KL in one evaluation over all their sticks (:func:`.ibp.stacked_kl`)."""
        indicators = [m.indicators for m in layers if isinstance(m, LWTA) and m.indicators is not None]
        if not indicators:
            return None
        return stacked_kl(indicators) if fused_enabled() else super().stacked_kl(layers)


def _logistic_like(x: Tensor) -> Tensor:
    """Logistic(0, 1) noise shaped like ``x``, the difference of two Gumbel(0, 1) draws; float32 at least
    (a bf16 uniform has 8 bits, too coarse for the tails)."""
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return torch.logit(torch.rand(x.shape, device=x.device, dtype=dtype), eps=1e-7)


def _gumbel_like(x: Tensor) -> Tensor:
    u = torch.rand_like(x).clamp(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))
