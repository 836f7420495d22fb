"""Fast CPU tests of the model registry, LWTA, IBP and PNI layers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainables.data.info import DatasetInfo
from trainables.models import (
    LWTA,
    IBPIndicators,
    ModelConfig,
    NoiseInjection,
    build_model,
    is_stochastic,
    kumaraswamy_beta_kl,
    list_models,
    pni_parameters,
    surrogate_gradients,
)
from trainables.models.ibp import kumaraswamy_log_sample

INFO = DatasetInfo("tiny", channels=1, size=28, classes=10, mean=(0.5,), std=(0.25,))
LWTA_MODELS = [n for n in list_models() if n.startswith("lwta")]
PNI_MODELS = [n for n in list_models() if n.startswith("pni")]
PLAIN_MODELS = [n for n in list_models() if n in ("cnn", "wrn")]


def small_cfg(name: str, **kw: object) -> ModelConfig:
    return ModelConfig(name=name, depth=10, widen=1, competitors=2, hidden_blocks=4, **kw)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(4, 1, 28, 28)  # (B, C, H, W) in [0, 1]


def test_registry_lists_all_families() -> None:
    assert set(list_models()) >= {"cnn", "lwta-cnn", "pni-cnn", "wrn", "lwta-wrn", "pni-wrn"}


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_and_finite(name: str, x: torch.Tensor) -> None:
    model = build_model(small_cfg(name), INFO)
    for train in (True, False):
        model.train(train)
        out = model(x)
        assert out.shape == (4, INFO.classes)
        assert torch.isfinite(out).all()
    assert model.stochastic == (name not in PLAIN_MODELS)


_OTHER_VALUES = {"depth": 16, "widen": 2, "competitors": 4, "cnn_width": 8, "cnn_kernel": 3, "cnn_pool_first": True,
                 "hidden_blocks": 8, "lwta_layers": "dense", "temperature": 0.5, "inference": "argmax", "ibp": False,
                 "ibp_alpha": 5.0, "ibp_temperature": 0.5, "pni_init": 0.5}


@pytest.mark.parametrize("name", list_models())
def test_a_setting_left_off_the_card_does_not_change_the_model(name: str, x: torch.Tensor) -> None:
    base = small_cfg(name)
    settings = base.settings()
    assert settings["name"] == name and set(settings) < set(_OTHER_VALUES) | {"name", "input_noise"}

    def run(cfg: ModelConfig) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        torch.manual_seed(1)
        model = build_model(cfg, INFO).train()
        return model.state_dict(), model(x)

    state, out = run(base)
    for field, value in _OTHER_VALUES.items():
        if field in settings:
            continue
        try:
            other_state, other_out = run(ModelConfig(**{**vars(base), field: value}))
        except ValueError:  # refused by the builder (the WideResNet has no dense layer): never built differently
            continue
        assert other_state.keys() == state.keys(), field
        assert all(torch.equal(other_state[k], state[k]) for k in state), field
        assert torch.equal(other_out, out), field
    assert "input_noise" in small_cfg(name, input_noise=0.25).settings()


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="no-such-net"):
        build_model(small_cfg("no-such-net"), INFO)


def test_lwta_channels_not_divisible() -> None:
    with pytest.raises(ValueError, match="channels=7"):
        LWTA(7, competitors=2)


@pytest.mark.parametrize("shape", [(3, 12), (2, 12, 5, 5)])
@pytest.mark.parametrize("inference", ["sample", "argmax"])
def test_lwta_eval_one_winner_per_block(shape: tuple[int, ...], inference: str) -> None:
    layer = LWTA(12, competitors=3, inference=inference).eval()
    h = torch.randn(shape)
    out = layer(h)
    blocks = out.view(shape[0], 4, 3, *shape[2:])  # (B, K, U, ...)
    assert ((blocks != 0).sum(dim=2) == 1).all()
    winners = blocks != 0
    assert torch.equal(blocks[winners], h.view_as(blocks)[winners])  # raw value passes, sign kept
    if inference == "argmax":
        assert torch.equal(winners, h.view_as(blocks) == h.view_as(blocks).amax(dim=2, keepdim=True))
        assert torch.equal(out, layer(h))


def test_lwta_training_is_relaxed_mask() -> None:
    layer = LWTA(8, competitors=4, temperature=0.5).train()
    h = torch.randn(16, 8)
    mask = layer(h) / h  # (B, C) Gumbel-softmax weights
    assert torch.allclose(mask.view(16, 2, 4).sum(dim=2), torch.ones(16, 2), atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "sample", "argmax", "surrogate"])
@pytest.mark.parametrize("shape", [(4, 6), (3, 6, 5, 5)])
def test_lwta_pair_path_matches_reference(mode: str, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """U = 2 takes the logistic shortcut (fused while training); from the same Gumbel draws it gives the
    reference's outputs and gradients."""
    from trainables.models import fused
    from trainables.models import lwta as lwta_module

    layer = LWTA(6, competitors=2, temperature=0.5, inference="argmax" if mode == "argmax" else "sample")
    layer.train(mode == "train")
    layer.surrogate = mode == "surrogate"
    h = torch.randn(shape, requires_grad=True)
    gumbel = -torch.log(-torch.log(torch.rand(shape[0], 3, 2, *shape[2:])))  # (B, K, U, ...)
    logistic = gumbel[:, :, 0] - gumbel[:, :, 1]  # (B, K, ...)
    monkeypatch.setattr(lwta_module, "_gumbel_like", lambda x: gumbel)
    monkeypatch.setattr(lwta_module, "_logistic_like", lambda x: logistic)
    monkeypatch.setattr(fused, "logistic_noise",
                        lambda shape, device, dtype=torch.float32: logistic.to(dtype, copy=True))
    blocks = h.view(shape[0], 3, 2, *shape[2:])
    reference = (blocks * layer._mask(blocks)).view_as(h)
    fast = layer(h)
    assert torch.allclose(fast, reference, atol=1e-6)
    (g_ref,) = torch.autograd.grad((reference * torch.arange(h.numel()).view_as(h)).sum(), h)
    (g_fast,) = torch.autograd.grad((fast * torch.arange(h.numel()).view_as(h)).sum(), h)
    assert torch.allclose(g_fast, g_ref, atol=1e-4)


