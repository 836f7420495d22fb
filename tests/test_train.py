"""The training loop: learning on real data, exact resume, attack mix, bad input."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from trainables.attacks import FGSM, PGD
from trainables.data import DataConfig, Splits
from trainables.data.info import DatasetInfo
from trainables.evaluation import SuiteConfig
from trainables.models import ModelConfig, build_model
from trainables.train import CHECKPOINT_FILE, AttackMix, CheckpointError, RunSpec, TrainConfig, fit

FAST_SUITE = SuiteConfig(attacks=(FGSM(), PGD(steps=5)), eot_samples=2, predict_samples=2)


def _mix(text: str) -> AttackMix:
    """A training mix with PGD at 3 steps."""
    return AttackMix.parse(text, budgets=(PGD(steps=3),))


def _spec(model: str = "cnn", epochs: int = 2, mix: AttackMix | None = None, **train) -> RunSpec:
    settings = {"batch_size": 128, "lr": 0.05, "eval_limit": 200} | train
    train_cfg = TrainConfig(epochs=epochs, mix=mix or _mix("none:1,fgsm:1"), **settings)
    return RunSpec(data=DataConfig(train_limit=4000, val_limit=500, test_limit=500),
                   model=ModelConfig(name=model, hidden_blocks=32), train=train_cfg, suite=FAST_SUITE)


@pytest.mark.slow
def test_short_run_on_real_fashion_mnist_beats_chance_by_far(fmnist, device) -> None:
    result = fit(_spec("cnn"), fmnist, device=device)
    final = result.final
    assert final["natural_acc"] > 0.65  # chance is 0.10
    assert 0.0 <= final["robust_acc"] <= final["natural_acc"] <= 1.0
    assert final["robust_acc"] > 0.10  # FGSM training at eps 0.1 leaves some robustness
    assert [m["epoch"] for m in result.history] == [1.0, 2.0]


@pytest.mark.slow
def test_lwta_elbo_run_learns_and_reports_kl(fmnist, device) -> None:
    result = fit(_spec("lwta-cnn", epochs=1, eval_limit=100), fmnist, device=device)
    assert result.final["natural_acc"] > 0.5
    assert result.final["kl"] > 0 and torch.isfinite(torch.tensor(result.final["kl"]))
    assert result.final["robust_acc"] <= result.final["natural_acc"]


class _Stop(Exception):
    pass


def _stop_after_first_epoch(metrics: dict[str, float], _: Path | None, __: object) -> None:
    if metrics["epoch"] == 1:
        raise _Stop


@pytest.mark.slow
@pytest.mark.parametrize(("model", "ema_decay"), [("cnn", 0.0), ("lwta-cnn", 0.99)])
def test_resume_from_checkpoint_gives_the_same_next_epoch(fmnist, device, tmp_path: Path, model: str,
                                                          ema_decay: float) -> None:
    spec = _spec(model, mix=_mix("none:1,pgd:1,gaussian:1"), eval_limit=100, ema_decay=ema_decay)
    data = Splits(fmnist.train.head(1024), fmnist.val.head(100), fmnist.test.head(100), fmnist.info)  # bit-equality
    straight = fit(spec, data, checkpoint_dir=tmp_path / "a", device=device)  # holds at any size: a quarter does
    with pytest.raises(_Stop):
        fit(spec, data, checkpoint_dir=tmp_path / "b", on_epoch=_stop_after_first_epoch, device=device)
    resumed = fit(spec, data, checkpoint_dir=tmp_path / "b", device=device)
    drop = {"epoch_seconds", "eval_seconds"}
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def _tiny(splits: Splits) -> Splits:
    return Splits(splits.train.head(256), splits.val.head(50), splits.test.head(50), splits.info)


def test_truncated_checkpoint_is_an_error_and_is_not_overwritten(fmnist, device, tmp_path: Path) -> None:
    spec = _spec("cnn", epochs=1, eval_limit=50)
    fit(spec, _tiny(fmnist), checkpoint_dir=tmp_path, device=device)
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:1000])
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        fit(replace(spec, train=replace(spec.train, epochs=2)), _tiny(fmnist), checkpoint_dir=tmp_path, device=device)
    assert path.read_bytes() == before


def test_checkpoint_from_another_configuration_is_refused(fmnist, device, tmp_path: Path) -> None:
    spec = _spec("cnn", epochs=1, eval_limit=50)
    fit(spec, _tiny(fmnist), checkpoint_dir=tmp_path, device=device)
    other = replace(spec, train=replace(spec.train, lr=0.01))
    with pytest.raises(CheckpointError, match="different run configuration"):
        fit(other, _tiny(fmnist), checkpoint_dir=tmp_path, device=device)


@pytest.mark.parametrize("kwargs", [{"eps_scale": -0.1}, {"epochs": 0}, {"lr": 0.0}, {"schedule": "warm"}])
def test_bad_training_settings_raise_with_the_value(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=str(next(iter(kwargs.values())))):
        TrainConfig(**kwargs)


def test_run_spec_round_trips_through_a_dict() -> None:
    spec = _spec("lwta-cnn", mix=_mix("pgd:2,none:1"))
    assert RunSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown model settings: blocks"):
        RunSpec.from_dict({"model": {"blocks": 3}})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainables.train", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "resnet9000"], "invalid choice: 'resnet9000'"),
        (["--dataset", "svhn"], "invalid choice: 'svhn'"),
        (["--eps", "-0.1"], "eps=-0.1"),
        (["--epsilon", "inf"], "eps=inf"),
        (["--epsilon", "2"], "in [0, 1]"),
        (["--lr", "inf"], "lr=inf"),
        (["--eval-limit", "0"], "eval_limit=0"),
        (["--temperature", "nan"], "temperatures must be finite"),
        (["--mix-budget", "pgd.stepz=3"], "stepz"),
        (["--attacks", "fgsm,deepfool"], "deepfool"),
        (["--data-dir", "/nonexistent/robustune"], "dataset-fashion-mnist"),
    ],
)
def test_cli_bad_input_is_one_line_and_non_zero(args: list[str], needle: str, capsys) -> None:
    from trainables.cli import run_main
    from trainables.train import __main__ as cli

    try:
        code = run_main(cli.main, args, prog="python -m trainables.train")
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines


@pytest.mark.slow
def test_cli_trains_and_refuses_a_truncated_checkpoint(tmp_path: Path) -> None:
    args = ["--model", "cnn", "--epochs", "1", "--train-limit", "512", "--val-limit", "100", "--eval-limit", "100",
            "--mix", "none:1", "--attacks", "fgsm", "--checkpoint-dir", str(tmp_path)]
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "natural" in proc.stdout and "worst-case robust" in proc.stdout
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:500])
    before = path.read_bytes()
    proc = _cli(*args[:3], "2", *args[4:])
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "corrupt or truncated" in proc.stderr and path.read_bytes() == before


def _scripted_scores(monkeypatch: pytest.MonkeyPatch, robust: list[float]) -> None:
    """Make the per-epoch validation report ``robust[epoch]`` (natural 0.9) instead of attacking."""
    from trainables.train import loop

    calls = iter(robust)
    monkeypatch.setattr(loop, "evaluate_epoch", lambda *args: {"natural_acc": 0.9, "robust_acc": next(calls)})


def test_best_epoch_is_kept_and_patience_stops_the_run(fmnist, tmp_path: Path, monkeypatch) -> None:
    _scripted_scores(monkeypatch, [0.3, 0.5, 0.4, 0.35, 0.6, 0.6])
    spec = _spec(epochs=6, patience=2, mix=_mix("none:1"))
    spec = replace(spec, data=replace(spec.data, train_limit=256))
    weights: dict[int, dict] = {}

    def keep(metrics, _, model) -> None:
        weights[int(metrics["epoch"])] = {k: v.clone() for k, v in model.state_dict().items()}

    result = fit(spec, fmnist, checkpoint_dir=tmp_path, on_epoch=keep)
    assert [m["epoch"] for m in result.history] == [1.0, 2.0, 3.0, 4.0]  # two epochs without a better score
    assert [m["last_epoch"] for m in result.history] == [0.0, 0.0, 0.0, 1.0]
    assert result.best_epoch == 2 and result.history[-1]["best_epoch"] == 2.0
    final = result.model.state_dict()
    assert all(torch.equal(final[k], weights[4][k]) for k in final)  # the last report saw the kept weights
    assert all(torch.equal(final[k], weights[2][k]) for k in final) and not all(
        torch.equal(weights[3][k], weights[2][k]) for k in final)
    resumed = fit(spec, fmnist, checkpoint_dir=tmp_path)  # a stopped run stays stopped, with its best weights
    assert len(resumed.history) == 4 and resumed.best_epoch == 2
    assert all(torch.equal(resumed.model.state_dict()[k], final[k]) for k in final)


def test_keep_last_ends_with_the_last_epoch(fmnist, monkeypatch) -> None:
    _scripted_scores(monkeypatch, [0.5, 0.2])
    spec = _spec(epochs=2, keep_best=False, mix=_mix("none:1"))
    result = fit(replace(spec, data=replace(spec.data, train_limit=256)), fmnist)
    assert result.best_epoch == 0 and "best_epoch" not in result.final


def test_onecycle_warms_up_to_lr_then_decays_every_batch() -> None:
    from trainables.train.loop import _optimizer, _scheduler

    cfg = TrainConfig(epochs=2, lr=0.2, schedule="onecycle")
    opt = _optimizer(torch.nn.Linear(2, 2), cfg)
    sched = _scheduler(opt, cfg, batches_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.2) and lrs.index(max(lrs)) in (4, 5)
    assert lrs[0] < 0.02 and lrs[-1] < 0.02


def test_label_smoothing_reaches_the_training_loss() -> None:
    from trainables.train.loop import _LossForward

    model = build_model(ModelConfig(name="cnn", cnn_width=4, cnn_kernel=3, hidden_blocks=4),
                        DatasetInfo(name="t", channels=1, size=28, classes=10, mean=(0.5,), std=(0.5,)))
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    plain = _LossForward(model, TrainConfig(), False)
    smooth = _LossForward(model, TrainConfig(label_smoothing=0.2), False)
    assert not torch.allclose(plain(x, y)[0], smooth(x, y)[0])


def test_a_warm_start_trains_on_from_the_weights_it_is_given(fmnist, device, tmp_path: Path, monkeypatch) -> None:
    import trainables.train.loop as loop

    spec, data = _spec("cnn", epochs=1, eval_limit=50), _tiny(fmnist)
    first = fit(spec, data, device=device)
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    warm = fit(spec, data, device=device, initial=weights)
    assert not all(torch.equal(v, warm.model.state_dict()[k]) for k, v in weights.items())  # it trained on

    built = loop.build_model

    def loaded(config: ModelConfig, info: DatasetInfo) -> torch.nn.Module:
        model = built(config, info)
        model.load_state_dict(weights)
        return model

    monkeypatch.setattr(loop, "build_model", loaded)  # the same run, its model's initial weights swapped by hand
    by_hand = fit(spec, data, device=device)
    monkeypatch.undo()
    for name, tensor in by_hand.model.state_dict().items():
        assert torch.equal(tensor, warm.model.state_dict()[name]), name
    assert warm.history[0]["natural_acc"] == by_hand.history[0]["natural_acc"]

    fit(spec, data, checkpoint_dir=tmp_path, device=device)  # a run with a checkpoint resumes it: no warm start
    odd = {k: v[..., :1] for k, v in weights.items()}
    again = fit(replace(spec, train=replace(spec.train, epochs=1)), data, checkpoint_dir=tmp_path, device=device,
                initial=odd)
    assert [m["epoch"] for m in again.history] == [1.0]
    with pytest.raises(CheckpointError, match="warm-start weights do not fit the cnn model"):
        fit(spec, data, device=device, initial=odd)
