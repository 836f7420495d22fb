"""Search spaces: known-good points, mapping onto valid runs, seeded reproducibility, buildable models."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
import torch

from search_spaces import PRESETS, get_space, list_spaces
from trainables.data.sources import DATASETS
from trainables.models import build_model
from trainables.smoothing import SmoothedModel
from trainables.train import AttackMix, RunSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

QUICK_INFO = DATASETS[PRESETS["quick"].data.name][0]


def _drawn(mix: AttackMix) -> dict[str, float]:
    return {name: w for name, w in zip(mix.names(), mix.weights(), strict=True) if w > 0}


def _sample(name: str, preset: str, n: int = 5) -> list[dict[str, Any]]:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    params = []
    for _ in range(n):
        trial = study.ask()
        get_space(name).define(trial, PRESETS[preset])
        params.append(dict(trial.params))
        study.tell(trial, sum(v for v in trial.params.values() if isinstance(v, float)))
    return params


def _valid(spec: RunSpec) -> None:
    assert isinstance(spec, RunSpec)
    assert RunSpec.from_dict(spec.to_dict()) == spec  # every part passes its own validation


def test_registry_has_every_family_and_rejects_unknown_names() -> None:
    assert {"adversarial", "lwta", "pni", "smoothing"} <= set(list_spaces())
    assert all(get_space(name).description for name in list_spaces())
    with pytest.raises(ValueError, match="no-such-space"):
        get_space("no-such-space")


@pytest.mark.parametrize("preset", ["quick", "paper"])
@pytest.mark.parametrize("name", list_spaces())
def test_points_to_evaluate_fit_the_space_and_give_valid_runs(name: str, preset: str) -> None:
    space, p = get_space(name), PRESETS[preset]
    points = space.points_to_evaluate(p)
    assert points
    for point in points:
        trial = optuna.trial.FixedTrial(point)
        space.define(trial, p)  # raises when a suggested parameter is missing
        assert set(trial.params) == set(point)  # and no key is left unused
        _valid(space.apply(space.fixed(p), point))


@pytest.mark.parametrize("preset", ["quick", "paper"])
@pytest.mark.parametrize("name", list_spaces())
def test_fixed_and_sampled_configs_give_valid_runs(name: str, preset: str) -> None:
    space, p = get_space(name), PRESETS[preset]
    base = space.fixed(p)
    _valid(base)
    assert base.data == p.data and base.model.name.endswith(p.architecture)
    for params in _sample(name, preset, n=3):
        _valid(space.apply(base, params))


@pytest.mark.parametrize("name", list_spaces())
def test_seeded_sampling_is_reproducible(name: str) -> None:
    assert _sample(name, "quick") == _sample(name, "quick")


@pytest.mark.parametrize("name", list_spaces())
def test_every_sampled_quick_config_builds_a_working_model(name: str) -> None:
    space, p = get_space(name), PRESETS["quick"]
    x = torch.rand(2, QUICK_INFO.channels, QUICK_INFO.size, QUICK_INFO.size)
    for params in _sample(name, "quick"):
        spec = space.apply(space.fixed(p), params)
        model = build_model(spec.model, QUICK_INFO).eval()
        with torch.no_grad():
            assert model(x).shape == (2, QUICK_INFO.classes)


def test_family_specific_settings_reach_the_run() -> None:
    quick = PRESETS["quick"]
    smoothing = get_space("smoothing")
    spec = smoothing.apply(smoothing.fixed(quick), smoothing.points_to_evaluate(quick)[0])
    assert spec.model.input_noise == 0.25 and _drawn(spec.train.mix) == {"none": 1.0}
    assert isinstance(build_model(spec.model, QUICK_INFO), SmoothedModel)
    pni = get_space("pni")
    spec = pni.apply(pni.fixed(quick), {"pni_init": 0.1, "clean_weight": 0.3, "mix_pgd": 1.0})
    assert spec.model.name == "pni-cnn" and spec.model.pni_init == 0.1 and spec.train.clean_weight == 0.3
    assert _drawn(spec.train.mix) == {"pgd": 1.0}
    adversarial = get_space("adversarial")
    spec = adversarial.apply(adversarial.fixed(quick), adversarial.points_to_evaluate(quick)[0])
    assert spec.model.name == "cnn" and spec.model.input_noise == 0.0
    assert _drawn(spec.train.mix) == {"pgd": 1.0} and spec.train_threat == quick.threat


def test_mix_suggestions_reweight_the_preset_mix_and_scale_its_radii() -> None:
    quick, lwta = PRESETS["quick"], get_space("lwta")
    params = {"mix_none": 0.5, "mix_pgd": 0.25, "eps_scale": 1.5, "step_ratio": 2.0}
    spec = lwta.apply(lwta.fixed(quick), params)
    assert spec.train.mix.names() == quick.train.mix.names()  # every attack keeps its place (and its budget)
    assert _drawn(spec.train.mix) == {"none": 0.5, "pgd": 0.25}
    pgd = spec.train.mix.bound(spec.train_threat)[spec.train.mix.names().index("pgd")]
    assert pgd.eps == pytest.approx(1.5 * quick.threat.eps) and pgd.steps == 3
    assert pgd.alpha == pytest.approx(2.0 * 1.5 * quick.threat.eps / 3)
    zeros = lwta.apply(lwta.fixed(quick), dict.fromkeys(("mix_none", "mix_gaussian", "mix_fgsm", "mix_pgd",
                                                         "mix_cw"), 0.0))
    assert _drawn(zeros.train.mix) == {"pgd": 1.0}  # all-zero weights fall back to PGD training