def test_lwta_pair_winner_frequency_follows_softmax() -> None:
    """Sampled winners of a pair follow Categorical(softmax(a, b)), as the Gumbel-max draw does."""
    layer = LWTA(2, competitors=2).eval()
    h = torch.tensor([[1.0, 0.0]]).expand(20000, 2)
    first = (layer(h)[:, 0] != 0).float().mean().item()
    assert abs(first - torch.sigmoid(torch.tensor(1.0)).item()) < 0.015


def test_lwta_surrogate_straight_through() -> None:
    layer = LWTA(6, competitors=3, inference="argmax").eval()
    h = torch.randn(5, 6, requires_grad=True)
    plain = layer(h)
    (grad_plain,) = torch.autograd.grad(plain.sum(), h)
    layer.surrogate = True
    surrogate = layer(h)
    (grad_surr,) = torch.autograd.grad(surrogate.sum(), h)
    assert torch.equal(plain, surrogate)  # forward keeps the hard sample
    losers = plain == 0
    assert (grad_plain[losers] == 0).all()
    assert (grad_surr[losers] != 0).all()  # gradient through the expected mask softmax(h)


def test_lwta_models_eval_argmax_deterministic(x: torch.Tensor) -> None:
    for name in LWTA_MODELS:
        model = build_model(small_cfg(name, inference="argmax", ibp=False), INFO).eval()
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", LWTA_MODELS + PNI_MODELS)
def test_stochastic_models_differ_at_eval(name: str, x: torch.Tensor) -> None:
    model = build_model(small_cfg(name), INFO).eval()
    assert is_stochastic(model)
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", list_models())
def test_kl_values(name: str) -> None:
    kl = build_model(small_cfg(name), INFO).kl()
    assert kl.dim() == 0 and torch.isfinite(kl)
    if name in LWTA_MODELS:
        assert kl > 0
    else:
        assert kl == 0


