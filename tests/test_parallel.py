"""Data-parallel training without Ray: the same loop in two gloo processes on this machine.

Each test spawns two processes that join a torch.distributed group on loopback and call
``trainables.train.fit`` (or the sharded evaluation) exactly as Ray Train's workers do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainables.attacks import FGSM, PGD, GaussianNoise, ThreatModel
from trainables.data import DataConfig, ImageSet, Splits
from trainables.evaluation import SuiteConfig, evaluate_robustness, evaluate_sharded
from trainables.models import ModelConfig, build_model
from trainables.train import AttackMix, Replicas, RunSpec, TrainConfig, TrainingDiverged, fit, load_checkpoint

pytestmark = pytest.mark.slow

WORLD = 2


def _replica(rank: int, store: str, job: Callable[..., dict[str, Any]], args: tuple, out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        torch.save(job(rank, *args), out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    # Done and saved: leave without interpreter finalisation, where gloo's threads abort the process
    # now and then ("terminate called without an active exception", ~1 run in 10 under pytest).
    os._exit(0)


def _on_replicas(job: Callable[..., dict[str, Any]], *args: Any, out: Path) -> list[dict[str, Any]]:
    """Run ``job(rank, *args)`` on two gloo replicas; what each returned, in rank order."""
    out.mkdir(parents=True, exist_ok=True)
    store = out / "rendezvous"  # a file store: no port to race for on a busy machine
    mp.start_processes(_replica, args=(str(store), job, args, out), nprocs=WORLD, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _spec(**train: Any) -> RunSpec:
    settings = dict(epochs=2, batch_size=64, lr=0.05, eval_limit=64, kl_weight=0.0,
                    mix=AttackMix.parse("none:1,fgsm:1,pgd:1", budgets=(PGD(steps=2),)))
    return RunSpec(data=DataConfig(), model=ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=8),
                   train=TrainConfig(**(settings | train)), suite=SuiteConfig(attacks=(FGSM(),), eot_samples=2,
                                                                             predict_samples=2))


@pytest.fixture(scope="module")
def small(fmnist: Splits) -> Splits:
    return Splits(fmnist.train.head(400), fmnist.val.head(64), fmnist.test.head(64), fmnist.info)


def _metrics(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k not in ("epoch_seconds", "eval_seconds")} for row in history]


def _train(rank: int, spec: RunSpec, splits: Splits, folder: str | None) -> dict[str, Any]:
    seen: list[str | None] = []
    result = fit(spec, splits, checkpoint_dir=Path(folder) / f"r{rank}" if folder else None,
                 on_epoch=lambda m, d, _: seen.append(None if d is None else str(d)))
    return {"state": {k: v.clone() for k, v in result.model.state_dict().items()}, "history": result.history,
            "checkpoint_dirs": seen, "replicas": Replicas.current()}


def test_replicas_stay_identical_and_agree_on_metrics(small: Splits, tmp_path: Path) -> None:
    # kl_weight 0 leaves the IBP sticks out of the loss: DDP would fail on its second step if they
    # were not in the forward's graph; clean_weight adds a second forward inside the same step
    spec = _spec(clean_weight=0.3)
    ranks = _on_replicas(_train, spec, small, str(tmp_path / "ck"), out=tmp_path / "out")
    assert [r["replicas"] for r in ranks] == [Replicas(0, 2), Replicas(1, 2)]
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert _metrics(ranks[0]["history"]) == _metrics(ranks[1]["history"])
    last = ranks[0]["history"][-1]
    assert 0.0 <= last["robust_acc"] <= last["natural_acc"] <= 1.0 and last["kl"] > 0
    assert all(d is not None for d in ranks[0]["checkpoint_dirs"]) and ranks[1]["checkpoint_dirs"] == [None, None]
    assert load_checkpoint(tmp_path / "ck" / "r0").epoch == 2
    assert not (tmp_path / "ck" / "r1").exists()


class _Stop(Exception):
    """Ends a run after its first epoch, as a crash would."""


def _stop_after_first_epoch(metrics: dict[str, float], *_: Any) -> None:
    if metrics["epoch"] == 1:
        raise _Stop


def _train_then_resume(rank: int, spec: RunSpec, splits: Splits, folder: str) -> dict[str, Any]:
    here = Path(folder) / f"r{rank}"
    try:
        fit(spec, splits, checkpoint_dir=here, on_epoch=_stop_after_first_epoch)  # rank 0 writes
    except _Stop:
        pass
    dist.barrier()
    if rank > 0:  # every worker starts from rank 0's checkpoint, as after a Ray Train restore
        here.mkdir(parents=True, exist_ok=True)
        (here / "checkpoint.pt").write_bytes((Path(folder) / "r0" / "checkpoint.pt").read_bytes())
    dist.barrier()
    resumed = fit(spec, splits, checkpoint_dir=here)
    return {"state": resumed.model.state_dict(), "history": resumed.history}


def test_a_resumed_data_parallel_run_matches_an_uninterrupted_one(small: Splits, tmp_path: Path) -> None:
    spec = _spec()
    straight = _on_replicas(_train, spec, small, None, out=tmp_path / "a")
    resumed = _on_replicas(_train_then_resume, spec, small, str(tmp_path / "ck"), out=tmp_path / "b")
    for key, value in straight[0]["state"].items():
        assert torch.equal(value, resumed[0]["state"][key]), key
    assert len(load_checkpoint(tmp_path / "ck" / "r0").replica_rng) == WORLD
    assert _metrics(straight[0]["history"]) == _metrics(resumed[0]["history"])


def _diverge(rank: int, spec: RunSpec, splits: Splits) -> dict[str, Any]:
    try:
        fit(spec, splits)
    except TrainingDiverged as exc:
        return {"diverged": str(exc)}
    return {"diverged": None}


def test_a_diverging_loss_stops_every_replica_together(small: Splits, tmp_path: Path) -> None:
    spec = _spec(lr=1.0e6, mix=AttackMix.parse("none:1"), epochs=1)
    ranks = _on_replicas(_diverge, spec, small, out=tmp_path / "out")
    assert all(r["diverged"] and "loss became" in r["diverged"] for r in ranks), ranks


def _evaluate(rank: int, model_state: dict, images: torch.Tensor, labels: torch.Tensor, info: Any) -> dict[str, Any]:
    model = build_model(ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3), info)
    model.load_state_dict(model_state)
    result = evaluate_sharded(model, images, labels, SuiteConfig(attacks=(FGSM(), GaussianNoise())), ThreatModel())
    return {"natural": result.natural, "per_attack": result.per_attack, "worst": result.worst}


def test_sharded_evaluation_gathers_the_same_per_example_outcomes(small: Splits, tmp_path: Path) -> None:
    model = fit(RunSpec(model=ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3),
                        train=TrainConfig(epochs=1, mix=AttackMix.parse("none:1"), eval_limit=8),
                        suite=SuiteConfig(attacks=(FGSM(),))), small).model
    val: ImageSet = small.val.head(63)  # odd: the ranks get 32 and 31 examples
    one = evaluate_robustness(model, val.images, val.labels, SuiteConfig(attacks=(FGSM(),)), ThreatModel())
    ranks = _on_replicas(_evaluate, model.state_dict(), val.images, val.labels, small.info, out=tmp_path / "out")
    assert torch.equal(ranks[0]["natural"], ranks[1]["natural"])
    assert torch.equal(ranks[0]["natural"], one.natural)  # deterministic model: same clean outcomes
    assert torch.equal(ranks[0]["per_attack"]["fgsm"], one.per_attack["fgsm"])  # FGSM has no randomness
    worst = ranks[0]["natural"] & ranks[0]["per_attack"]["fgsm"] & ranks[0]["per_attack"]["gaussian"]
    assert torch.equal(ranks[0]["worst"], worst) and ranks[0]["worst"].shape == (63,)
