"""Fused kernels of the stochastic layers, tested against the plain PyTorch reference code they replace.

The reference code of a Stochastic LWTA layer with IBP indicators (:meth:`LWTA._pair`,
:meth:`IBPIndicators.kl_divergence`) is a dozen small tensor operations per layer, each a pass over
memory in the forward pass and more in the backward pass; the KL adds about forty tiny operations
per layer. This module does the same arithmetic in fewer passes:

* :func:`relaxed_pair`: the relaxed (training) competition of U = 2 units, the utility indicators'
  scaling included, as one :class:`torch.autograd.Function` with a hand-written backward. It saves
  its input, the indicators, the winning probabilities (half the input's size) and its output
  (which the next convolution keeps anyway), works in place on its own buffers, takes pairs as
  channel slices (any memory layout, no copies) and draws its logistic noise itself at half the
  cost of ``torch.rand`` on CPU (:func:`logistic_noise`).
* the stacked IBP KL (:func:`trainables.models.ibp.stacked_kl`): one evaluation over every layer's
  sticks instead of one per layer.
* on CUDA, optionally (:func:`compile_on_cuda`, ``ROBUSTUNE_COMPILE_LWTA=1``; off until measured on a
  GPU): ``torch.compile`` of :func:`relaxed_pair_expression`, noise drawn inside the generated kernel.
  CPU tensors never take it, and nothing here imports Triton.

Every fused path gives the reference's outputs and gradients from the same random numbers
(``tests/test_fused.py``). :func:`reference_kernels` switches back to the reference code, for those
tests and for benchmarks that measure both in one process.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

__all__ = ["compile_on_cuda", "compiling_on_cuda", "fused_enabled", "logistic_noise", "reference_kernels",
           "relaxed_pair", "relaxed_pair_expression"]

# the compiled CUDA path: a process-wide opt-in, turned off for good when compiling fails
_state = {"compile": os.environ.get("ROBUSTUNE_COMPILE_LWTA", "") == "1"}
_FUSED: ContextVar[bool] = ContextVar("robustune_fused_kernels", default=True)  # per thread / task


def fused_enabled() -> bool:
    """Whether stochastic layers take their fused paths (False inside :func:`reference_kernels`)."""
    return _FUSED.get()


@contextmanager
def reference_kernels(enabled: bool = True) -> Iterator[None]:
    """Within the block, stochastic layers run their plain PyTorch reference code instead of the fused paths."""
    token = _FUSED.set(not enabled)
    try:
        yield
    finally:
        _FUSED.reset(token)


_BITS = 23  # (k + 1/2) / 2^23 is exact in float32 for every k < 2^23


def logistic_noise(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """Logistic(0, 1) noise logit(u), u uniform on the 2^23 midpoints (k + 1/2) / 2^23 of (0, 1).

    On CPU ``torch.rand`` costs about twice a 64-bit ``random_`` per value drawn, so each int64 draw
    (63 random bits) gives two 23-bit uniforms, nearly ``torch.rand``'s resolution (2^-24) from the
    same generator at half the cost. The midpoints keep u off 0 and 1, so the noise is finite
    (|noise| <= 16.6) and symmetric without clamping. Elsewhere ``torch.rand`` (Philox on CUDA),
    its one value 0 moved to 2^-25. Always a new tensor: :func:`relaxed_pair` overwrites it.
    """
    if device.type != "cpu":
        u = torch.rand(shape, device=device, dtype=torch.float32)
        return u.clamp_(2.0 ** -25, 1 - 2.0 ** -24).logit_().to(dtype)
    n = math.prod(shape)
    pairs = torch.empty((n + 1) // 2, dtype=torch.int64).random_()  # (ceil(n/2),) 63 random bits each
    k = pairs.view(torch.int32)[:n].bitwise_and_((1 << _BITS) - 1)  # (n,) low 23 bits of each 32-bit half
    u = pairs.view(torch.float32)[:n].copy_(k)  # converted in place: the same 4 bytes per value, no new buffer
    return u.add_(0.5).mul_(2.0 ** -_BITS).logit_().view(shape).to(dtype)  # u in (0, 1), exact


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Noise and probabilities in float32 at least (bf16/fp16 inputs under autocast)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _indicator_view(z: Tensor, h: Tensor) -> Tensor:
    """Indicators (B, C) as (B, C, 1, ...) in ``h``'s dtype, ready to scale it."""
    return z.to(h.dtype).view(*z.shape, *([1] * (h.dim() - 2)))