@pytest.mark.parametrize("name", LWTA_MODELS)
def test_kl_reaches_loss_gradients(name: str, x: torch.Tensor) -> None:
    model = build_model(small_cfg(name), INFO).train()
    y = torch.randint(0, INFO.classes, (4,))
    loss = F.cross_entropy(model(x), y) + model.kl() / 1000
    loss.backward()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)
    indicators = [m for m in model.modules() if isinstance(m, IBPIndicators)]
    assert indicators
    for ind in indicators:
        for p in (ind.a_raw, ind.b_raw, ind.logits):
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LWTA_MODELS)
def test_surrogate_input_gradients(name: str, x: torch.Tensor) -> None:
    model = build_model(small_cfg(name), INFO).eval()
    x = x.clone().requires_grad_(True)
    with surrogate_gradients(model):
        loss = F.cross_entropy(model(x), torch.zeros(4, dtype=torch.long))
        (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not any(getattr(m, "surrogate", False) for m in model.modules())  # flag restored


@pytest.mark.parametrize("name", PNI_MODELS)
def test_pni_alpha_gets_gradient(name: str, x: torch.Tensor) -> None:
    model = build_model(small_cfg(name, pni_init=0.2), INFO).train()
    alphas = pni_parameters(model)
    assert alphas and all(a.item() == pytest.approx(0.2) for a in alphas)
    F.cross_entropy(model(x), torch.zeros(4, dtype=torch.long)).backward()
    assert all(a.grad is not None and a.grad != 0 for a in alphas)


def test_pni_cnn_has_three_noise_layers() -> None:
    model = build_model(small_cfg("pni-cnn"), INFO)
    assert sum(isinstance(m, NoiseInjection) for m in model.modules()) == 3


def test_ibp_indicators_modes() -> None:
    ind = IBPIndicators(8, alpha=3.0, temperature=0.5, group=2)
    z_train = ind.train()(64)  # (B, C) relaxed
    assert z_train.shape == (64, 8) and ((z_train > 0) & (z_train < 1)).any()
    z_eval = ind.eval()(64)
    assert set(z_eval.unique().tolist()) <= {0.0, 1.0}
    z_surr = ind(64, surrogate=True)
    assert set(z_surr.detach().unique().tolist()) <= {0.0, 1.0} and z_surr.requires_grad


@pytest.mark.parametrize(("a", "b", "alpha"), [(2.0, 1.0, 3.0), (1.5, 2.5, 3.0), (4.0, 0.8, 1.5)])
def test_kumaraswamy_kl_matches_monte_carlo(a: float, b: float, alpha: float) -> None:
    at, bt = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    log_v = kumaraswamy_log_sample(at.expand(400_000), bt.expand(400_000), generator=gen)  # (S,)
    log_1m_va = torch.log(-torch.expm1(a * log_v))  # log(1 - v^a)
    log_q = math.log(a * b) + (a - 1) * log_v + (b - 1) * log_1m_va
    log_p = math.log(alpha) + (alpha - 1) * log_v  # Beta(alpha, 1) density
    mc = (log_q - log_p).mean().item()
    exact = kumaraswamy_beta_kl(at, bt, alpha).item()
    assert exact >= 0
    assert exact == pytest.approx(mc, rel=0.03, abs=2e-3)


def test_cnn_pool_first_is_the_same_relu_function(x: torch.Tensor) -> None:
    """Max-pooling commutes with ReLU: conv-pool-act computes what conv-act-pool does, from the same weights."""
    paper = build_model(small_cfg("cnn"), INFO).eval()
    swapped = build_model(small_cfg("cnn", cnn_pool_first=True), INFO).eval()
    swapped.load_state_dict(paper.state_dict())
    assert torch.allclose(paper(x), swapped(x), atol=1e-6)
    lwta = build_model(small_cfg("lwta-cnn", cnn_pool_first=True), INFO)
    assert [type(m).__name__ for m in lwta.features[:3]] == ["Conv2d", "MaxPool2d", "LWTA"]


def test_dense_only_lwta_competes_in_the_dense_layer_alone(x: torch.Tensor) -> None:
    """``lwta_layers="dense"``: ReLU after both convolutions, LWTA (with its IBP) in the dense layer only."""
    model = build_model(small_cfg("lwta-cnn", lwta_layers="dense", ibp=True), INFO)
    kinds = [type(m).__name__ for m in model.modules() if isinstance(m, (torch.nn.ReLU, LWTA))]
    assert kinds == ["ReLU", "ReLU", "LWTA"]
    assert model.act.channels == 4 * 2 and model.act.kl_divergence() is not None
    assert is_stochastic(model) and model(x).shape == (x.shape[0], 10)
    full = build_model(small_cfg("lwta-cnn", ibp=True), INFO)
    assert sum(isinstance(m, LWTA) for m in full.modules()) == 3  # "all", the default: every activation
    with pytest.raises(ValueError, match="dense hidden layer"):
        build_model(small_cfg("lwta-wrn", lwta_layers="dense"), INFO)
    with pytest.raises(ValueError, match="lwta_layers"):
        small_cfg("lwta-cnn", lwta_layers="convs")
