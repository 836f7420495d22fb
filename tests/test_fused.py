"""The fused stochastic-layer kernels against the plain PyTorch reference code they replace.

Same outputs and gradients from the same random numbers: the relaxed U = 2 competition
(:func:`trainables.models.fused.relaxed_pair` vs :meth:`LWTA._pair`), the stacked IBP KL
(:func:`trainables.models.ibp.stacked_kl` vs :meth:`IBPIndicators.kl_divergence` per layer), and the
logistic noise drawn inside the fused op. The device comes from $ROBUSTUNE_DEVICE (CPU by default);
the tests marked ``gpu`` compare CUDA with CPU and run only where torch sees CUDA.
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from trainables.data.info import DatasetInfo
from trainables.models import LWTA, IBPIndicators, ModelConfig, build_model, fused
from trainables.models.fused import (
    _RelaxedPair,
    logistic_noise,
    reference_kernels,
    relaxed_pair,
    relaxed_pair_expression,
)
from trainables.models.ibp import stacked_kl

INFO = DatasetInfo("tiny", channels=1, size=28, classes=10, mean=(0.5,), std=(0.25,))
SHAPES = [(5, 8), (3, 8, 5, 4), (2, 8, 3, 3, 2)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _reference_pair(h: torch.Tensor, z: torch.Tensor | None, noise: torch.Tensor, temperature: float,
                    monkeypatch: pytest.MonkeyPatch) -> torch.Tensor:
    """LWTA's reference code in training mode (h * z, then :meth:`LWTA._pair`), ``noise`` as its logistic draw."""
    from trainables.models import lwta as lwta_module

    monkeypatch.setattr(lwta_module, "_logistic_like", lambda x: noise.to(x.dtype))
    layer = LWTA(h.shape[1], competitors=2, temperature=temperature).train()
    x = h if z is None else h * z.view(*z.shape, *([1] * (h.dim() - 2)))
    return layer._pair(x)


class SequentialUniforms:
    """Stands in for :func:`trainables.models.ibp._uniform`: hands out one fixed stream in call order."""

    def __init__(self, total: int, device: torch.device) -> None:
        self.stream = torch.rand(total, generator=torch.Generator().manual_seed(11), dtype=torch.float64).to(device)
        self.taken: list[int] = []

    def __call__(self, like: torch.Tensor, generator: object = None) -> torch.Tensor:
        start = sum(self.taken)
        self.taken.append(like.numel())
        assert start + like.numel() <= self.stream.numel(), "more stick draws than expected"
        return self.stream[start:start + like.numel()].view(like.shape).to(like.dtype)


