"""bench_fidelity's pure parts: configurations matched across runs, rank agreement, fidelity costs."""

from __future__ import annotations

import math

import pytest

from bench.bench_fidelity import Fidelity, build_parser, compare, main, match_configurations


def test_configurations_are_matched_only_where_every_parameter_agrees() -> None:
    full = {0: {"lr": 0.05, "ibp": False}, 1: {"lr": 0.1, "ibp": True}, 2: {"lr": 0.02, "ibp": True}}
    cheap = {0: {"lr": 0.05, "ibp": False}, 1: {"lr": 0.1, "ibp": False}, 3: {"lr": 0.02, "ibp": True}}
    assert match_configurations(full, cheap) == [0]


def test_a_fidelity_that_ranks_as_the_full_objective_scores_one_and_no_regret() -> None:
    full = {0: 0.70, 1: 0.60, 2: 0.75, 3: 0.50}
    same_order = {0: 0.40, 1: 0.30, 2: 0.45, 3: 0.10}
    figures = compare("epoch 1", full, same_order, cost=1.0, wall_s=0.0)
    assert figures.spearman == pytest.approx(1.0) and figures.kendall == pytest.approx(1.0)
    assert figures.regret == 0.0 and figures.keeps_best and figures.configurations == 4


def test_a_reversed_fidelity_scores_minus_one_and_its_pick_costs_the_gap() -> None:
    full = {0: 0.70, 1: 0.60, 2: 0.75, 3: 0.50}
    reversed_ = {n: -v for n, v in full.items()}
    figures = compare("bad", full, reversed_, cost=3.0, wall_s=10.0)
    assert figures.spearman == pytest.approx(-1.0)
    assert figures.regret == pytest.approx(0.25) and not figures.keeps_best


def test_unfinished_configurations_are_left_out_and_too_few_give_nan() -> None:
    figures = compare("x", {0: 0.7, 1: math.nan, 2: 0.6}, {0: 0.1, 1: 0.2, 2: 0.3}, cost=1.0, wall_s=0.0)
    assert figures.configurations == 2 and math.isnan(figures.spearman)


def test_a_fidelity_costs_its_epochs_times_its_share_of_the_training_images() -> None:
    assert Fidelity("epoch 2", at_epoch=2).cost(15, 55000) == 2.0
    assert Fidelity("short 3", epochs=3).cost(15, 55000) == 3.0
    assert Fidelity("subset", epochs=3, train_limit=11000).cost(15, 55000) == pytest.approx(0.6)


@pytest.mark.parametrize("argv, message", [(["--num-samples", "2"], "--num-samples must be >= 3"),
                                           (["--subset", "3xmany"], "--subset must be EPOCHSxIMAGES"),
                                           (["--short-epochs", "2,three"], "--short-epochs takes comma-separated"),
                                           (["--short-epochs", "2,-1"], "fidelity short -1: epochs and images")])
def test_bad_settings_are_refused_before_any_search(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        main(argv)


def test_the_default_fidelities_are_asha_s_rungs_a_short_schedule_and_a_subset() -> None:
    from bench.bench_fidelity import _fidelities

    names = [f.name for f in _fidelities(build_parser().parse_args([]))]
    assert names == ["epoch 1", "epoch 2", "epoch 4", "epoch 8", "short 3", "subset 3x20000"]
    several = _fidelities(build_parser().parse_args(["--short-epochs", "2,3", "--subset", "", "--at-epochs", "2"]))
    assert [(f.name, f.epochs) for f in several] == [("epoch 2", None), ("short 2", 2), ("short 3", 3)]
    assert [f.name for f in _fidelities(build_parser().parse_args(["--short-epochs", "0", "--subset", ""]))] == \
        ["epoch 1", "epoch 2", "epoch 4", "epoch 8"]
