"""Weight averaging: the EMA's warm-up, per-member decays in a bundle, and what a run scores and keeps."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from trainables.attacks import FGSM
from trainables.bundle import bundle_models
from trainables.data import DATASETS, DataConfig, Splits
from trainables.evaluation import SuiteConfig
from trainables.models import ModelConfig, build_model
from trainables.train import RunSpec, TrainConfig, fit, load_checkpoint
from trainables.train.averaging import WeightAverage, ema_weight

INFO = DATASETS["fashion-mnist"][0]
CNN = ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8, cnn_pool_first=True)


def test_the_decay_warms_up_and_zero_means_no_average() -> None:
    assert ema_weight(0.0, 0) == ema_weight(0.0, 10_000) == 1.0
    assert ema_weight(0.999, 0) == pytest.approx(0.9)  # the first update: mostly the new weights
    assert ema_weight(0.999, 90) == pytest.approx(1 - 91 / 100)
    assert ema_weight(0.999, 100_000) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="decays"):
        WeightAverage(nn.Linear(2, 2), [1.0])


def test_a_single_models_average_is_the_warmed_up_ema_of_its_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, [0.9])
    want = {k: v.clone() for k, v in start.items()}
    for n in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.add_(1.0)
            model[1].num_batches_tracked.add_(1)
        average.update(model)
        share = ema_weight(0.9, n)
        for k, v in model.state_dict().items():
            want[k] = v.clone() if not v.is_floating_point() else want[k] + share * (v - want[k])
    for k, v in average.model.state_dict().items():
        torch.testing.assert_close(v, want[k], msg=k)
    assert int(average.model[1].num_batches_tracked) == 5  # integer buffers are copied


def test_each_member_of_a_bundle_averages_with_its_own_decay() -> None:
    decays = [0.9, 0.0, 0.5]
    singles = []
    for seed in range(3):
        torch.manual_seed(seed)
        singles.append(build_model(CNN, INFO))
    bundle = bundle_models(singles)
    together = WeightAverage(bundle, decays)
    apart = [WeightAverage(m, [d]) for m, d in zip(singles, decays, strict=True)]
    for _ in range(4):
        with torch.no_grad():
            for m in singles:
                for p in m.parameters():
                    p.add_(0.1 * torch.randn_like(p))
        bundle.load_members([m.state_dict() for m in singles])
        together.update(bundle)
        for average, single in zip(apart, singles, strict=True):
            average.update(single)
    for i, average in enumerate(apart):
        mine = together.model.member_state_dict(i)
        for k, v in average.model.state_dict().items():
            torch.testing.assert_close(mine[k], v, msg=f"member {i}: {k}")
    assert all(torch.equal(v, singles[1].state_dict()[k]) for k, v in together.model.member_state_dict(1).items())


@pytest.mark.slow
def test_a_run_with_ema_scores_keeps_and_checkpoints_the_averaged_weights(fmnist: Splits, tmp_path) -> None:
    data = Splits(fmnist.train.head(512), fmnist.val.head(64), fmnist.test.head(64), fmnist.info)
    spec = RunSpec(data=DataConfig(), model=CNN,
                   train=TrainConfig(epochs=2, batch_size=64, eval_limit=64, keep_best=False, ema_decay=0.9,
                                     precision="fp32"),
                   suite=SuiteConfig(attacks=(FGSM(),), eot_samples=1, predict_samples=1))
    result = fit(spec, data, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path)
    assert state.averaged is not None and state.averaged_updates == 2 * 512 // 64
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, state.averaged[k]), k
    assert state.trained_weights() is state.averaged  # what the export loads
    assert any(not torch.equal(state.model[k], v) for k, v in state.averaged.items())  # the raw weights kept apart
    plain = fit(replace(spec, train=replace(spec.train, ema_decay=0.0)), data)
    assert any(not torch.equal(v, plain.model.state_dict()[k]) for k, v in result.model.state_dict().items())
