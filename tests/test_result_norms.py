"""Worst case per threat model (L-inf, L2) in RobustResult, through evaluation, sharding and as_dict."""

from __future__ import annotations

import pytest
import torch
from fitting import adam_steps
from torch import Tensor, nn

from trainables.attacks import APGDCE, FGSM, PGDL2, CarliniWagnerL2, GaussianNoise, ThreatModel
from trainables.data import Splits
from trainables.evaluation import RobustResult, SuiteConfig, evaluate_robustness, outcome_norm, sharded
from trainables.models import ModelConfig, build_model


@pytest.fixture(scope="module")
def cnn(fmnist: Splits) -> tuple[nn.Module, Tensor, Tensor]:
    """A small CNN trained for ~1 s, with 100 test images and labels."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=16), fmnist.info)
    return adam_steps(model, fmnist, 80), fmnist.test.floats()[:100], fmnist.test.labels[:100]


THREAT = ThreatModel(0.08, 1.5)


def _suite(*attacks, **settings) -> SuiteConfig:
    return SuiteConfig(attacks=tuple(attacks), **settings)


def _check_norms(result: RobustResult) -> None:
    combined = result.natural.clone()
    for norm in result.attacked_norms:
        per_norm = result.worst_for(norm)
        assert not (per_norm & ~result.natural).any(), norm  # never above natural
        assert not (result.worst & ~per_norm).any(), norm  # never below the overall worst case
        assert result.worst_acc <= result.worst_acc_for(norm) <= result.natural_acc
        combined &= per_norm
    assert torch.equal(combined, result.worst)  # the overall worst case is the AND of the per-norm ones


@pytest.mark.parametrize("cascade", [False, True])
def test_per_norm_worst_case_lies_between_natural_and_overall_worst(cascade, cnn):
    model, x, y = cnn
    suite = _suite(FGSM(), APGDCE(steps=5), PGDL2(steps=5), CarliniWagnerL2(steps=10), cascade=cascade)
    result = evaluate_robustness(model, x, y, suite, THREAT)
    assert dict(result.norms) == {"fgsm": "linf", "apgd-ce": "linf", "pgd-l2": "l2", "cw": "l2"}
    assert result.attacked_norms == ("linf", "l2")
    _check_norms(result)
    d = result.as_dict()
    assert d["robust_acc"] == result.worst_acc  # unchanged meaning: every attack
    assert d["robust_acc/linf"] == result.worst_acc_for("linf") and d["robust_acc/l2"] == result.worst_acc_for("l2")
    assert min(d["acc/fgsm"], d["acc/apgd-ce"]) >= d["robust_acc/linf"] >= d["robust_acc"]
    assert d["robust_acc/linf"] < d["natural_acc"] and d["robust_acc/l2"] < d["natural_acc"]


def test_only_attacked_norms_reach_as_dict(cnn):
    model, x, y = cnn
    linf = evaluate_robustness(model, x, y, _suite(FGSM(), GaussianNoise()), THREAT)  # gaussian noise: the L-inf ball
    assert set(linf.as_dict()) == {"natural_acc", "robust_acc", "robust_acc/linf", "acc/fgsm", "acc/gaussian"}
    assert torch.equal(linf.worst_for("linf"), linf.worst) and torch.equal(linf.worst_for("l2"), linf.natural)
    l2 = evaluate_robustness(model, x, y, _suite(CarliniWagnerL2(steps=5)), THREAT)
    assert set(l2.as_dict()) == {"natural_acc", "robust_acc", "robust_acc/l2", "acc/cw"}
    with pytest.raises(ValueError, match="'l1'"):
        l2.worst_for("l1")


def test_outcome_keys_name_their_attack():
    assert [outcome_norm(k) for k in ("pgd", "pgd/sampled", "cw/surrogate", "gaussian", "apgd-dlr/sampled")] == \
        ["linf", "linf", "l2", "linf", "linf"]
    with pytest.raises(ValueError, match="'bogus'"):
        outcome_norm("bogus/sampled")


def test_per_norm_outcomes_survive_sharding(cnn, monkeypatch):
    """Rank 0 of two, with the other rank's examples equal to its own: the gathered result keeps the norms."""
    model, x, y = cnn
    x, y = x[:40].repeat_interleave(2, dim=0), y[:40].repeat_interleave(2)  # example 2i == example 2i + 1
    monkeypatch.setattr(sharded, "_world", lambda: (0, 2))
    monkeypatch.setattr(sharded.dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(sharded, "_gather_outcomes", lambda rows, n, world: rows.repeat_interleave(world, dim=1))
    suite = _suite(FGSM(), CarliniWagnerL2(steps=10))  # deterministic: both ranks would give the same outcomes
    gathered = sharded.evaluate_sharded(model, x, y, suite, THREAT)
    one = evaluate_robustness(model, x, y, suite, THREAT)
    assert gathered.norms == one.norms and gathered.as_dict() == one.as_dict()
    _check_norms(gathered)
    rebuilt = RobustResult.from_outcomes(one.natural, dict(one.per_attack))
    assert all(torch.equal(rebuilt.worst_for(n), one.worst_for(n)) for n in ("linf", "l2"))


def test_a_cascade_runs_per_threat_model(cnn):
    """An L-inf attack that breaks every example leaves the L2 ball's cascade untouched: its worst case is its own."""
    model, x, y = cnn
    suite = SuiteConfig(attacks=(FGSM(), PGDL2(steps=3)), cascade=True)
    result = evaluate_robustness(model, x, y, suite, ThreatModel(1.0, 0.05))
    assert result.worst_acc_for("linf") == 0.0  # eps 1 turns every image into a sign pattern
    assert result.worst_acc_for("l2") > 0.5 * result.natural_acc  # a tiny L2 ball: most stay robust
    assert result.worst_acc == 0.0