def _patch_sticks(model: torch.nn.Module, device: torch.device, monkeypatch: pytest.MonkeyPatch
                  ) -> SequentialUniforms:
    from trainables.models import ibp as ibp_module

    total = sum(m.a_raw.numel() for m in model.modules() if isinstance(m, IBPIndicators))
    uniforms = SequentialUniforms(total, device)
    monkeypatch.setattr(ibp_module, "_uniform", uniforms)
    return uniforms


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad((out * weight).sum(), inputs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ibp", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relaxed_pair_matches_reference(shape: tuple[int, ...], ibp: bool, dtype: torch.dtype,
                                        device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs and gradients (input and indicators) of the fused op equal the reference's from the same noise."""
    h = torch.randn(shape, dtype=dtype, device=device, requires_grad=True)
    z = torch.rand(shape[:2], dtype=dtype, device=device).requires_grad_(True) if ibp else None
    noise = logistic_noise((shape[0], shape[1] // 2, *shape[2:]), device, dtype)  # (B, K, ...)
    weight = torch.randn(shape, dtype=dtype, device=device)  # a loss that weighs every output differently
    inputs = [h] if z is None else [h, z]
    ref = _reference_pair(h, z, noise, 0.67, monkeypatch)
    out = relaxed_pair(h, z, 0.67, noise=noise)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    torch.testing.assert_close(out, ref, **tol)
    for got, want in zip(_grads(out, inputs, weight), _grads(ref, inputs, weight), strict=True):
        torch.testing.assert_close(got, want, **tol)


def test_relaxed_pair_leaves_inputs_untouched(device: torch.device) -> None:
    h = torch.randn(4, 6, 3, 3, device=device, requires_grad=True)
    z = torch.rand(4, 6, device=device, requires_grad=True)
    noise = logistic_noise((4, 3, 3, 3), device)
    before = [t.detach().clone() for t in (h, z, noise)]
    out = relaxed_pair(h, z, 0.5, noise=noise)
    grad = torch.randn_like(out)
    grad_before = grad.clone()
    out.backward(grad)
    for t, b in zip((h, z, noise, grad), (*before, grad_before), strict=True):
        assert torch.equal(t.detach(), b)


def test_relaxed_pair_any_memory_layout(device: torch.device) -> None:
    """A channels-last input and gradient (as convolutions may hand them over) give the contiguous result."""
    h = torch.randn(3, 8, 5, 5, device=device)
    z = torch.rand(3, 8, device=device)
    noise = logistic_noise((3, 4, 5, 5), device)
    grad = torch.randn(3, 8, 5, 5, device=device)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        hh = h.clone(memory_format=layout).requires_grad_(True)
        zz = z.clone().requires_grad_(True)
        out = relaxed_pair(hh, zz, 0.67, noise=noise)
        out.backward(grad.to(memory_format=layout))
        results.append((out.detach(), hh.grad, zz.grad))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_relaxed_pair_needs_pairs() -> None:
    with pytest.raises(ValueError, match="even number of channels"):
        relaxed_pair(torch.randn(2, 5), None, 0.67)


@pytest.mark.parametrize("shape", [(4, 6), (3, 6, 5, 5)])
@pytest.mark.parametrize("ibp", [False, True])
def test_lwta_layer_fused_equals_reference(shape: tuple[int, ...], ibp: bool, device: torch.device,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An LWTA layer in training gives the same output and gradients (input, IBP parameters) either way."""
    from trainables.models import lwta as lwta_module

    layer = LWTA(6, competitors=2, temperature=0.5, ibp=ibp).to(device).train()
    noise = logistic_noise((shape[0], 3, *shape[2:]), device)
    monkeypatch.setattr(lwta_module, "_logistic_like", lambda x: noise)
    monkeypatch.setattr(fused, "logistic_noise",
                        lambda shape, device, dtype=torch.float32: noise.to(dtype, copy=True))
    h = torch.randn(shape, device=device, requires_grad=True)
    weight = torch.randn(shape, device=device)
    params = [h] if layer.indicators is None else [h, layer.indicators.logits]  # the sticks only reach the KL
    results = []
    for reference in (False, True):
        torch.manual_seed(1)  # the same indicator draws
        with reference_kernels(reference):
            out = layer(h)
        assert (out.grad_fn.name() == "_RelaxedPairBackward") is not reference
        results.append((out, *_grads(out, params, weight)))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_reference_kernels_switch_restores() -> None:
    assert fused.fused_enabled()
    with reference_kernels():
        assert not fused.fused_enabled()
        with reference_kernels(False):
            assert fused.fused_enabled()
        assert not fused.fused_enabled()
    assert fused.fused_enabled()


def test_logistic_noise_distribution(device: torch.device) -> None:
    """Logistic(0, 1): finite, symmetric, variance pi^2 / 3, CDF sigmoid; reproducible from the seed."""
    torch.manual_seed(3)
    noise = logistic_noise((400_001,), device).double()  # odd: one int64 draw half used on CPU
    torch.manual_seed(3)
    assert torch.equal(noise, logistic_noise((400_001,), device).double())
    assert torch.isfinite(noise).all() and noise.abs().max() <= 16.7
    assert abs(noise.mean().item()) < 0.02
    assert noise.var().item() == pytest.approx(math.pi ** 2 / 3, rel=0.02)
    for q in (-4.0, -1.0, 0.0, 0.5, 2.0):
        assert (noise <= q).double().mean().item() == pytest.approx(1 / (1 + math.exp(-q)), abs=0.004)
    assert logistic_noise((2, 3), device, torch.float64).dtype == torch.float64


@pytest.mark.parametrize("name", ["lwta-wrn", "lwta-cnn"])
def test_stacked_kl_matches_per_layer(name: str, device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    """model.kl() (one evaluation over all sticks) equals the sum of per-layer KLs: value and gradients."""
    model = build_model(ModelConfig(name=name, depth=10, hidden_blocks=4), INFO).to(device)
    with torch.no_grad():
        for p in model.parameters():  # away from the shared initial values, so a mixed-up layer shows
            p.add_(0.3 * torch.randn_like(p))
    uniforms = _patch_sticks(model, device, monkeypatch)
    params = [p for m in model.modules() if isinstance(m, IBPIndicators) for p in m.parameters()]
    results = []
    for kl in (model.kl, model.layer_kl):
        uniforms.taken.clear()
        value = kl()
        results.append((value, *torch.autograd.grad(value, params)))
        assert sum(uniforms.taken) == uniforms.stream.numel()
    assert len(uniforms.taken) > 1  # the reference drew layer by layer
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_stacked_kl_same_draws_as_per_layer_on_cpu() -> None:
    """On CPU one torch.rand of all sticks gives the numbers of one call per layer: equal KLs from one seed."""
    model = build_model(ModelConfig(name="lwta-wrn", depth=10), INFO)
    torch.manual_seed(5)
    stacked = model.kl()
    torch.manual_seed(5)
    torch.testing.assert_close(stacked, model.layer_kl(), rtol=1e-6, atol=1e-4)


def test_stacked_kl_mixed_layers() -> None:
    """Layers of different alpha and group are stacked per kind; each layer's total keeps its own clamp."""
    layers = [IBPIndicators(8, alpha=3.0, group=2), IBPIndicators(6, alpha=1.5, group=3),
              IBPIndicators(4, alpha=3.0, group=2), IBPIndicators(5, alpha=3.0, group=1)]
    with torch.no_grad():
        for layer in layers:
            layer.logits.copy_(torch.randn_like(layer.logits) * 3)
    torch.manual_seed(2)
    reference = sum(layer.kl_divergence() for layer in layers)
    # the stacked draw visits kinds in first-seen order: (3.0, 2) layers 0 and 2, then 1, then 3
    torch.manual_seed(2)
    per_kind = [layers[0].kl_divergence(), layers[2].kl_divergence(), layers[1].kl_divergence(),
                layers[3].kl_divergence()]
    torch.manual_seed(2)
    stacked = stacked_kl(layers)
    torch.testing.assert_close(stacked, sum(per_kind), rtol=1e-6, atol=1e-5)
    assert torch.isfinite(reference)
    with pytest.raises(ValueError, match="at least one layer"):
        stacked_kl([])


def test_train_step_same_either_way(device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole LWTA-WRN training loss and its parameter gradients: fused and reference agree from the same draws."""
    from trainables.models import lwta as lwta_module

    model = build_model(ModelConfig(name="lwta-wrn", depth=10), INFO).to(device).train()
    x = torch.rand(4, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (4,), device=device)
    uniforms = _patch_sticks(model, device, monkeypatch)
    own = torch.Generator().manual_seed(3)  # the activations' noise, apart from the global stream
    store: dict[tuple[int, ...], torch.Tensor] = {}

    def noise(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if tuple(shape) not in store:
            store[tuple(shape)] = torch.randn(shape, generator=own).to(device)
        return store[tuple(shape)].to(dtype, copy=True)  # a new tensor, as logistic_noise's is

    monkeypatch.setattr(fused, "logistic_noise", noise)
    monkeypatch.setattr(lwta_module, "_logistic_like", lambda x: noise(tuple(x.shape), x.device, x.dtype))
    results = []
    for reference in (False, True):
        torch.manual_seed(7)  # the same indicator draws
        uniforms.taken.clear()
        with reference_kernels(reference):
            loss = F.cross_entropy(model(x), y) + model.kl() / 1000
            grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((loss, *grads))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ibp", [False, True])
def test_expression_matches_fused_op(ibp: bool, device: torch.device) -> None:
    """The plain-operations form that torch.compile fuses on CUDA computes the fused op's values and gradients."""
    h = torch.randn(3, 8, 5, 5, device=device, requires_grad=True)
    z = torch.rand(3, 8, device=device, requires_grad=True) if ibp else None
    noise = logistic_noise((3, 4, 5, 5), device)
    weight = torch.randn(3, 8, 5, 5, device=device)
    inputs = [h] if z is None else [h, z]
    got = relaxed_pair_expression(h, z, 0.67, noise)
    want = _RelaxedPair.apply(h, z, noise, 0.67)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(_grads(got, inputs, weight), _grads(want, inputs, weight), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_compiled_expression_on_cpu() -> None:
    """torch.compile of the expression (inductor's C++ here, Triton on CUDA) keeps values and gradients (~25 s)."""
    compiled = torch.compile(relaxed_pair_expression, fullgraph=True)
    h = torch.randn(3, 8, 5, 5, requires_grad=True)
    z = torch.rand(3, 8, requires_grad=True)
    noise = logistic_noise((3, 4, 5, 5), h.device)
    weight = torch.randn(3, 8, 5, 5)
    got = compiled(h, z, 0.67, noise)
    want = _RelaxedPair.apply(h, z, noise, 0.67)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(_grads(got, [h, z], weight), _grads(want, [h, z], weight), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_cpu_never_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """With compilation switched on, CPU tensors still take the eager fused op."""
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("torch.compile called for a CPU tensor"))
    fused.compile_on_cuda(True)
    try:
        out = relaxed_pair(torch.randn(2, 4, 3, 3, requires_grad=True), None, 0.67)
    finally:
        fused.compile_on_cuda(False)
    assert out.grad_fn.name() == "_RelaxedPairBackward"


@pytest.mark.gpu
@pytest.mark.parametrize("ibp", [False, True])
def test_compiled_cuda_matches_eager(ibp: bool) -> None:
    """On CUDA the compiled path gives the eager fused op's values and gradients from the same noise, and its
    in-kernel noise gives the same mean output as eager draws."""
    cuda = torch.device("cuda")
    h = torch.randn(16, 8, 7, 7, device=cuda, requires_grad=True)
    z = torch.rand(16, 8, device=cuda, requires_grad=True) if ibp else None
    noise = logistic_noise((16, 4, 7, 7), cuda)
    weight = torch.randn(16, 8, 7, 7, device=cuda)
    inputs = [h] if z is None else [h, z]
    fused.compile_on_cuda(True)
    try:
        got = relaxed_pair(h, z, 0.67, noise=noise)
        with torch.no_grad():
            drawn = torch.stack([relaxed_pair(h, z, 0.67) for _ in range(1000)])  # (N, B, C, H, W)
    finally:
        fused.compile_on_cuda(False)
    assert fused._compiled, "the compiled path was not taken"
    want = _RelaxedPair.apply(h, z, noise, 0.67)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(_grads(got, inputs, weight), _grads(want, inputs, weight), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        eager = torch.stack([relaxed_pair(h, z, 0.67) for _ in range(1000)])
    # per output, the two Monte-Carlo means differ by standard errors only: |score| averages sqrt(2 / pi)
    se = ((drawn.var(0) + eager.var(0)) / 1000).sqrt().clamp_min(1e-6)
    score = ((drawn.mean(0) - eager.mean(0)) / se).abs()
    assert score.mean().item() < 1.0 and score.max().item() < 6.5


@pytest.mark.gpu
@pytest.mark.parametrize("ibp", [False, True])
def test_relaxed_pair_cuda_matches_cpu(ibp: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the fused op gives the CPU reference's outputs and gradients from the same noise."""
    cuda = torch.device("cuda")
    h = torch.randn(8, 16, 7, 7, dtype=torch.float64)
    z = torch.rand(8, 16, dtype=torch.float64) if ibp else None
    noise = logistic_noise((8, 8, 7, 7), torch.device("cpu"), torch.float64)
    weight = torch.randn_like(h)
    results = []
    for dev in (torch.device("cpu"), cuda):
        hh = h.to(dev).requires_grad_(True)
        zz = None if z is None else z.to(dev).requires_grad_(True)
        inputs = [hh] if zz is None else [hh, zz]
        out = relaxed_pair(hh, zz, 0.67, noise=noise.to(dev))
        ref = _reference_pair(hh, zz, noise.to(dev), 0.67, monkeypatch)
        results.append([t.cpu() for t in (out, ref, *_grads(out, inputs, weight.to(dev)),
                                          *_grads(ref, inputs, weight.to(dev)))])
    cpu, gpu = results
    for got, want in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.gpu
def test_logistic_noise_cuda() -> None:
    noise = logistic_noise((200_000,), torch.device("cuda")).double()
    assert noise.device.type == "cuda" and torch.isfinite(noise).all()
    assert noise.var().item() == pytest.approx(math.pi ** 2 / 3, rel=0.03)


@pytest.mark.gpu
def test_train_step_cuda_fused_equals_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    test_train_step_same_either_way(torch.device("cuda"), monkeypatch)
