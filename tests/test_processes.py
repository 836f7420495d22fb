"""evaluate_in_processes: shards scored in worker processes give exactly the outcomes of scoring each shard here."""

from __future__ import annotations

import pytest
import torch
from fitting import adam_steps
from torch import Tensor, nn

from trainables.attacks import FGSM, PGD, ThreatModel
from trainables.data import Splits
from trainables.evaluation import GradientWay, ShardFailed, SuiteConfig, evaluate_in_processes, evaluate_robustness
from trainables.models import ModelConfig, build_model

THREAT = ThreatModel(0.1, 1.5)
SUITE = SuiteConfig(attacks=(FGSM(), PGD(steps=3)), gradients=(GradientWay.SURROGATE, GradientWay.SAMPLED),
                    eot_samples=2, predict_samples=2, batch_size=32)


@pytest.fixture(scope="module")
def lwta(fmnist: Splits) -> tuple[nn.Module, Tensor, Tensor]:
    """A stochastic LWTA CNN trained for a moment, with 90 test images and labels."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="lwta-cnn", cnn_width=8, cnn_kernel=3, hidden_blocks=16, ibp=False),
                        fmnist.info)
    return adam_steps(model, fmnist, 40), fmnist.test.floats()[:90], fmnist.test.labels[:90]


def test_shards_in_processes_score_as_each_shard_here(lwta) -> None:
    model, x, y = lwta
    heard: list[tuple[str, int, int]] = []
    result = evaluate_in_processes(model, x, y, SUITE, THREAT, workers=2, progress=lambda *a: heard.append(a))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers score
    try:
        halves = [evaluate_robustness(model, x[lo:hi], y[lo:hi], SUITE, THREAT) for lo, hi in ((0, 45), (45, 90))]
    finally:
        torch.set_num_threads(threads)
    assert result.n == 90 and set(result.per_attack) == set(halves[0].per_attack)
    assert torch.equal(result.natural, torch.cat([h.natural for h in halves]))
    for key in result.per_attack:  # the stochastic model's draws too: each shard has the streams a run has
        assert torch.equal(result.per_attack[key], torch.cat([h.per_attack[key] for h in halves])), key
    assert 0 < result.worst_acc <= result.natural_acc <= 1
    labels = [label for label, _, _ in heard]
    assert labels[0] == "natural" and "pgd/sampled" in labels  # the first shard's batches, in order
    assert all(done <= total for _, done, total in heard)


def test_one_worker_scores_here(lwta) -> None:
    model, x, y = lwta
    one = evaluate_in_processes(model, x[:20], y[:20], SUITE, THREAT, workers=1)
    assert torch.equal(one.worst, evaluate_robustness(model, x[:20], y[:20], SUITE, THREAT).worst)


def test_a_failing_worker_is_one_clear_error_of_its_kind(lwta) -> None:
    model, x, y = lwta
    with pytest.raises(ValueError, match=r"scoring worker 1 of 2 failed: ValueError: .*one label per image"):
        evaluate_in_processes(model, x[:20], y[:19], SUITE, THREAT, workers=2)  # the second shard lacks a label
    with pytest.raises(ShardFailed, match=r"scoring worker [01] of 2 failed: RuntimeError: .*channels"):
        evaluate_in_processes(model, x[:20].repeat(1, 3, 1, 1), y[:20], SUITE, THREAT, workers=2)  # 3 channels, not 1
