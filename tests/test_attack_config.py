"""Attacks as units of configuration: threat model, specs with budgets, suites, mixes, cascade, formats."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import PRESETS
from trainables.attacks import (
    FGSM,
    PGD,
    PGDL2,
    CarliniWagnerL2,
    GaussianNoise,
    ThreatModel,
    attack_from_dict,
    parse_assignments,
)
from trainables.attacks.base import l2_norms
from trainables.evaluation import SuiteConfig, SuiteOverrides, add_suite_arguments, evaluate_robustness
from trainables.models.base import Normalize, predict
from trainables.train import AttackMix, RunSpec, paper_mix


@pytest.fixture(scope="module")
def mlp(fmnist) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small MLP trained for 200 steps on real Fashion-MNIST, and 200 test images."""
    torch.manual_seed(0)
    model = nn.Sequential(Normalize((0.286,), (0.353,)), nn.Flatten(), nn.Linear(784, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = fmnist.train.floats(), fmnist.train.labels
    for _ in range(200):
        idx = torch.randint(0, len(x), (128,))
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    test = fmnist.test.head(200)
    return model.eval(), test.floats(), test.labels


# ------------------------------------------------------------------------------------- threat model
def test_one_threat_model_sets_every_attacks_radius() -> None:
    threat = ThreatModel(eps=0.05, l2_eps=0.8)
    assert PGD().bind(threat).eps == FGSM().bind(threat).eps == GaussianNoise().bind(threat).eps == 0.05
    assert PGDL2().bind(threat).eps == CarliniWagnerL2().bind(threat).eps == 0.8
    assert threat.scaled(2.0) == ThreatModel(0.1, 1.6) and ThreatModel(0.1, None).scaled(2.0).l2_eps is None
    with pytest.raises(ValueError, match="no L2 radius"):
        PGDL2().bind(ThreatModel(0.1, None))


# ---------------------------------------------------------------------------------------- budgets
def test_budget_assignments_parse_and_set_only_existing_settings() -> None:
    assert parse_assignments(["pgd.steps=20,restarts=2", "cw.c=0.5"]) == (
        ("pgd", "steps", "20"), (None, "restarts", "2"), ("cw", "c", "0.5"))
    suite = SuiteConfig(attacks=(FGSM(), PGD(), PGDL2(), CarliniWagnerL2()))
    changed = suite.with_budget(parse_assignments("pgd.steps=20,restarts=2,cw.bounded=false,pgd.step_size=none"))
    by_name = dict(zip(changed.names(), changed.attacks, strict=True))
    assert by_name["pgd"] == PGD(steps=20, restarts=2) and by_name["pgd-l2"] == PGDL2(restarts=2)
    assert by_name["cw"] == CarliniWagnerL2(bounded=False) and by_name["fgsm"] == FGSM()
    for bad, match in (("steps", "SETTING=VALUE"), (".steps=1", "SETTING=VALUE"), ("fgsm.steps=3", "fgsm.steps"),
                       ("pgd.restarts=1.5", "takes int"), ("cw.bounded=maybe", "takes bool"),
                       ("pgd.step_size=inf", "pgd.step_size must be finite"), ("cw.c=nan", "cw.c must be finite")):
        with pytest.raises(ValueError, match=match):
            suite.with_budget(parse_assignments(bad))


def test_command_line_overrides_make_a_suite_the_same_way_everywhere() -> None:
    parser = argparse.ArgumentParser()
    add_suite_arguments(parser)
    args = parser.parse_args(["--attacks", "pgd,fgsm,gaussian", "--epsilon", "0.2", "--budget", "pgd.steps=3",
                              "--eot-samples", "2", "--no-cascade"])
    overrides = SuiteOverrides.from_args(args)
    suite = overrides.apply(PRESETS["quick"].objective_suite)
    assert suite.names() == ("pgd", "fgsm", "gaussian") and overrides.threat(PRESETS["quick"].threat) == \
        ThreatModel(0.2, 1.5)
    assert suite.attacks[0] == PGD(steps=3)  # the base suite's budget, then the override
    assert suite.attacks[2] == GaussianNoise()  # not in the base suite: the attack's own defaults
    assert suite.eot_samples == 2 and not suite.cascade and suite.predict_samples == 4
    unchanged = SuiteOverrides.from_args(parser.parse_args([])).apply(PRESETS["quick"].objective_suite)
    assert unchanged == PRESETS["quick"].objective_suite


# --------------------------------------------------------------------------------------- formats
@pytest.mark.parametrize("preset", PRESETS.names())
def test_suites_mixes_and_runs_round_trip_through_json_dicts(preset: str) -> None:
    p = PRESETS[preset]
    for suite in (p.epoch_suite, p.objective_suite, p.export_suite):
        assert SuiteConfig.from_dict(suite.to_dict()) == suite
    assert AttackMix.from_dict(p.train.mix.to_dict()) == p.train.mix
    spec = RunSpec(data=p.data, model=p.model, train=p.train, suite=p.epoch_suite, threat=p.threat)
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert attack_from_dict({"name": "pgd", "steps": 3}) == PGD(steps=3)
    with pytest.raises(ValueError, match="no setting"):
        attack_from_dict({"name": "pgd", "eps": 0.3})


def test_a_run_holds_one_threat_model_and_refuses_a_suite_it_cannot_score() -> None:
    spec = RunSpec(suite=SuiteConfig(attacks=(FGSM(), PGDL2())), threat=ThreatModel(0.2, 0.8))
    assert spec.train_threat == ThreatModel(0.2, 0.8).scaled(spec.train.eps_scale)
    assert RunSpec.from_dict(spec.to_dict()).threat == ThreatModel(0.2, 0.8)
    assert "threat" not in spec.to_dict()["suite"]  # eps is written once, beside the suite
    with pytest.raises(ValueError, match="L2 radius"):
        RunSpec(suite=SuiteConfig(attacks=(PGDL2(),)), threat=ThreatModel(0.1, None))
    with pytest.raises(ValueError, match="unknown suite settings: eps"):
        RunSpec.from_dict({"suite": {"attacks": [{"name": "fgsm"}], "eps": 0.1}})  # format 1: no longer read


# ------------------------------------------------------------------------------------------- mix
def test_training_mix_keeps_budgets_and_zero_weights_when_reweighted() -> None:
    mix = AttackMix()
    assert mix.entries == paper_mix() and mix.weights() == (4.0, 1.0, 1.0, 1.0, 1.0)  # the paper's 0..7 draw
    pgd_only = mix.reweighted({"pgd": 1.0})
    assert pgd_only.names() == mix.names() and pgd_only.weights() == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert pgd_only.entries[3].attack == PGD(steps=7)
    grown = mix.reweighted({"pgd-l2": 2.0})
    assert grown.names()[-1] == "pgd-l2" and grown.entries[-1].attack == PGDL2()
    assert AttackMix.parse("pgd:2,none", budgets=(PGD(steps=3),)).entries[0].attack == PGD(steps=3)
    bound = mix.bound(ThreatModel(0.1, 1.5).scaled(0.5))
    assert bound[0] is None and bound[3].eps == 0.05 and bound[4].eps is None  # CW in a mix is minimum-norm
    draws = mix.draw(8000, torch.Generator().manual_seed(0))
    assert abs((draws == 0).float().mean().item() - 0.5) < 0.03  # "none" is drawn half the time
    for bad, match in (("deepfool:1", "unknown attack 'deepfool'"), ("pgd:0", "positive weight"),
                       ("pgd:x", "bad weight"), ("pgd:-1", ">= 0")):
        with pytest.raises(ValueError, match=match):
            AttackMix.parse(bad)
    with pytest.raises(ValueError, match="threat model"):
        AttackMix.parse("pgd:1", budgets=(PGD(eps=0.3),))


# --------------------------------------------------------------------------------------- cascade
def test_cascade_runs_each_attack_on_what_is_still_robust_and_keeps_its_examples(mlp) -> None:
    model, x, y = mlp
    suite = SuiteConfig(attacks=(FGSM(), PGD(steps=5)), cascade=True)
    result = evaluate_robustness(model, x, y, suite, ThreatModel(0.1, 1.5), keep_adversarial=True)
    fgsm, pgd = result.per_attack["fgsm"], result.per_attack["pgd"]
    assert not (pgd & ~fgsm).any() and torch.equal(pgd, result.worst)  # cumulative: robust after each attack
    broken_by_fgsm = result.natural & ~fgsm
    assert broken_by_fgsm.any()
    assert torch.equal(result.adversarial["pgd"][broken_by_fgsm], x[broken_by_fgsm])  # PGD never ran on them
    for name, ran in (("fgsm", result.natural), ("pgd", fgsm)):
        x_adv = result.adversarial[name]
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1, name
        fooled = ran & ~result.per_attack[name]  # what this attack broke: its kept example fools the model
        assert fooled.any() and (predict(model, x_adv[fooled]) != y[fooled]).all(), name
    assert l2_norms(result.adversarial["fgsm"] - x).max() > 0


def test_independent_attacks_do_not_change_each_others_outcome(mlp) -> None:
    model, x, y = mlp
    both = SuiteConfig(attacks=(FGSM(), PGD(steps=5)), cascade=False)
    alone = SuiteConfig(attacks=(PGD(steps=5),), cascade=False)
    threat = ThreatModel()
    first, second = evaluate_robustness(model, x, y, both, threat), evaluate_robustness(model, x, y, alone, threat)
    assert torch.equal(first.per_attack["pgd"], second.per_attack["pgd"])  # each attack has its own stream
    cascade = evaluate_robustness(model, x, y, SuiteConfig(attacks=(FGSM(), PGD(steps=5))), threat)

    assert abs(cascade.worst_acc - first.worst_acc) <= 0.02  # the same quantity, estimated on fewer attack runs
