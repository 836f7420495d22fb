"""Tests for trainables.attacks: threat-model contract, strength, EOT, suite, torchattacks parity."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fitting import accuracy, attack_accuracy
from torch import Tensor, nn

from trainables.attacks import (
    ATTACKS,
    FGSM,
    PGD,
    PGDL2,
    CarliniWagnerL2,
    GaussianNoise,
    ThreatModel,
    attack_class,
    build_attack,
    input_gradient,
    list_attacks,
)
from trainables.attacks.base import l2_norms
from trainables.evaluation import SuiteConfig, evaluate_robustness
from trainables.models.base import Normalize, StochasticModule, predict

FASHION = Path("/usr/share/datasets/fashion-mnist")
CONTRACT_THREAT = ThreatModel(eps=0.1, l2_eps=3.0)


def _contract_attack(name: str, eot_samples: int = 1):
    """Every registered attack at its own default budget, bound to the contract's threat model."""
    return attack_class(name)().bind(CONTRACT_THREAT, eot_samples)


SUITE_THREAT = ThreatModel(0.1, 1.5)


def _suite(*attacks, **settings) -> SuiteConfig:
    return SuiteConfig(attacks=tuple(attacks), **settings)


# ----------------------------------------------------------------------------------------- helpers
def _fashion(split: str, n: int) -> tuple[Tensor, Tensor]:
    """First ``n`` Fashion-MNIST images (n, 1, 28, 28) in [0, 1] and labels (n,)."""
    with gzip.open(FASHION / f"{split}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + n * 784), np.uint8, offset=16).reshape(n, 1, 28, 28)
    with gzip.open(FASHION / f"{split}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + n), np.uint8, offset=8)
    return torch.from_numpy(images.copy()).float() / 255, torch.from_numpy(labels.copy()).long()


def _synthetic(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Fallback when Fashion-MNIST is absent: noisy class templates, separable but not trivially."""
    templates = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (0.12 * templates[y] + 0.88 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)
    return x, y


def _data(split: str, n: int) -> tuple[Tensor, Tensor]:
    if (FASHION / f"{split}-images-idx3-ubyte.gz").exists():
        return _fashion(split, n)
    return _synthetic(n, seed=0 if split == "train" else 1)


class NoisyLinear(StochasticModule):
    """Toy stochastic layer: logits = x @ (W + sigma * N(0, 1))^T, fresh noise on every call."""

    def __init__(self, weight: Tensor, sigma: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.sigma = sigma
        self.calls = 0
        self.log: list[tuple[bool, bool]] = []  # (grad enabled, surrogate) per call

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.log.append((torch.is_grad_enabled(), self.surrogate))
        w = self.weight + self.sigma * torch.randn_like(self.weight)  # (K, D)
        return x.flatten(1) @ w.T  # (B, K)


class CountingModel(nn.Module):
    """Wraps a deterministic model and counts forward passes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.inner(x)


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, Tensor, Tensor]:
    """A small MLP trained for 300 steps on 5000 Fashion-MNIST images, with 500 test images."""
    torch.manual_seed(0)
    x_train, y_train = _data("train", 5000)
    model = nn.Sequential(Normalize((0.286,), (0.353,)), nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(300):
        idx = torch.randint(0, len(x_train), (128,))
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    x_test, y_test = _data("t10k", 500)
    return model, x_test, y_test


@pytest.fixture(scope="module")
def ridge_weight() -> Tensor:
    """Ridge-regression weights (10, 784) of a linear classifier on 3000 training images."""
    x, y = _data("train", 3000)
    x = x.flatten(1)  # (N, 784)
    return torch.linalg.solve(x.T @ x + 10.0 * torch.eye(784), x.T @ F.one_hot(y, 10).float()).T


@pytest.fixture()
def noisy(ridge_weight) -> nn.Module:
    """A fresh stochastic linear classifier (weight noise 2% of the weight scale), call counters at 0."""
    torch.manual_seed(1)
    return nn.Sequential(NoisyLinear(ridge_weight, sigma=0.02 * ridge_weight.abs().mean().item())).eval()


# ------------------------------------------------------------------------------ threat-model contract
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", list_attacks())
def test_attack_contract(name, training, trained):
    model, x, y = trained
    x, y = x[:64], y[:64]
    x_before = x.clone()
    attack = _contract_attack(name)
    model.train(training)
    try:
        torch.manual_seed(0)
        x_adv = attack.perturb(model, x, y)
        assert model.training is training
    finally:
        model.eval()
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert torch.equal(x, x_before)
    assert not torch.isnan(x_adv).any()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    eps = attack.eps
    if attack.norm == "linf":
        assert (x_adv - x).abs().max() <= eps + 1e-6
    else:
        assert l2_norms(x_adv - x).max() <= eps + 1e-5
    changed = (x_adv != x).flatten(1).any(dim=1)  # (B,)
    assert (changed & (predict(model, x) == y)).any(), "vacuous: no correctly classified input was moved"
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", list_attacks())
def test_attack_contract_stochastic(name, noisy, trained):
    _, x, y = trained
    x, y = x[:32], y[:32]
    x_adv = _contract_attack(name, eot_samples=3).perturb(noisy, x, y)
    assert x_adv.shape == x.shape and not torch.isnan(x_adv).any()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert noisy.training is False and all(p.grad is None for p in noisy.parameters())


# ------------------------------------------------------------------------------- strength ordering
def test_pgd_at_least_as_strong_as_fgsm(trained):
    model, x, y = trained
    natural = accuracy(model, x, y)
    fgsm = attack_accuracy(FGSM(eps=0.05), model, x, y)
    pgd = attack_accuracy(PGD(eps=0.05, steps=10), model, x, y)
    assert natural > 0.6
    assert pgd <= fgsm + 0.01
    assert fgsm <= natural and pgd <= natural


@pytest.mark.parametrize("attack", [PGD(eps=1.0, steps=10), PGDL2(eps=28.0, steps=10)], ids=["linf", "l2"])
def test_huge_eps_drives_accuracy_to_zero(attack, trained):
    model, x, y = trained
    assert attack_accuracy(attack, model, x[:200], y[:200]) <= 0.02


@pytest.mark.parametrize("cascade", [False, True])
def test_eps_zero_keeps_accuracy(cascade, trained):
    model, x, y = trained
    cfg = SuiteConfig(cascade=cascade).select(list_attacks())
    cfg = cfg.with_budget([(None, "steps", 2)])
    result = evaluate_robustness(model, x[:200], y[:200], cfg, ThreatModel(0.0, 0.0))
    for name in cfg.names():
        assert torch.equal(result.per_attack[name], result.natural), name
    assert result.worst_acc == result.natural_acc > 0


# ------------------------------------------------------------------------------------------- suite
@pytest.mark.parametrize("cascade", [False, True])
@pytest.mark.parametrize("kind", ["mlp", "noisy"])
def test_worst_case_never_rises_when_attacks_are_added(kind, cascade, trained, noisy):
    model, x, y = trained
    model = model if kind == "mlp" else noisy
    x, y = x[:200], y[:200]
    specs = (FGSM(), PGD(steps=5), CarliniWagnerL2(steps=20))
    results = [evaluate_robustness(model, x, y, _suite(*specs[:k], eot_samples=2, predict_samples=2, seed=3,
                                                       cascade=cascade), ThreatModel(0.05, 1.5))
               for k in (1, 2, 3)]
    for small, big in zip(results, results[1:], strict=False):
        assert not (big.worst & ~small.worst).any()
        assert big.worst_acc <= small.worst_acc
    for r in results:
        assert not (r.worst & ~r.natural).any()
        for name, robust in r.per_attack.items():
            assert not (r.worst & ~robust).any() and not (robust & ~r.natural).any(), name
            assert r.worst_acc <= r.attack_acc(name) <= r.natural_acc


def test_result_as_dict_and_uint8_inputs(trained):
    model, x, y = trained
    x, y = x[:100], y[:100]
    cfg = _suite(FGSM(), GaussianNoise(), batch_size=32)
    result = evaluate_robustness(model, x, y, cfg, SUITE_THREAT)
    d = result.as_dict()
    assert set(d) == {"natural_acc", "robust_acc", "robust_acc/linf", "acc/fgsm", "acc/gaussian"}
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in d.values())
    assert d["robust_acc"] == result.worst_acc and result.n == 100
    as_uint8 = evaluate_robustness(model, (x * 255).round().to(torch.uint8), y, cfg, SUITE_THREAT)
    assert as_uint8.natural_acc == pytest.approx(result.natural_acc, abs=0.02)
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_suite_binds_radii_by_norm_and_eot_by_model():
    threat = ThreatModel(0.03, 0.5)
    cfg = SuiteConfig(eot_samples=5).select(
        ["fgsm", "pgd", "pgd-l2", "cw", "gaussian"]).with_budget([("pgd", "steps", "7")])
    deterministic, stochastic = cfg.bound(threat, stochastic=False), cfg.bound(threat, stochastic=True)
    assert list(deterministic) == list(cfg.names())
    assert deterministic["pgd"].eps == deterministic["fgsm"].eps == deterministic["gaussian"].eps == 0.03
    assert deterministic["pgd-l2"].eps == deterministic["cw"].eps == 0.5
    assert deterministic["pgd"].eot_samples == 1 and stochastic["pgd"].eot_samples == 5
    assert stochastic["cw"].eot_samples == 5 and stochastic["fgsm"].eot_samples == 5
    assert deterministic["pgd"].steps == 7 and deterministic["pgd-l2"].steps == PGDL2().steps
    assert CarliniWagnerL2(bounded=False).bind(threat).eps is None  # a training mix's minimum-norm CW


@pytest.mark.parametrize("way", ["surrogate", "sampled"])
def test_suite_attacks_stochastic_models_through_the_gradients_it_names(way, noisy, trained):
    _, x, y = trained
    layer = noisy[0]
    cfg = _suite(FGSM(), eot_samples=3, predict_samples=2, gradients=(way,))
    result = evaluate_robustness(noisy, x[:50], y[:50], cfg, SUITE_THREAT)
    grad_calls = [surrogate for grad, surrogate in layer.log if grad]
    assert result.natural.any() and len(grad_calls) == 3  # one FGSM step, three EOT draws
    assert all(s is (way == "surrogate") for s in grad_calls)
    assert layer.surrogate is False


@pytest.mark.parametrize("cascade", [False, True])
def test_both_ways_of_taking_gradients_give_one_worst_case(cascade, noisy, trained):
    model, x, y = trained
    x, y = x[:100], y[:100]
    both = _suite(FGSM(), PGD(steps=3), eot_samples=2, predict_samples=2, cascade=cascade,
                  gradients=("surrogate", "sampled"))
    assert both.outcome_keys() == ("fgsm", "fgsm/sampled", "pgd", "pgd/sampled")
    stochastic = evaluate_robustness(noisy, x, y, both, SUITE_THREAT)
    assert list(stochastic.per_attack) == list(both.outcome_keys())
    worst = stochastic.natural.clone()
    for outcome in stochastic.per_attack.values():
        worst &= outcome
    assert torch.equal(worst, stochastic.worst)
    surrogate_only = evaluate_robustness(noisy, x, y, replace(both, gradients=("surrogate",)), SUITE_THREAT)
    assert stochastic.worst_acc <= surrogate_only.worst_acc  # one more way of attacking never helps the model
    if not cascade:  # the surrogate runs keep their own streams: the same outcomes as without the sampled runs
        assert torch.equal(stochastic.per_attack["pgd"], surrogate_only.per_attack["pgd"])
    deterministic = evaluate_robustness(model, x, y, both, SUITE_THREAT)  # attacked once, standing for both ways
    assert torch.equal(deterministic.per_attack["pgd/sampled"], deterministic.per_attack["pgd"])


# -------------------------------------------------------------------------------------------- EOT
def test_eot_averages_gradients_over_k_draws(noisy, trained):
    _, x, y = trained
    x, y = x[:8], y[:8]
    layer = noisy[0]
    first_logit = lambda logits, _: logits[:, 0]  # noqa: E731  gradient = W_0 + noise_0 per draw

    layer.calls = 0
    torch.manual_seed(5)
    grad4, _ = input_gradient(noisy, x, y, first_logit, eot_samples=4)
    assert layer.calls == 4
    torch.manual_seed(5)
    singles = [input_gradient(noisy, x, y, first_logit, eot_samples=1)[0] for _ in range(4)]
    assert torch.allclose(grad4, torch.stack(singles).mean(0), atol=1e-6)

    expected = layer.weight[0].detach().view(1, 1, 28, 28).expand_as(x)  # E[grad] = W_0
    torch.manual_seed(6)
    err_1 = (input_gradient(noisy, x, y, first_logit, 1)[0] - expected).norm()
    err_64 = (input_gradient(noisy, x, y, first_logit, 64)[0] - expected).norm()
    assert err_64 < 0.5 * err_1
    assert all(p.grad is None for p in noisy.parameters())


@pytest.mark.parametrize("attack, calls", [(FGSM(eps=0.1, eot_samples=5), 5),
                                           (PGD(eps=0.1, steps=3, eot_samples=4), 12),
                                           (CarliniWagnerL2(steps=4, eot_samples=3), 12)])
def test_attacks_run_eot_draws_only_for_stochastic_models(attack, calls, noisy, trained):
    model, x, y = trained
    layer = noisy[0]
    layer.calls = 0
    attack.perturb(noisy, x[:8], y[:8])
    assert layer.calls == calls
    counting = CountingModel(model)
    attack.perturb(counting, x[:8], y[:8])
    assert counting.calls == calls // attack.eot_samples


# ----------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make, match", [
    (lambda: FGSM(eps=-0.1), "-0.1"),
    (lambda: PGD(eps=0.1, steps=0), "steps=0"),
    (lambda: PGD(eps=0.1, restarts=0), "restarts=0"),
    (lambda: PGDL2(eps=-1.5), "-1.5"),
    (lambda: PGD(eps=0.1, step_size=-0.01), "-0.01"),
    (lambda: CarliniWagnerL2(lr=0.0), "lr=0.0"),
    (lambda: CarliniWagnerL2(c=-2.0), "-2.0"),
    (lambda: CarliniWagnerL2(eps=-0.3), "-0.3"),
    (lambda: GaussianNoise(eps=0.1, sigma=-0.5), "-0.5"),
    (lambda: build_attack("nope", eps=0.1), r"'nope'.*fgsm, gaussian, pgd"),
    (lambda: SuiteConfig().select(["fgsm", "bogus"]), "bogus"),
    (lambda: SuiteConfig(attacks=("pgd",)), "pgd"),
    (lambda: SuiteConfig(attacks=(FGSM(), FGSM())), "repeat"),
    (lambda: SuiteConfig(attacks=(FGSM(eps=0.2),)), "threat model"),
    (lambda: SuiteConfig(attacks=(PGDL2(),)).check(ThreatModel(0.1, None)), "L2 radius"),
    (lambda: ThreatModel(eps=-0.2), "-0.2"),
    (lambda: ThreatModel(eps=float("inf")), "inf"),
    (lambda: ThreatModel(l2_eps=float("nan")), "nan"),
    (lambda: PGD(eps=float("inf")), "inf"),
    (lambda: SuiteConfig(eot_samples=0), "eot_samples=0"),
    (lambda: SuiteConfig(gradients=("adaptive",)), "adaptive"),
    (lambda: SuiteConfig(gradients="plain"), "plain"),
    (lambda: SuiteConfig().with_budget([("pgd", "stepz", "3")]), "stepz"),
    (lambda: SuiteConfig().with_budget([("pgd", "steps", "three")]), "three"),
    (lambda: SuiteConfig().with_budget([(None, "eps", "0.3")]), "threat model"),
    (lambda: FGSM().perturb(nn.Identity(), torch.rand(2, 3), torch.zeros(2).long()), "no eps"),
    (lambda: FGSM(eps=0.1).perturb(nn.Identity(), torch.full((2, 3), 1.5), torch.zeros(2).long()), "1.5"),
    (lambda: input_gradient(nn.Identity(), torch.rand(2, 3), torch.zeros(2).long(), eot_samples=0),
     "eot_samples=0"),
])
def test_invalid_input_raises_with_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_registry_matches_list():
    assert list_attacks() == sorted(ATTACKS) == ["apgd-ce", "apgd-dlr", "apgd-l2", "cw", "fgsm", "gaussian", "pgd",
                                                 "pgd-l2", "square"]
    assert isinstance(build_attack("pgd", eps=0.1), PGD) and build_attack("pgd", eps=0.1).alpha == 0.025
    assert all(attack_class(name).name == name for name in list_attacks())


