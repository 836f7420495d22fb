"""The layers of a bundle: k models of one shape as one, every tensor member-major along its first dimension.

A bundle's activations hold its k members side by side in the channel (or feature) dimension,
member 0's first: (B, k * C, H, W) or (B, k * F). Each bundled layer computes what its k source
layers compute, each on its own slice (HFTA's horizontal fusion, Wang et al., MLSys 2021):

- ``Conv2d``: a grouped convolution, ``groups = k * groups``;
- ``Linear``: a batched matmul over the members;
- ``BatchNorm2d`` / ``BatchNorm1d``: over k * C channels (per-channel statistics are per member);
- ``Normalize``: its mean and std repeated per member;
- ``LWTA`` (and its IBP indicators): over k * C channels (blocks never straddle two members), each
  member's stick-breaking prior its own, at its own ``alpha``;
- ``NoiseInjection`` (PNI): one alpha per member, each member's own activation std;
- ``GaussianInput`` (smoothing): one sigma per member.

Layers without parameters (ReLU, pooling, Identity) act channel by channel and stay as they are.
Every parameter and persistent buffer of a bundled layer is its members' tensors concatenated along
dim 0 (``(k * s0, *s[1:])``; ``(k,)`` for 0-d tensors), so one member's tensor is a reshape away
(:func:`member_tensor`); BatchNorm's batch counter is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.models import LWTA, IBPIndicators, NoiseInjection, Normalize, StochasticModule
from trainables.models.ibp import bernoulli_kl, kumaraswamy_beta_kl, kumaraswamy_log_sample
from trainables.models.smoothed import GaussianInput

__all__ = ["SHARED_BUFFERS", "BundledLWTA", "bundle_layer", "is_layer", "member_tensor", "stack_tensors"]

SHARED_BUFFERS = ("num_batches_tracked",)  # one value for the whole bundle (the members step together)
_EPS = 1e-6


def stack_tensors(tensors: Sequence[Tensor]) -> Tensor:
    """The members' tensors as one bundled tensor: concatenated along dim 0, or stacked when they are 0-d."""
    return torch.stack(list(tensors)) if tensors[0].dim() == 0 else torch.cat(list(tensors), dim=0)


def member_tensor(bundled: Tensor, k: int, m: int, shape: torch.Size) -> Tensor:
    """Member ``m``'s tensor (of single-model ``shape``) in a bundled tensor of ``k`` members."""
    return bundled.reshape(k, -1)[m].reshape(shape)


