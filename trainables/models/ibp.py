"""Indian Buffet Process utility indicators over the units of an LWTA layer.

Follows Panousis, Chatzis & Theodoridis (ICML 2019), "Nonparametric Bayesian Deep Networks with
Local Competition": a stick-breaking IBP prior pi_k = prod_{i<=k} v_i with v_i ~ Beta(alpha, 1),
a Kumaraswamy variational posterior over v (Nalisnick & Smyth 2017, closed-form KL), Bernoulli
utility indicators z with learnable logits, and a binary-Concrete relaxation of z while training.

Deviations from the paper: the indicators switch the *output units* of the activation (one z per
channel, shared over space) rather than individual input connections of the layer; the stick is
broken per LWTA block (``group`` units share one pi_k, as the paper's K blocks do). The KL is part
of the training loss here (the reference PyTorch code of the adversarial-robustness follow-up,
Panousis et al. 2021, drops it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["IBPIndicators", "bernoulli_kl", "kumaraswamy_beta_kl", "kumaraswamy_log_sample", "stacked_kl"]

_EULER_GAMMA = 0.5772156649015329
_EPS = 1e-6


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


def kumaraswamy_beta_kl(a: Tensor, b: Tensor, alpha: float | Tensor) -> Tensor:
    """Elementwise KL(Kumaraswamy(a, b) || Beta(alpha, 1)) in closed form (Nalisnick & Smyth 2017).

    ``alpha``: one prior for all sticks, or a tensor broadcasting against ``a`` (a bundle's members, each its own).
    """
    # With prior beta = 1 the infinite Taylor series vanishes and log B(alpha, 1) = -log(alpha).
    digamma_term = -_EULER_GAMMA - torch.digamma(b) - 1.0 / b
    log_alpha = math.log(alpha) if isinstance(alpha, (int, float)) else torch.log(alpha)
    return ((a - alpha) / a * digamma_term + torch.log(a * b) - log_alpha - (b - 1.0) / b)


def kumaraswamy_log_sample(a: Tensor, b: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Reparameterised log v for v ~ Kumaraswamy(a, b): v = (1 - (1 - U)^(1/b))^(1/a), same shape as a."""
    u = _uniform(a, generator).clamp(_EPS, 1 - _EPS)
    log_inner = torch.log1p(-u) / b  # log (1 - U)^(1/b), < 0
    return torch.log(-torch.expm1(log_inner)).clamp_min(math.log(_EPS)) / a


def _uniform(like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """U(0, 1) draws shaped like ``like`` (the sticks' noise; tests hand in their own)."""
    return torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def bernoulli_kl(logits: Tensor, log_prior: Tensor) -> Tensor:
    """Elementwise KL(Bernoulli(sigmoid(logits)) || Bernoulli(exp(log_prior)))."""
    q = torch.sigmoid(logits)
    log_q, log_not_q = F.logsigmoid(logits), F.logsigmoid(-logits)
    log_prior = log_prior.clamp(math.log(_EPS), math.log1p(-_EPS))
    log_not_prior = torch.log(-torch.expm1(log_prior))  # log(1 - pi)
    return q * (log_q - log_prior) + (1 - q) * (log_not_q - log_not_prior)


class IBPIndicators(nn.Module):
    """Binary utility indicators z (B, units) under a stick-breaking IBP prior (Panousis et al. 2019).

    ``group`` consecutive units share one stick weight pi_k (an LWTA block of U competitors).
    Training draws a binary-Concrete relaxation at ``temperature``; eval draws hard Bernoulli
    samples; surrogate mode keeps the hard sample forward and back-propagates through q = sigmoid(t).
    """

    def __init__(self, units: int, alpha: float = 3.0, temperature: float = 0.67, group: int = 1,
                 init_logit: float = 3.0) -> None:
        super().__init__()
        if units < 1 or group < 1 or units % group:
            raise ValueError(f"units must be a positive multiple of group, got {units=}, {group=}")
        if alpha <= 0 or temperature <= 0:
            raise ValueError(f"alpha and temperature must be > 0, got {alpha=}, {temperature=}")
        self.units, self.group = units, group
        self.alpha, self.temperature = alpha, temperature
        sticks = units // group
        self.a_raw = nn.Parameter(torch.full((sticks,), _inverse_softplus(alpha)))
        self.b_raw = nn.Parameter(torch.full((sticks,), _inverse_softplus(1.0)))
        self.logits = nn.Parameter(torch.full((units,), init_logit))

    @property
    def a(self) -> Tensor:
        """Kumaraswamy a > 0 per stick (K,)."""
        return F.softplus(self.a_raw) + _EPS

    @property
    def b(self) -> Tensor:
        """Kumaraswamy b > 0 per stick (K,)."""
        return F.softplus(self.b_raw) + _EPS

    def probabilities(self) -> Tensor:
        """Posterior keep-probabilities q(z_k = 1) per unit (units,)."""
        return torch.sigmoid(self.logits)

    def forward(self, batch: int, surrogate: bool = False) -> Tensor:
        """Sample indicators z (batch, units)."""
        logits = self.logits.expand(batch, self.units)  # (B, C)
        if self.training and not surrogate:
            u = torch.rand_like(logits).clamp(_EPS, 1 - _EPS)
            return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)
        q = torch.sigmoid(logits)  # (B, C)
        hard = torch.bernoulli(q.detach())
        return hard + (q - q.detach()) if surrogate else hard

    def kl_divergence(self) -> Tensor:
        """KL of the Kumaraswamy sticks to Beta(alpha, 1) plus KL of q(z) to Bernoulli(pi) (scalar >= 0)."""
        a, b = self.a, self.b  # (K,)
        stick_kl = kumaraswamy_beta_kl(a, b, self.alpha).sum()
        log_pi = torch.cumsum(kumaraswamy_log_sample(a, b), dim=0)  # (K,) log prod_{i<=k} v_i
        log_pi = log_pi.repeat_interleave(self.group)  # (C,)
        indicator_kl = bernoulli_kl(self.logits, log_pi).sum()
        # Both terms are KLs (>= 0 analytically); clamp guards float round-off only.
        return (stick_kl + indicator_kl).clamp_min(0.0)


def stacked_kl(layers: Sequence[IBPIndicators]) -> Tensor:
    """``sum(layer.kl_divergence() for layer in layers)`` in one evaluation over all their sticks and units.

    The per-layer KL is ~20 tiny tensor operations forward and ~40 backward, whatever the layer's
    size; a WRN-34 has 31 LWTA layers. Here the layers' parameters are concatenated (layers of equal
    ``alpha`` and ``group`` together) and every term is computed once: the stick draws come from one
    ``torch.rand`` call of all sticks in layer order (on CPU the same numbers as one call per layer),
    each layer's stick-breaking product restarts at its first stick, and each layer's total is still
    clamped at 0 on its own, as :meth:`IBPIndicators.kl_divergence` does.
    """
    if not layers:
        raise ValueError("stacked_kl needs at least one layer")
    kinds: dict[tuple[float, int], list[IBPIndicators]] = {}
    for layer in layers:
        kinds.setdefault((layer.alpha, layer.group), []).append(layer)
    totals = [_stacked_kl(kind, alpha, group) for (alpha, group), kind in kinds.items()]
    return totals[0] if len(totals) == 1 else torch.stack(totals).sum()


def _stacked_kl(layers: Sequence[IBPIndicators], alpha: float, group: int) -> Tensor:
    """:func:`stacked_kl` of layers sharing ``alpha`` and ``group``."""
    first = layers[0].a_raw
    index = _StackIndex.of(tuple(layer.a_raw.numel() for layer in layers), group, first.device)
    a = F.softplus(torch.cat([layer.a_raw for layer in layers])) + _EPS  # (K,) all sticks, layer by layer
    b = F.softplus(torch.cat([layer.b_raw for layer in layers])) + _EPS  # (K,)
    logits = torch.cat([layer.logits for layer in layers])  # (C,) = (K * group,)
    stick_kl = kumaraswamy_beta_kl(a, b, alpha)  # (K,)
    log_v = kumaraswamy_log_sample(a, b)  # (K,)
    running = torch.cumsum(log_v.double(), dim=0)  # (K,) across layers; float64 keeps each layer's sums exact
    start = torch.cat([running.new_zeros(1), running])[index.starts]  # (L,) each layer's offset
    log_pi = (running - start[index.stick_layer]).to(log_v.dtype).repeat_interleave(group)  # (C,)
    indicator_kl = bernoulli_kl(logits, log_pi)  # (C,)
    per_layer = first.new_zeros(len(layers)).index_add(0, index.stick_layer, stick_kl)
    per_layer = per_layer.index_add(0, index.unit_layer, indicator_kl)  # (L,)
    return per_layer.clamp_min(0.0).sum()


class _StackIndex:
    """Index tensors of :func:`_stacked_kl` for one layout of layers on one device, built once."""

    _cache: dict[tuple[tuple[int, ...], int, torch.device], _StackIndex] = {}

    def __init__(self, sticks: tuple[int, ...], group: int, device: torch.device) -> None:
        layer = torch.arange(len(sticks)).repeat_interleave(torch.tensor(sticks))  # (K,) built on CPU: no sync
        with torch.inference_mode(False):  # plain tensors, usable by autograd later
            self.starts = torch.tensor([sum(sticks[:i]) for i in range(len(sticks))], device=device)  # (L,)
            self.stick_layer = layer.to(device)  # (K,) layer of each stick
            self.unit_layer = layer.repeat_interleave(group).to(device)  # (C,) layer of each unit

    @classmethod
    def of(cls, sticks: tuple[int, ...], group: int, device: torch.device) -> _StackIndex:
        key = (sticks, group, device)
        if key not in cls._cache:
            cls._cache[key] = cls(sticks, group, device)
        return cls._cache[key]