# -------------------------------------------------------------------------------- torchattacks parity
EPS = 0.05


@pytest.mark.parametrize("name", ["fgsm", "pgd", "cw"])
def test_matches_torchattacks(name, trained):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = trained
    ours, theirs, tol = {
        "fgsm": (FGSM(eps=EPS), torchattacks.FGSM(model, eps=EPS), 0.01),
        "pgd": (PGD(eps=EPS, steps=10, step_size=2.5 * EPS / 10, random_start=True),
                torchattacks.PGD(model, eps=EPS, alpha=2.5 * EPS / 10, steps=10, random_start=True), 0.01),
        "cw": (CarliniWagnerL2(c=1.0, kappa=0.0, steps=50, lr=0.01),
               torchattacks.CW(model, c=1.0, kappa=0.0, steps=50, lr=0.01), 0.03),
    }[name]
    acc_ours = attack_accuracy(ours, model, x, y)
    torch.manual_seed(0)
    acc_theirs = accuracy(model, theirs(x, y), y)
    model.zero_grad(set_to_none=True)  # torchattacks.CW back-propagates into the parameters
    print(f"{name}: ours {acc_ours:.3f} torchattacks {acc_theirs:.3f} natural {accuracy(model, x, y):.3f}")
    assert abs(acc_ours - acc_theirs) <= tol + 1e-9