class _RelaxedPair(torch.autograd.Function):
    """out = x * (p, 1 - p) per pair, x = h * z, p = sigmoid((x_0 - x_1 + noise) / tau): :func:`relaxed_pair`.

    Pairs are taken as channel slices (``[:, 0::2]``, ``[:, 1::2]``), so any memory layout works
    without a copy (a gradient that arrives channels-last from a convolution, for instance).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, h: Tensor, z: Tensor | None, noise: Tensor | None,  # type: ignore[override]
                temperature: float) -> Tensor:
        zs = None if z is None else _indicator_view(z, h)  # (B, C, 1, ...) in h's dtype
        x = h if zs is None else h * zs  # (B, C, ...): a new tensor when scaled, the output's buffer
        a, b = x[:, 0::2], x[:, 1::2]  # (B, K, ...) each, strided views
        if noise is None:
            t = logistic_noise(a.shape, h.device, _compute_dtype(h.dtype))  # (B, K, ...), ours to overwrite
        else:
            t = noise.to(_compute_dtype(h.dtype), copy=True).view(a.shape)
        p = t.add_(a).sub_(b).mul_(1.0 / temperature).sigmoid_()  # (B, K, ...) probability of unit 0
        p = p.to(h.dtype)  # low precision (autocast): one cast here, every later pass in h's dtype
        out = x if zs is not None else torch.empty_like(h)
        torch.mul(a, p, out=out[:, 0::2])
        torch.addcmul(b, b, p, value=-1, out=out[:, 1::2])  # b (1 - p)
        ctx.save_for_backward(h, z, p, out)
        ctx.temperature = temperature
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        h, z, p, out = ctx.saved_tensors
        ga, gb = grad[:, 0::2], grad[:, 1::2]  # (B, K, ...)
        gx = torch.empty_like(h)  # d loss / d x, then d loss / d h; its halves serve as scratch first
        ga_x, gb_x = gx[:, 0::2], gx[:, 1::2]
        # with s = p (1 - p) / tau: d out_0 / d x_0 = p + x_0 s, d out_1 / d x_0 = -x_1 s (and mirrored);
        # x_0 p = out_0 and x_1 (1 - p) = out_1, so t = (ga x_0 - gb x_1) p (1 - p) needs no x
        t = ga * out[:, 0::2]  # (B, K, ...)
        t.addcmul_(t, p, value=-1)  # ga x_0 p (1 - p)
        t.addcmul_(torch.mul(gb, out[:, 1::2], out=gb_x), p, value=-1)  # - gb x_1 (1 - p) p
        inv_tau = 1.0 / ctx.temperature
        torch.mul(ga, p, out=ga_x).add_(t, alpha=inv_tau)  # ga p + t / tau
        torch.addcmul(gb, gb, p, value=-1, out=gb_x).sub_(t, alpha=inv_tau)  # gb (1 - p) - t / tau
        if z is None:
            return gx, None, None, None
        grad_z = None
        if ctx.needs_input_grad[1]:  # sum over positions of d loss / d x * h, per channel; t is scratch now
            grad_z = torch.empty_like(z)  # (B, C), summed in z's dtype (float32 under autocast)
            for half, dx in ((slice(0, None, 2), ga_x), (slice(1, None, 2), gb_x)):
                prod = torch.mul(dx, h[:, half], out=t)  # (B, K, ...)
                grad_z[:, half] = prod.flatten(2).sum(2, dtype=z.dtype) if prod.dim() > 2 else prod
        return gx.mul_(_indicator_view(z, h)), grad_z, None, None


def relaxed_pair_expression(h: Tensor, z: Tensor | None, temperature: float, noise: Tensor | None = None) -> Tensor:
    """:func:`relaxed_pair` as plain differentiable tensor operations: what ``torch.compile`` fuses on CUDA.

    Under the compiler the uniform draw becomes Philox inside the generated kernel, and forward and
    backward become a few kernels per layer instead of a few dozen. Eager, it is one more reference.
    """
    zs = None if z is None else z.view(*z.shape, *([1] * (h.dim() - 2)))  # (B, C, 1, ...)
    x = h if zs is None else h * zs
    a, b = x[:, 0::2], x[:, 1::2]  # (B, K, ...)
    if noise is None:
        u = torch.rand(a.shape, device=h.device, dtype=torch.float32)
        noise = torch.logit(u.clamp(2.0 ** -25, 1 - 2.0 ** -24))
    p = torch.sigmoid((a - b + noise) / temperature)  # (B, K, ...) in float32 at least
    return torch.stack((a * p, b * (1 - p)), dim=2).view(h.shape).to(h.dtype)  # pairs interleaved again


_compiled: dict[str, Callable[..., Tensor]] = {}


def compile_on_cuda(enabled: bool = True) -> None:
    """Route :func:`relaxed_pair` on CUDA tensors through ``torch.compile`` (off by default; also
    ``ROBUSTUNE_COMPILE_LWTA=1``). CPU tensors always take the eager fused op."""
    _state["compile"] = enabled


def compiling_on_cuda() -> bool:
    """Whether CUDA tensors take the compiled path."""
    return _state["compile"]


def _run_compiled(h: Tensor, z: Tensor | None, temperature: float, noise: Tensor | None) -> Tensor | None:
    """The compiled :func:`relaxed_pair_expression`; None, with one warning, when its first compilation fails."""
    if "fn" in _compiled:
        return _compiled["fn"](h, z, temperature, noise)
    fn = torch.compile(relaxed_pair_expression, fullgraph=True)
    try:
        out = fn(h, z, temperature, noise)
    except Exception as exc:  # noqa: BLE001 (no working compiler backend here: stay with the eager fused op)
        warnings.warn(f"torch.compile of the LWTA competition failed, it stays eager: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=3)
        _state["compile"] = False
        return None
    _compiled["fn"] = fn
    return out


def relaxed_pair(h: Tensor, z: Tensor | None, temperature: float, noise: Tensor | None = None) -> Tensor:
    """Relaxed LWTA competition of U = 2 units, optionally scaled by utility indicators, fused.

    ``h`` (B, C, ...) with channels 2k and 2k + 1 competing per position, ``z`` (B, C) indicators
    (None: no IBP). With x = h * z, each pair's first unit gets p = sigmoid((x_0 - x_1 + L) / tau),
    L ~ Logistic(0, 1), and the output is (x_0 p, x_1 (1 - p)): :meth:`LWTA._pair` in training mode.
    ``noise`` (B, C / 2, ...) is L; None draws it (:func:`logistic_noise`). Gradients flow to ``h``
    and ``z``, not to ``noise``.
    """
    if h.shape[1] % 2:
        raise ValueError(f"need an even number of channels, got {tuple(h.shape)=}")
    if h.is_cuda and _state["compile"] and (out := _run_compiled(h, z, temperature, noise)) is not None:
        return out
    if h.device.type == "cpu" and h.dtype in (torch.bfloat16, torch.float16):
        # a CPU computes bf16 elementwise math through float32 op by op; one cast up front is cheaper (PGD-3
        # training step of the quick CNN under autocast: 0.67x of float32 channels-last, against 0.83x in bf16)
        h = h.float()
    return _RelaxedPair.apply(h, z, noise, temperature)
