"""TRADES (its loss, its KL-climbing PGD, which attacks of a mix it changes, a run on it), MART; the radius warm-up."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainables.attacks import FGSM, PGD, PGDKL, ThreatModel
from trainables.data import DATASETS, DataConfig, Splits
from trainables.evaluation import SuiteConfig
from trainables.models import ModelConfig, build_model
from trainables.train import AttackMix, RunSpec, TrainConfig, fit
from trainables.train.losses import mart_loss, run_loss, trades_loss
from trainables.train.mix import radius_share, training_attacks, warmed_up

INFO = DATASETS["fashion-mnist"][0]


def test_the_trades_loss_is_clean_cross_entropy_plus_beta_times_the_kl() -> None:
    clean, adv, y = torch.randn(5, 10), torch.randn(5, 10), torch.randint(0, 10, (5,))
    kl = (F.softmax(clean, 1) * (F.log_softmax(clean, 1) - F.log_softmax(adv, 1))).sum(1).mean()
    want = F.cross_entropy(clean, y) + 6.0 * kl
    torch.testing.assert_close(trades_loss(clean, adv, y, 6.0), want)
    torch.testing.assert_close(trades_loss(clean, clean, y, 6.0), F.cross_entropy(clean, y))


def test_the_mart_loss_is_boosted_cross_entropy_plus_beta_times_the_misclassification_weighted_kl() -> None:
    clean, adv, y = torch.randn(6, 10), torch.randn(6, 10), torch.randint(0, 10, (6,))
    p_adv, p_clean = F.softmax(adv, 1), F.softmax(clean, 1)
    rows = []
    for i in range(6):  # the authors' formula, one example at a time
        top_wrong = max(p_adv[i, k] for k in range(10) if k != y[i])
        bce = -torch.log(p_adv[i, y[i]]) - torch.log(1.0001 - top_wrong)
        kl = (p_clean[i] * (torch.log(p_clean[i]) - torch.log(p_adv[i] + 1e-12))).sum()
        rows.append((bce, kl * (1 - p_clean[i, y[i]])))
    want = torch.stack([b for b, _ in rows]).mean() + 6.0 * torch.stack([r for _, r in rows]).mean()
    torch.testing.assert_close(mart_loss(clean, adv, y, 6.0), want)
    cfg = TrainConfig(mart_beta=6.0)
    torch.testing.assert_close(run_loss(adv, clean, y, cfg), want)  # what a run trains on
    assert training_attacks(AttackMix.parse("pgd:1", budgets=(PGD(steps=3),)), ThreatModel(0.1), cfg.trades_beta)[0] \
        == PGD(steps=3).bind(ThreatModel(0.1))  # its PGD climbs the cross-entropy, as plain training's
    for bad in ({"clean_weight": 0.2}, {"trades_beta": 6.0}):
        with pytest.raises(ValueError, match="MART loss holds its own clean term"):
            TrainConfig(mart_beta=6.0, **bad)
    with pytest.raises(ValueError, match="mart_beta"):
        TrainConfig(mart_beta=float("nan"))


def test_trades_pgd_climbs_the_kl_inside_the_ball() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8), INFO).eval()
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    attack = PGDKL.of(PGD(steps=5).bind(ThreatModel(0.1)))
    assert attack.name == "pgd-kl" and attack.budget() == PGD(steps=5).budget()

    def kl(x_adv: torch.Tensor) -> float:
        with torch.no_grad():
            return float(F.kl_div(F.log_softmax(model(x_adv), 1), F.log_softmax(model(x), 1), reduction="batchmean",
                                  log_target=True))

    x_adv = attack.perturb(model, x, y)
    noise = (x + torch.empty_like(x).uniform_(-0.1, 0.1)).clamp(0, 1)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    assert kl(x_adv) > 5 * kl(noise)


def test_only_trades_runs_swap_pgd_for_its_kl_pgd() -> None:
    mix = AttackMix.parse("none:1,pgd:1,fgsm:1", budgets=(PGD(steps=3),))
    threat = ThreatModel(0.1)
    assert training_attacks(mix, threat, 0.0) == mix.bound(threat)
    none, pgd, fgsm = training_attacks(mix, threat, 6.0)
    assert none is None and type(pgd) is PGDKL and pgd.eps == 0.1 and pgd.steps == 3 and type(fgsm) is FGSM
    with pytest.raises(ValueError, match="TRADES loss holds its own clean term"):
        TrainConfig(clean_weight=0.2, trades_beta=6.0)
    with pytest.raises(ValueError, match="trades_beta"):
        TrainConfig(trades_beta=-1.0)


def test_the_training_radius_warms_up_linearly_then_stays() -> None:
    assert [radius_share(0.0, s, 100) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert [radius_share(0.2, s, 100) for s in (0, 9, 19, 20, 99)] == [0.05, 0.5, 1.0, 1.0, 1.0]
    pgd = PGD(steps=3).bind(ThreatModel(0.2))
    assert warmed_up(pgd, 0.25).eps == pytest.approx(0.05) and warmed_up(pgd, 0.25).steps == 3
    assert warmed_up(pgd, 1.0) is pgd and warmed_up(None, 0.5) is None
    with pytest.raises(ValueError, match="eps_warmup"):
        TrainConfig(eps_warmup=1.0)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["trades_beta", "mart_beta"])
def test_a_trades_or_mart_run_learns(fmnist: Splits, loss: str) -> None:
    data = Splits(fmnist.train.head(2048), fmnist.val.head(200), fmnist.test.head(64), fmnist.info)
    spec = RunSpec(data=DataConfig(), model=ModelConfig(name="cnn", hidden_blocks=32),
                   train=TrainConfig(epochs=2, batch_size=128, eval_limit=200, precision="fp32", **{loss: 6.0},
                                     mix=AttackMix.parse("pgd:1", budgets=(PGD(steps=3),))),
                   suite=SuiteConfig(attacks=(FGSM(), PGD(steps=5)), eot_samples=1, predict_samples=1))
    final = fit(spec, data).final
    assert final["natural_acc"] > 0.5 and 0.05 < final["robust_acc"] <= final["natural_acc"]