# ------------------------------------------------------------------------------ Square (gradient-free)
class Quantized(nn.Module):
    """Inputs rounded to 1/32 before ``inner``: its gradient is zero everywhere (masked), its decisions unchanged."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(torch.round(x * 32) / 32)


def test_square_breaks_a_model_whose_gradients_are_masked(trained):
    from trainables.attacks import Square

    model, x, y = trained
    masked = Quantized(model).eval()
    natural = accuracy(masked, x, y)
    pgd = attack_accuracy(PGD(eps=0.1, steps=10, random_start=False), masked, x, y)
    square = attack_accuracy(Square(eps=0.1, n_queries=200), masked, x, y)
    print(f"natural {natural:.3f} PGD {pgd:.3f} Square {square:.3f}")
    assert pgd >= natural - 0.01  # zero gradients: PGD without a random start goes nowhere
    assert square <= natural - 0.3  # the outputs alone give the model away


@pytest.mark.parametrize("query, queries, expected", [(5, 10000, 0.8), (30, 10000, 0.4), (9, 300, 0.1),
                                                       (299, 300, 0.8 / 2**9)])
def test_square_window_follows_the_paper_s_schedule(query, queries, expected):
    from trainables.attacks.square import square_fraction

    assert square_fraction(0.8, query, queries) == pytest.approx(expected)  # 9 of 300: 300 of 10,000, 3 halvings


def test_square_follows_up_where_its_first_run_broke_enough_and_nowhere_else(trained):
    from trainables.attacks import Square

    model, x, y = trained
    counted = CountingModel(model).eval()

    def robust(eps: float, follow_up: int) -> Tensor:
        suite = _suite(Square(n_queries=5, follow_up=follow_up), batch_size=len(y))  # one batch: one first run
        return evaluate_robustness(counted, x, y, suite, ThreatModel(eps)).worst  # (N,)

    short, longer = robust(EPS, 0), robust(EPS, 100)
    print(f"natural {accuracy(model, x, y):.3f} 5 queries {short.float().mean():.3f} "
          f"+ 100 on what stood {longer.float().mean():.3f}")
    assert bool((longer <= short).all())  # the same first run, then more: never less broken
    assert longer.sum() <= short.sum() - 10  # the follow-up finds what five queries did not
    faint = 1e-4  # a radius at which five queries break nothing: the follow-up spends no query
    counted.calls = 0
    robust(faint, 0)
    alone = counted.calls
    counted.calls = 0
    robust(faint, 100)
    assert counted.calls == alone


def test_square_matches_torchattacks(trained):
    torchattacks = pytest.importorskip("torchattacks")
    from trainables.attacks import Square

    model, x, y = trained
    ours = attack_accuracy(Square(eps=EPS, n_queries=300), model, x, y)
    theirs = accuracy(model, torchattacks.Square(model, norm="Linf", eps=EPS, n_queries=300, seed=0)(x, y), y)
    print(f"square: ours {ours:.3f} torchattacks {theirs:.3f} natural {accuracy(model, x, y):.3f}")
    assert abs(ours - theirs) <= 0.04


def test_a_gradient_free_attack_runs_once_on_a_stochastic_model_and_its_gap_is_measured(noisy, trained):
    from trainables.attacks import Square
    from trainables.evaluation import gradient_free_gap

    _, x, y = trained
    suite = _suite(FGSM(), Square(n_queries=30), gradients=("surrogate", "sampled"), eot_samples=2,
                   predict_samples=2, cascade=True)
    layer = noisy[0]
    result = evaluate_robustness(noisy, x[:100], y[:100], suite, SUITE_THREAT)
    assert torch.equal(result.per_attack["square"], result.per_attack["square/sampled"])
    assert sum(1 for grad, _ in layer.log if not grad) > 0
    gap = gradient_free_gap(result)
    fgsm = result.natural & result.per_attack["fgsm"] & result.per_attack["fgsm/sampled"]
    assert gap == pytest.approx(fgsm.float().mean().item() - result.worst.float().mean().item())
    assert gradient_free_gap(evaluate_robustness(noisy, x[:50], y[:50], _suite(FGSM()), SUITE_THREAT)) is None


def test_the_convergence_probe_breaks_what_a_too_short_attack_left_standing(trained):
    from trainables.attacks import APGDCE, Square
    from trainables.evaluation import PROBE_EXAMPLES, PROBE_STEPS, convergence_gap, probe_suite

    model, x, y = trained
    short = PGD(steps=2, step_size=0.004, random_start=False)  # 2 steps of 0.004 reach a third of the ball at most
    suite = _suite(short, Square(n_queries=5), PGDL2(steps=2), cascade=True)
    probe = probe_suite(suite)
    assert probe is not None and probe.attacks == (replace(short, steps=2 * PROBE_STEPS),)  # L-inf, iterative
    assert probe.seed != suite.seed and probe_suite(_suite(FGSM(), Square(n_queries=5))) is None
    threat = ThreatModel(0.025, 1.5)
    images, labels = x[:PROBE_EXAMPLES + 20], y[:PROBE_EXAMPLES + 20]
    weak = evaluate_robustness(model, images, labels, suite, threat)
    gap = convergence_gap(model, images, labels, suite, threat, weak)
    standing = weak.worst_for("linf")[:PROBE_EXAMPLES].float().mean().item()
    assert gap is not None and 0.03 <= gap <= standing  # twice the steps go further, never break more than stood
    strong = replace(suite, attacks=(FGSM(), APGDCE(steps=50)))
    assert convergence_gap(model, images, labels, strong, threat,
                           evaluate_robustness(model, images, labels, strong, threat)) < gap
