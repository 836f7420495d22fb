"""Training precision and memory layout: what ``auto`` resolves to, and that bf16 / channels-last train alike."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from trainables.attacks import FGSM, PGD, ThreatModel
from trainables.data import DataConfig, Splits
from trainables.data.info import DatasetInfo
from trainables.evaluation import SuiteConfig, evaluate_robustness
from trainables.models import ModelConfig, build_model
from trainables.models.fused import _RelaxedPair, logistic_noise, relaxed_pair
from trainables.models.lwta import LWTA
from trainables.train import AttackMix, RunSpec, TrainConfig, fit
from trainables.train.compute import Compute, resolve_compute

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
INFO = DatasetInfo("tiny", channels=1, size=28, classes=10, mean=(0.5,), std=(0.25,))


@pytest.mark.parametrize(("precision", "layout", "device", "native", "want"), [
    ("auto", "auto", CPU, True, Compute(torch.bfloat16, True)),
    ("auto", "auto", CPU, False, Compute(None, True)),  # emulated bf16 is slower: float32
    ("auto", "auto", CUDA, True, Compute(None, False)),  # not measured on a GPU yet: off
    ("fp32", "contiguous", CPU, True, Compute(None, False)),
    ("bf16", "channels_last", CUDA, False, Compute(torch.bfloat16, True)),  # asked for: given
])
def test_auto_resolves_per_device(precision: str, layout: str, device: torch.device, native: bool,
                                  want: Compute) -> None:
    assert resolve_compute(precision, layout, device, native_bf16=native) == want


@pytest.mark.parametrize("field", ["precision", "memory_format"])
def test_unknown_choices_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: "fp8"})


def _spec(precision: str, memory_format: str, model: str = "cnn") -> RunSpec:
    mix = AttackMix.parse("pgd:1", budgets=(PGD(steps=2),))
    suite = SuiteConfig(attacks=(FGSM(),), eot_samples=2, predict_samples=2)
    train = TrainConfig(epochs=2, batch_size=64, lr=0.05, eval_limit=100, mix=mix, precision=precision,
                        memory_format=memory_format)
    return RunSpec(data=DataConfig(), model=ModelConfig(name=model, cnn_width=8, hidden_blocks=16), train=train,
                   suite=suite)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "lwta-cnn"])
def test_bf16_channels_last_trains_like_float32(fmnist: Splits, model: str) -> None:
    """Same data and seed: bf16 autocast + channels-last ends within a few points of float32 + contiguous.

    Autocast keeps casts of the weights until its region ends; a region around a whole epoch
    would train every step on the first step's weights and stay at chance (this caught it).
    """
    small = Splits(fmnist.train.head(1536), fmnist.val.head(100), fmnist.test, fmnist.info)
    base = fit(_spec("fp32", "contiguous", model), small)
    fast = fit(_spec("bf16", "channels_last", model), small)
    assert base.final["train_loss"] < 2.0  # it learns at all (chance is ln 10 = 2.3)
    assert fast.final["train_loss"] == pytest.approx(base.final["train_loss"], abs=0.1)
    assert fast.final["natural_acc"] == pytest.approx(base.final["natural_acc"], abs=0.08)
    for tensor in fast.model.state_dict().values():  # handed back in the layout callers expect
        assert tensor.is_contiguous()


@pytest.mark.parametrize("model", ["cnn", "lwta-cnn"])
def test_scoring_channels_last_gives_the_contiguous_scores(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring lays a CPU model out channels-last (faster) and back: the same accuracies, the layout restored."""
    import contextlib

    from trainables.evaluation import robustness

    torch.manual_seed(0)
    net = build_model(ModelConfig(name=model, cnn_width=8, hidden_blocks=16), INFO).eval()
    x, y = torch.rand(40, 1, 28, 28), torch.randint(0, 10, (40,))
    suite = SuiteConfig(attacks=(FGSM(), PGD(steps=3)), eot_samples=2,
                        predict_samples=2, gradients=("surrogate", "sampled"))
    seen: list[bool] = []
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    net.register_forward_pre_hook(lambda _, args: seen.append(conv.weight.is_contiguous()))
    last = evaluate_robustness(net, x, y, suite, ThreatModel()).as_dict()
    assert seen and not any(seen)  # every forward ran on the channels-last weights
    assert all(p.is_contiguous() for p in net.parameters())  # and the model is handed back as it came
    monkeypatch.setattr(robustness, "scoring_layout", lambda model, device: contextlib.nullcontext(model))
    seen.clear()
    plain = evaluate_robustness(net, x, y, suite, ThreatModel()).as_dict()
    assert seen and all(seen)
    assert last == pytest.approx(plain, abs=1e-9)


@pytest.mark.parametrize("mode", ["sample", "surrogate", "train"])
def test_lwta_keeps_a_channels_last_layout(mode: str) -> None:
    layer = LWTA(8, competitors=2, ibp=True).train(mode == "train")
    layer.surrogate = mode == "surrogate"
    h = torch.randn(3, 8, 5, 5).to(memory_format=torch.channels_last)
    out = layer(h)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert out.shape == h.shape


@pytest.mark.parametrize("op", ["relaxed_pair", "in_dtype"])
def test_relaxed_pair_in_bf16_follows_float32(op: str) -> None:
    """bf16 activations (autocast) give float32's result to bf16 precision, and gradients in the inputs' dtypes.

    On CPU :func:`relaxed_pair` computes in float32 (one cast, cheaper there); the op itself computes in
    the activations' dtype (CUDA's path), checked here through ``_RelaxedPair`` directly.
    """
    torch.manual_seed(0)
    h = torch.randn(4, 8, 6, 6)
    z = torch.rand(4, 8)
    noise = logistic_noise((4, 4, 6, 6), CPU)
    weight = torch.randn(4, 8, 6, 6)
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        hh = h.to(dtype, copy=True).requires_grad_(True)
        zz = z.clone().requires_grad_(True)
        fused = relaxed_pair(hh, zz, 0.67, noise=noise) if op == "relaxed_pair" else None
        out = fused if fused is not None else _RelaxedPair.apply(hh, zz, noise, 0.67)
        assert out.dtype == (dtype if op == "in_dtype" else torch.float32)
        (out.float() * weight).sum().backward()
        assert hh.grad.dtype == dtype and zz.grad.dtype == torch.float32
        results.append((out.float(), hh.grad.float(), zz.grad))
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want, rtol=0.05, atol=0.05 * want.abs().max().item())


def test_training_data_moves_once_to_the_device(fmnist: Splits) -> None:
    same = fmnist.train.to("cpu")
    assert same is fmnist.train
    spec = replace(_spec("auto", "auto"), train=replace(_spec("auto", "auto").train, epochs=1))
    assert fit(spec, Splits(fmnist.train.head(64), fmnist.val.head(20), fmnist.test, fmnist.info)).history


def test_scoring_leaves_a_channels_last_model_channels_last() -> None:
    """The training loop's model is channels-last on CPU; its per-epoch scoring must not turn it back."""
    net = build_model(ModelConfig(name="cnn", cnn_width=8), INFO).to(memory_format=torch.channels_last)
    suite = SuiteConfig(attacks=(FGSM(),))
    evaluate_robustness(net, torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)), suite, ThreatModel())
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