class BundledLinear(nn.Module):
    """k Linear layers (in -> out) over (B, k * in): one batched matmul; weight (k * out, in)."""

    def __init__(self, sources: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k, self.in_features, self.out_features = len(sources), sources[0].in_features, sources[0].out_features
        self.weight = nn.Parameter(stack_tensors([s.weight.detach() for s in sources]))  # (k * out, in)
        biases = [s.bias for s in sources]
        self.bias = None if biases[0] is None else nn.Parameter(stack_tensors([b.detach() for b in biases]))

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        xs = x.reshape(batch, self.k, self.in_features).transpose(0, 1)  # (k, B, in)
        w = self.weight.view(self.k, self.out_features, self.in_features).transpose(1, 2)  # (k, in, out)
        if self.bias is None:
            out = torch.bmm(xs, w)
        else:
            out = torch.baddbmm(self.bias.view(self.k, 1, self.out_features), xs, w)  # (k, B, out)
        return out.transpose(0, 1).reshape(batch, self.k * self.out_features)  # (B, k * out)


def _conv(sources: Sequence[nn.Conv2d]) -> nn.Conv2d:
    first, k = sources[0], len(sources)
    conv = nn.Conv2d(k * first.in_channels, k * first.out_channels, first.kernel_size, first.stride, first.padding,
                     first.dilation, k * first.groups, first.bias is not None, first.padding_mode)
    with torch.no_grad():
        conv.weight.copy_(stack_tensors([s.weight for s in sources]))  # (k * out, in / groups, kh, kw)
        if conv.bias is not None:
            conv.bias.copy_(stack_tensors([s.bias for s in sources]))
    return conv


def _batch_norm(sources: Sequence[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    first, k = sources[0], len(sources)
    norm = type(first)(k * first.num_features, first.eps, first.momentum, first.affine, first.track_running_stats)
    with torch.no_grad():
        for name, _ in [*norm.named_parameters(), *norm.named_buffers()]:
            values = [getattr(s, name) for s in sources]
            getattr(norm, name).copy_(values[0] if name in SHARED_BUFFERS else stack_tensors(values))
    return norm


def _normalize(sources: Sequence[Normalize]) -> Normalize:
    first = sources[0]
    mean, std = first.mean.flatten().tolist(), first.std.flatten().tolist()
    return Normalize(tuple(mean) * len(sources), tuple(std) * len(sources))


class BundledIBPIndicators(nn.Module):
    """k members' IBP utility indicators over k * units; each member's sticks break on their own, at its alpha."""

    def __init__(self, sources: Sequence[IBPIndicators]) -> None:
        super().__init__()
        first = sources[0]
        self.k, self.units, self.group, self.temperature = len(sources), first.units, first.group, first.temperature
        self.a_raw = nn.Parameter(stack_tensors([s.a_raw.detach() for s in sources]))  # (k * K,)
        self.b_raw = nn.Parameter(stack_tensors([s.b_raw.detach() for s in sources]))  # (k * K,)
        self.logits = nn.Parameter(stack_tensors([s.logits.detach() for s in sources]))  # (k * units,)
        self.register_buffer("alpha", torch.tensor([float(s.alpha) for s in sources]), persistent=False)  # (k,)

    def forward(self, batch: int, surrogate: bool = False) -> Tensor:
        """Sample indicators z (batch, k * units), as :meth:`IBPIndicators.forward` does for each member."""
        logits = self.logits.expand(batch, self.k * self.units)  # (B, k * C)
        if self.training and not surrogate:
            u = torch.rand_like(logits).clamp(_EPS, 1 - _EPS)
            return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)
        q = torch.sigmoid(logits)
        hard = torch.bernoulli(q.detach())
        return hard + (q - q.detach()) if surrogate else hard

    def kl_members(self) -> Tensor:
        """Each member's KL of its sticks to Beta(alpha, 1) and of its indicators to Bernoulli(pi): (k,) >= 0."""
        a = (F.softplus(self.a_raw) + _EPS).view(self.k, -1)  # (k, K)
        b = (F.softplus(self.b_raw) + _EPS).view(self.k, -1)  # (k, K)
        stick_kl = kumaraswamy_beta_kl(a, b, self.alpha.view(self.k, 1)).sum(dim=1)  # (k,)
        log_pi = torch.cumsum(kumaraswamy_log_sample(a, b), dim=1).repeat_interleave(self.group, dim=1)  # (k, C)
        indicator_kl = bernoulli_kl(self.logits.view(self.k, -1), log_pi).sum(dim=1)  # (k,)
        return (stick_kl + indicator_kl).clamp_min(0.0)

    def kl_divergence(self) -> Tensor:
        """The members' KLs summed (scalar)."""
        return self.kl_members().sum()


class BundledLWTA(LWTA):
    """LWTA over k members' channels (k * C); their IBP indicators bundled, their KLs each on its own."""

    def __init__(self, sources: Sequence[LWTA]) -> None:
        first, k = sources[0], len(sources)
        super().__init__(k * first.channels, first.competitors, first.temperature, first.inference, ibp=False)
        self.k = k
        indicators = [s.indicators for s in sources]
        self.indicators = None if indicators[0] is None else BundledIBPIndicators(indicators)  # type: ignore[arg-type]

    def kl_members(self) -> Tensor | None:
        """Each member's IBP KL (k,), or None without IBP."""
        return None if self.indicators is None else self.indicators.kl_members()

    @classmethod
    def stacked_kl(cls, layers: Sequence[StochasticModule]) -> Tensor | None:
        """The layers' KLs summed, layer by layer (each layer's members already in one evaluation)."""
        terms = [t for m in layers if (t := m.kl_divergence()) is not None]
        return torch.stack(terms).sum() if terms else None


def _member_view(per_member: Tensor, x: Tensor, k: int) -> Tensor:
    """Per-member values (k,) spread over ``x``'s channel (or feature) dim 1: (1, k * C, 1, ...)."""
    per_channel = per_member.repeat_interleave(x.shape[1] // k)  # (k * C,)
    return per_channel.view(1, -1, *([1] * (x.dim() - 2)))


class BundledNoiseInjection(StochasticModule):
    """k PNI layers: member m adds alpha_m * std(x_m).detach() * N(0, 1) to its own slice x_m."""

    def __init__(self, sources: Sequence[NoiseInjection]) -> None:
        super().__init__()
        self.k = len(sources)
        self.alpha = nn.Parameter(stack_tensors([s.alpha.detach() for s in sources]))  # (k,)

    def forward(self, x: Tensor) -> Tensor:
        per_member = x.detach().transpose(0, 1).reshape(self.k, -1)  # (k, B * C * ...), member by member
        scale = per_member.std(dim=1) if per_member.shape[1] > 1 else x.new_zeros(self.k)  # (k,)
        return x + _member_view(self.alpha * scale, x, self.k) * torch.randn_like(x)


class BundledGaussianInput(StochasticModule):
    """k Gaussian input-noise layers: member m's channels get N(0, sigma_m^2) noise."""

    def __init__(self, sources: Sequence[GaussianInput]) -> None:
        super().__init__()
        self.k = len(sources)
        self.register_buffer("sigma", torch.tensor([s.sigma for s in sources]), persistent=False)  # (k,)

    def forward(self, x: Tensor) -> Tensor:
        return x + _member_view(self.sigma.to(x.dtype), x, self.k) * torch.randn_like(x)


_STATELESS = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Flatten)
_BUNDLERS: dict[type[nn.Module], Callable[[Sequence[nn.Module]], nn.Module]] = {
    nn.Conv2d: _conv, nn.Linear: BundledLinear, nn.BatchNorm2d: _batch_norm, nn.BatchNorm1d: _batch_norm,
    Normalize: _normalize, LWTA: BundledLWTA, NoiseInjection: BundledNoiseInjection,
    GaussianInput: BundledGaussianInput,
}


def is_layer(module: nn.Module) -> bool:
    """Whether ``module`` is bundled as one layer, whatever modules it holds (an LWTA layer and its indicators)."""
    return type(module) in _BUNDLERS


def bundle_layer(sources: Sequence[nn.Module]) -> nn.Module | None:
    """The bundled layer of ``sources`` (one leaf module per member); None for a layer kept as it is.

    ValueError (one line) for a layer this module cannot bundle, or members whose layers differ.
    """
    first = sources[0]
    if any(type(s) is not type(first) for s in sources):
        raise ValueError(f"the members differ in layer type: {sorted({type(s).__name__ for s in sources})}")
    if isinstance(first, _STATELESS):
        return None
    bundler = _BUNDLERS.get(type(first))
    if bundler is None:
        raise ValueError(f"cannot bundle a {type(first).__name__} layer (bundled: "
                         f"{', '.join(sorted(t.__name__ for t in _BUNDLERS))}; kept: "
                         f"{', '.join(sorted(t.__name__ for t in _STATELESS))})")
    shapes = {name: [tuple(t.shape) for t in (s.state_dict()[name] for s in sources)] for name in first.state_dict()}
    differ = [name for name, seen in shapes.items() if len(set(seen)) > 1]
    if differ:
        raise ValueError(f"the members' {type(first).__name__} layers differ in shape ({', '.join(differ)})")
    return bundler(sources)

