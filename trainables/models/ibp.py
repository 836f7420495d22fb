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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["IBPIndicators", "kumaraswamy_beta_kl", "kumaraswamy_log_sample", "bernoulli_kl"]

_EULER_GAMMA = 0.5772156649015329
_EPS = 1e-6


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


def kumaraswamy_beta_kl(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """Elementwise KL(Kumaraswamy(a, b) || Beta(alpha, 1)) in closed form (Nalisnick & Smyth 2017)."""
    # With prior beta = 1 the infinite Taylor series vanishes and log B(alpha, 1) = -log(alpha).
    digamma_term = -_EULER_GAMMA - torch.digamma(b) - 1.0 / b
    return ((a - alpha) / a * digamma_term + torch.log(a * b) - math.log(alpha) - (b - 1.0) / b)


def kumaraswamy_log_sample(a: Tensor, b: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Reparameterised log v for v ~ Kumaraswamy(a, b): v = (1 - (1 - U)^(1/b))^(1/a), same shape as a."""
    u = torch.rand(a.shape, generator=generator, dtype=a.dtype, device=a.device).clamp(_EPS, 1 - _EPS)
    log_inner = torch.log1p(-u) / b  # log (1 - U)^(1/b), < 0
    return torch.log(-torch.expm1(log_inner)).clamp_min(math.log(_EPS)) / a


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
