"""bench_levers: variants parse into the starting point's run with exactly the settings named changed."""

from __future__ import annotations

import pytest

from bench.bench_levers import main, parse_variant, scoring_suite, variant_spec
from search_spaces import PRESETS


def test_a_variant_changes_training_settings_and_space_parameters_of_the_starting_point() -> None:
    base = variant_spec(parse_variant("base:"))
    variant = parse_variant('tr:trades_beta=6,clean_weight=0,lwta_layers="all",seed=3')
    assert variant.train == {"trades_beta": 6, "clean_weight": 0, "seed": 3}
    assert variant.params == {"lwta_layers": "all"}
    spec = variant_spec(variant, epsilon=0.2, train_limit=500, epochs=2)
    assert base.train.clean_weight == 0.2 and base.model.lwta_layers == "dense"  # the space's first point
    assert spec.train.trades_beta == 6 and spec.train.clean_weight == 0 and spec.model.lwta_layers == "all"
    assert spec.train.seed == 3 and spec.train.epochs == 2 and spec.data.train_limit == 500
    assert spec.threat.eps == 0.2 and base.threat == PRESETS["quick"].threat
    assert spec.train_threat.eps == pytest.approx(0.2 * spec.train.eps_scale)


def test_a_variant_sets_the_training_mix_attack_budget() -> None:
    spec = variant_spec(parse_variant("fgsm-rs:pgd.steps=1,pgd.step_ratio=1.25"), epsilon=0.2)
    (pgd,) = [e.attack for e in spec.train.mix.entries if e.weight > 0]
    base = variant_spec(parse_variant("base:"))
    (base_pgd,) = [e.attack for e in base.train.mix.entries if e.weight > 0]
    assert (pgd.steps, pgd.step_ratio, pgd.random_start) == (1, 1.25, True)
    assert base_pgd.steps == 3 and base_pgd.step_ratio == 2.5
    assert pgd.bind(spec.train_threat).alpha == pytest.approx(1.25 * spec.train_threat.eps)  # FGSM-RS


@pytest.mark.parametrize(("text", "needle"), [("nameless", "NAME:SETTING"), ("x:lr", "SETTING=VALUE"),
                                              ("x:foo=1", "neither a training setting"),
                                              ("x:pgd.nosuch=1", "cannot set pgd.nosuch"),
                                              ("x:warm_epochs=0", "warm_epochs must be a whole number"),
                                              ("x:warm_epochs=2.5", "warm_epochs must be a whole number")])
def test_bad_variants_are_one_line_errors(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        variant_spec(parse_variant(text))


def test_the_command_refuses_bad_input_before_training(capsys) -> None:
    from trainables.cli import run_main

    assert run_main(main, ["--variant", "x:trades_beta=-1"], prog="bench_levers") == 2
    assert "trades_beta" in capsys.readouterr().err


def test_the_test_images_can_be_scored_as_a_claim_is_checked() -> None:
    """``--test-suite export``: the export suite's L-inf attacks (APGD, Square), its L2 ones left out."""
    export = scoring_suite("export")
    assert [a.name for a in export.attacks] == ["fgsm", "pgd", "apgd-ce", "apgd-dlr", "square"]
    assert export.eot_samples == PRESETS["quick"].export_suite.eot_samples
    assert scoring_suite("objective") == PRESETS["quick"].objective_suite


def test_a_warm_variant_trains_the_short_run_first_and_the_run_from_its_weights(fmnist, monkeypatch) -> None:
    import torch

    from bench import bench_levers

    calls: list[tuple[int, bool]] = []
    real = bench_levers.fit

    def fit(spec, splits, **kw):  # noqa: ANN001, ANN003, ANN202 - fit's own signature
        calls.append((spec.train.epochs, kw.get("initial") is not None))
        result = real(spec, splits, **kw)
        if kw.get("initial") is not None:
            assert all(torch.equal(v, short[k]) for k, v in kw["initial"].items()) and short
        else:
            short.update({k: v.clone() for k, v in result.model.state_dict().items()})
        return result

    short: dict = {}
    monkeypatch.setattr(bench_levers, "fit", fit)
    from trainables.data import Splits

    tiny = Splits(fmnist.train.head(256), fmnist.val.head(50), fmnist.test.head(50), fmnist.info)
    monkeypatch.setattr(bench_levers, "load_splits", lambda data: tiny)
    variant = parse_variant("w:warm_epochs=1,seed=2")
    assert variant.warm_epochs == 1 and variant.train == {"seed": 2} and not variant.params
    spec = variant_spec(variant, train_limit=256, epochs=2)
    figures = bench_levers._score(spec, variant, 10)
    assert calls == [(1, False), (2, True)]  # the screen's run, then the full run from its weights
    assert 0 <= figures.val_robust <= figures.val_natural <= 1 and figures.train_seconds > 0
