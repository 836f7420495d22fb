"""Tests for APGD-CE, APGD-DLR and APGD-L2: threat-model contract, torchattacks parity, EOT, suites, errors."""

from __future__ import annotations

import pytest
import torch
from fitting import accuracy, adam_steps, attack_accuracy
from test_attacks import CountingModel
from torch import Tensor, nn

from trainables.attacks import APGDCE, APGDDLR, APGDL2, PGD, PGDL2, ThreatModel
from trainables.attacks.apgd import dlr_loss
from trainables.attacks.base import l2_norms
from trainables.data import Splits
from trainables.evaluation import SuiteConfig, evaluate_robustness
from trainables.models import ModelConfig, build_model
from trainables.models.base import predict

EPS = 0.05
L2_EPS = 1.0


@pytest.fixture(scope="module")
def cnn(fmnist: Splits) -> tuple[nn.Module, Tensor, Tensor]:
    """A deterministic small CNN trained for ~2 s on Fashion-MNIST, with 200 test images and labels."""
    torch.manual_seed(0)
    model = adam_steps(build_model(ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=16), fmnist.info),
                 fmnist, steps=150)
    return model, fmnist.test.floats()[:200], fmnist.test.labels[:200]


@pytest.fixture(scope="module")
def lwta(fmnist: Splits) -> nn.Module:
    """A stochastic LWTA CNN trained for a few steps."""
    torch.manual_seed(0)
    cfg = ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8)
    return adam_steps(build_model(cfg, fmnist.info), fmnist, steps=40)


# ------------------------------------------------------------------------------ threat-model contract
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("cls", [APGDCE, APGDDLR])
def test_apgd_contract(cls, training, cnn):
    model, x, y = cnn
    x, y = x[:64], y[:64]
    x_before = x.clone()
    model.train(training)
    try:
        torch.manual_seed(0)
        x_adv = cls(eps=EPS, steps=10).perturb(model, x, y)
        assert model.training is training
    finally:
        model.eval()
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert torch.equal(x, x_before) and not torch.isnan(x_adv).any()
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - x).abs().max() <= EPS + 1e-6
    assert (x_adv != x).flatten(1).any(dim=1).all()
    assert all(p.grad is None for p in model.parameters())


def test_eps_zero_returns_the_inputs(cnn):
    model, x, y = cnn
    assert torch.equal(APGDCE(eps=0.0).perturb(model, x[:8], y[:8]), x[:8])


