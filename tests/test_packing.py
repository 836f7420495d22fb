"""``--gpus-per-trial auto``: how many trials share a GPU, from a measured footprint."""

from __future__ import annotations

import pytest
import torch

from search_spaces import PRESETS, get_space
from trainables.data.sources import DATASETS
from trainables.train import footprint
from trainables.train.footprint import Footprint, measure_footprint
from tuner.cluster.packing import MAX_PER_GPU, gpu_share, trials_per_gpu

GIB = 2**30
FMNIST = DATASETS["fashion-mnist"][0]


def _footprint(peak_gib: float, overhead_gib: float = 0.5, total_gib: float = 80) -> Footprint:
    return Footprint(int(peak_gib * GIB), int(overhead_gib * GIB), int(total_gib * GIB), "test card")


@pytest.mark.parametrize(("peak", "overhead", "want"), [
    (1.0, 0.5, MAX_PER_GPU),  # a small CNN: capped, more would only contend for the SMs
    (10.0, 0.5, 3),  # 72 GiB usable / (2 x 10 + 0.5)
    (20.0, 0.5, 1),
    (60.0, 0.5, 1),  # does not fit twice (or even once with headroom): one trial, the whole card
])
def test_trials_per_gpu(peak: float, overhead: float, want: int) -> None:
    assert trials_per_gpu(_footprint(peak, overhead)) == want


def test_share_is_a_fraction_ray_can_pack() -> None:
    share = gpu_share([], FMNIST, [], has_gpu=True, fallback=1.0, probe=lambda *a: _footprint(10.0))
    assert share.fraction == 0.3333 and 3 * share.fraction <= 1.0
    assert "3 trial(s) per GPU" in share.reason and "test card" in share.reason


def test_no_gpu_means_cpu_trials() -> None:
    def never(*args: object) -> Footprint:
        raise AssertionError("no probe without a GPU")

    share = gpu_share([], FMNIST, [], has_gpu=False, fallback=1.0, probe=never)
    assert share.fraction == 0.0 and "no GPU in the cluster" in share.reason


def test_a_failed_probe_falls_back_to_the_preset() -> None:
    def broken(*args: object) -> Footprint:
        raise TimeoutError("no answer within 300 s")

    share = gpu_share([], FMNIST, [], has_gpu=True, fallback=0.25, probe=broken)
    assert share.fraction == 0.25 and "the memory probe failed (no answer within 300 s)" in share.reason


def test_measuring_needs_cuda() -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        measure_footprint([], FMNIST, [], device="cpu")


def test_the_footprint_runs_the_training_loops_step_and_a_scoring_batch_on_any_device() -> None:
    # what the GPU probe runs, on the CPU here: a probe that breaks sizes every trial at 0 GPU without a word in CI
    preset, space = PRESETS["quick"], get_space("lwta")
    base = space.fixed(preset)
    for spec in (base, *(space.apply(base, p) for p in space.points_to_evaluate(preset))):
        footprint._training_step(spec, FMNIST, torch.device("cpu"))  # noqa: SLF001 - the probe's own steps
        footprint._scoring_batch(spec, FMNIST, preset.objective_suite, torch.device("cpu"))  # noqa: SLF001


@pytest.mark.gpu
def test_quick_preset_footprint_on_the_gpu() -> None:
    """The quick preset's LWTA runs: a peak well under the card, so several trials share it."""
    preset = PRESETS["quick"]
    space = get_space("lwta")
    base = space.fixed(preset)
    specs = [base, *(space.apply(base, p) for p in space.points_to_evaluate(preset))]
    footprint = measure_footprint(specs, FMNIST, [preset.objective_suite, preset.export_suite])
    assert 0 < footprint.peak_bytes < footprint.total_bytes / 4
    assert footprint.overhead_bytes >= 0
    assert trials_per_gpu(footprint) > 1