def test_apgd_l2_stays_in_the_l2_ball(cnn):
    model, x, y = cnn
    x, y = x[:64], y[:64]
    torch.manual_seed(0)
    x_adv = APGDL2(eps=L2_EPS, steps=10).perturb(model, x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad and not torch.isnan(x_adv).any()
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (l2_norms(x_adv - x) <= L2_EPS + 1e-5).all()
    assert (x_adv - x).abs().max() > EPS  # an L2 step, not an L-inf one: single pixels move further
    assert APGDL2.norm == "l2" and APGDL2(steps=3).bind(ThreatModel(EPS, L2_EPS)).eps == L2_EPS


# -------------------------------------------------------------------------------------- strength
def test_matches_torchattacks_and_beats_pgd(cnn):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = cnn
    steps = 20
    natural = accuracy(model, x, y)
    ours = {"ce": attack_accuracy(APGDCE(eps=EPS, steps=steps), model, x, y),
            "dlr": attack_accuracy(APGDDLR(eps=EPS, steps=steps), model, x, y)}
    reference = {loss: torchattacks.APGD(model, eps=EPS, steps=steps, n_restarts=1, loss=loss, seed=0)
                 for loss in ("ce", "dlr")}
    theirs = {loss: accuracy(model, attack(x, y), y) for loss, attack in reference.items()}
    model.zero_grad(set_to_none=True)
    pgd = attack_accuracy(PGD(eps=EPS, steps=steps), model, x, y)
    print(f"natural {natural:.3f} ours {ours} torchattacks {theirs} pgd {pgd:.3f}")
    assert natural > 0.7 and ours["ce"] < natural - 0.1
    for loss in ("ce", "dlr"):
        assert abs(ours[loss] - theirs[loss]) <= 0.03 + 1e-9, loss
    assert ours["ce"] <= pgd + 0.01


def test_apgd_l2_matches_torchattacks_and_beats_pgd_l2(cnn):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = cnn
    steps = 20
    ours = attack_accuracy(APGDL2(eps=L2_EPS, steps=steps), model, x, y)
    reference = torchattacks.APGD(model, norm="L2", eps=L2_EPS, steps=steps, n_restarts=1, loss="ce", seed=0)
    theirs = accuracy(model, reference(x, y), y)
    model.zero_grad(set_to_none=True)
    pgd = attack_accuracy(PGDL2(eps=L2_EPS, steps=steps), model, x, y)
    print(f"natural {accuracy(model, x, y):.3f} ours {ours:.3f} torchattacks {theirs:.3f} pgd-l2 {pgd:.3f}")
    assert ours < accuracy(model, x, y) - 0.1
    assert abs(ours - theirs) <= 0.03 + 1e-9
    assert ours <= pgd + 0.01


def test_more_restarts_only_fool_more(cnn):
    model, x, y = cnn
    torch.manual_seed(3)
    one = predict(model, APGDCE(eps=EPS, steps=5).perturb(model, x, y)) != y
    torch.manual_seed(3)
    three = predict(model, APGDCE(eps=EPS, steps=5, restarts=3).perturb(model, x, y)) != y
    assert not (one & ~three).any() and three.sum() >= one.sum()


# --------------------------------------------------------------------------------- EOT and suites
@pytest.mark.parametrize("cls", [APGDCE, APGDDLR, APGDL2])
def test_eot_draws_only_on_stochastic_models(cls, cnn, lwta):
    model, x, y = cnn
    attack = cls(eps=EPS, steps=4, eot_samples=3)
    stochastic, deterministic = CountingModel(lwta), CountingModel(model)
    x_adv = attack.perturb(stochastic, x[:16], y[:16])
    attack.perturb(deterministic, x[:16], y[:16])
    assert stochastic.calls == (4 + 1) * 3 and deterministic.calls == 4 + 1  # the start and every step
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - x[:16]).abs().max() <= EPS + 1e-6
    assert not torch.isnan(x_adv).any() and not lwta.training and all(p.grad is None for p in lwta.parameters())


def test_suite_runs_apgd_both_ways_on_a_stochastic_model(lwta, cnn):
    _, x, y = cnn
    suite = SuiteConfig(attacks=(APGDCE(steps=5), APGDDLR(steps=5)), eot_samples=2, predict_samples=2,
                        gradients=("surrogate", "sampled"))
    result = evaluate_robustness(lwta, x[:64], y[:64], suite, ThreatModel(EPS, None))
    assert list(result.per_attack) == ["apgd-ce", "apgd-ce/sampled", "apgd-dlr", "apgd-dlr/sampled"]
    assert result.worst_acc < result.natural_acc
    for robust in result.per_attack.values():
        assert not (result.worst & ~robust).any() and not (robust & ~result.natural).any()
    assert set(result.as_dict()) >= {"robust_acc", "robust_acc/linf"} and "robust_acc/l2" not in result.as_dict()
    assert result.as_dict()["robust_acc/linf"] == result.worst_acc
    assert all(p.grad is None for p in lwta.parameters()) and not lwta.training


def test_budget_assignments_reach_apgd():
    budget = [(None, "steps", "7"), ("apgd-dlr", "rho", "0.5")]
    suite = SuiteConfig().select(["apgd-ce", "apgd-dlr"]).with_budget(budget)
    assert suite.attacks == (APGDCE(steps=7), APGDDLR(steps=7, rho=0.5))
    assert SuiteConfig.from_dict(suite.to_dict()) == suite


# ----------------------------------------------------------------------------------------- errors
def test_dlr_needs_three_classes():
    two = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        APGDDLR(eps=0.1, steps=2).perturb(two, torch.rand(5, 1, 2, 2), torch.zeros(5, dtype=torch.long))
    assert dlr_loss(torch.tensor([[3.0, 1.0, 0.0]]), torch.tensor([1])).item() == pytest.approx(2 / 3)


@pytest.mark.parametrize("make, match", [
    (lambda: APGDCE(eps=0.1, steps=0), "steps=0"),
    (lambda: APGDDLR(eps=0.1, restarts=0), "restarts=0"),
    (lambda: APGDCE(eps=0.1, rho=1.5), "rho=1.5"),
    (lambda: APGDCE(eps=-0.1), "-0.1"),
])
def test_invalid_budget_raises_with_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()
