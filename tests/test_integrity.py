"""Checkpoints prove they are whole, trials and exports fall back past a damaged one, experiments move safely."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import optuna
import pytest
import torch

from trainables.sealed import SealError, load_sealed, save_sealed
from trainables.train import CheckpointError, TrainState, load_checkpoint, save_checkpoint


def _flip(path: Path, at: float = 0.5) -> None:
    """Flip one bit of ``path``, ``at`` of the way in (a disk or copy error)."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


def _state(epoch: int) -> TrainState:
    return TrainState(epoch=epoch, spec={}, model={"w": torch.full((64, 64), float(epoch))}, optimizer={},
                      scheduler={}, rng=torch.get_rng_state(), cuda_rng=[], history=[{"epoch": float(epoch)}])


# --------------------------------------------------------------------------------------- sealed files
def test_a_bit_flipped_checkpoint_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, _state(3))
    assert load_checkpoint(tmp_path).epoch == 3
    _flip(path)  # inside the weights: torch.load alone reads it without complaint
    with pytest.raises(CheckpointError, match=f"{path} fails its sha256 check"):
        load_checkpoint(tmp_path)


def test_a_truncated_sealed_file_is_one_error(tmp_path: Path) -> None:
    path = save_sealed(tmp_path / "x.pt", {"w": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SealError, match="corrupt or truncated") as info:
        load_sealed(path)
    assert "\n" not in str(info.value)


def test_a_checkpoint_written_before_sealing_still_loads(tmp_path: Path) -> None:
    torch.save({"format": "robustune-checkpoint/1", **_state(2).__dict__}, tmp_path / "checkpoint.pt")
    assert load_checkpoint(tmp_path).epoch == 2


# ----------------------------------------------------------------------- a trial's fallback on restore
def _tune_checkpoints(trial: Path, epochs: int) -> list[Path]:
    """Tune's layout of a trial that reported ``epochs`` epochs, each with a checkpoint (the last two kept)."""
    folders = []
    for index in range(epochs - 2, epochs):
        folder = trial / f"checkpoint_{index:06d}"
        save_checkpoint(folder, _state(index + 1))
        folders.append(folder)
    return folders


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before_and_retrains_silently(tmp_path: Path,
                                                                                          capsys) -> None:
    from ray.tune import Checkpoint

    from tuner.trials.checkpoints import restore_intact

    older, latest = _tune_checkpoints(tmp_path / "trial", epochs=5)
    _flip(latest / "checkpoint.pt")
    work = tmp_path / "work"
    work.mkdir()
    restored = restore_intact(Checkpoint.from_directory(str(latest)), work)
    assert load_checkpoint(work).epoch == 4  # the intact one before
    assert restored.silent(5) and not restored.silent(6)  # Tune holds epoch 5's report: retrained, not re-sent
    line = capsys.readouterr().err.strip()
    assert "fails its sha256 check" in line and str(older) in line and "\n" not in line


def test_the_fallback_reaches_a_trial_s_first_checkpoint(tmp_path: Path) -> None:
    from ray.tune import Checkpoint

    from tuner.trials.checkpoints import restore_intact

    first, latest = _tune_checkpoints(tmp_path / "trial", epochs=2)  # checkpoint_000000 and _000001
    _flip(latest / "checkpoint.pt")
    work = tmp_path / "work"
    work.mkdir()
    restored = restore_intact(Checkpoint.from_directory(str(latest)), work)
    assert first.name == "checkpoint_000000" and load_checkpoint(work).epoch == 1 and restored.silent(2)


def test_an_intact_checkpoint_is_resumed_as_it_is(tmp_path: Path) -> None:
    from ray.tune import Checkpoint

    from tuner.trials.checkpoints import restore_intact

    _, latest = _tune_checkpoints(tmp_path / "trial", epochs=3)
    work = tmp_path / "work"
    work.mkdir()
    restored = restore_intact(Checkpoint.from_directory(str(latest)), work)
    assert load_checkpoint(work).epoch == 3 and not restored.silent(1)


def test_with_no_intact_checkpoint_the_trial_starts_over(tmp_path: Path) -> None:
    from ray.tune import Checkpoint

    from tuner.trials.checkpoints import restore_intact

    for folder in _tune_checkpoints(tmp_path / "trial", epochs=4):
        _flip(folder / "checkpoint.pt")
    work = tmp_path / "work"
    work.mkdir()
    restored = restore_intact(Checkpoint.from_directory(str(tmp_path / "trial" / "checkpoint_000003")), work)
    assert not any(work.iterdir()) and restored.silent(4) and not restored.silent(5)


# -------------------------------------------------------------------- the export's fallback
def _record(trial_id: str, objective: float, checkpoint: Path):
    from ray.tune import Checkpoint

    from tuner.trials import TrialRecord

    return TrialRecord(trial_id, "finished", {}, final={"objective": objective, "objective_natural": 0.8,
                                                        "final_evaluated": 1.0},
                       checkpoint=Checkpoint.from_directory(str(checkpoint)))


def test_a_damaged_best_checkpoint_is_named_not_its_temporary_copy(tmp_path: Path) -> None:
    from tuner.export.best import DamagedCheckpoint, _trained

    path = save_checkpoint(tmp_path / "trial" / "checkpoint_000002", _state(3))
    _flip(path)
    with pytest.raises(DamagedCheckpoint) as info:
        _trained(_record("abc", 0.5, path.parent))
    assert str(info.value).startswith("trial abc: checkpoint ") and str(path) in str(info.value)


def test_the_export_falls_back_to_the_best_trial_whose_checkpoint_is_intact(tmp_path: Path, monkeypatch) -> None:
    from tuner.console.view import Phases
    from tuner.export.best import DamagedCheckpoint
    from tuner.search import run

    exported: list[str] = []

    def export(cfg, plan, record, splits, command, pick, phases):  # noqa: ANN001, ANN202 - run._export's shape
        if record.trial_id == "best":
            raise DamagedCheckpoint("trial best: checkpoint /runs/x fails its sha256 check")
        exported.append(record.trial_id)
        return tmp_path, {}

    monkeypatch.setattr(run, "_export", export)
    said: list[str] = []
    phases = Phases(live=False)
    monkeypatch.setattr(phases, "say", said.append)
    ranked = [_record(name, v, tmp_path) for name, v in (("best", 0.7), ("second", 0.6), ("third", 0.5))]
    best, out = run._export_intact(None, None, ranked, None, "", None, phases)
    assert best is ranked[1] and exported == ["second"] and out == (tmp_path, {})
    assert len(said) == 1 and "fails its sha256 check" in said[0] and "next best" in said[0]


# ---------------------------------------------------------------- a moved or copied experiment's study
def test_the_study_of_a_renamed_experiment_keeps_its_first_name(tmp_path: Path) -> None:
    from tuner.cluster.storage import study_name, study_storage

    first = study_storage(str(tmp_path / "first"))
    optuna.create_study(study_name="first", storage=first.open())
    shutil.copytree(tmp_path / "first", tmp_path / "copy")
    assert study_name(study_storage(str(tmp_path / "copy")), "copy") == "first"
    assert study_name(study_storage(str(tmp_path / "new")), "new") == "new"  # no study yet: the experiment's name


def test_a_restored_searcher_tells_the_study_where_the_experiment_now_is(tmp_path: Path) -> None:
    from search_spaces import PRESETS
    from tuner.cluster.storage import study_storage
    from tuner.trials.strategy import DefineBySpace
    from tuner.trials.study import HonestOptunaSearch, study_states

    original = study_storage(str(tmp_path / "runs" / "exp"))
    searcher = HonestOptunaSearch(space=DefineBySpace("lwta", PRESETS["quick"]), metric="objective", mode="max",
                                  sampler=optuna.samplers.RandomSampler(seed=0), study_name="exp",
                                  storage=original.open())
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {"objective": 0.4, "final_evaluated": 1.0, "training_iteration": 1})
    state = tmp_path / "runs" / "exp" / "searcher-state.pkl"
    searcher.save(str(state))
    shutil.copytree(tmp_path / "runs" / "exp", tmp_path / "copied" / "exp")
    before = hashlib.sha256((tmp_path / "runs" / "exp" / "optuna.db").read_bytes()).hexdigest()

    copy = study_storage(str(tmp_path / "copied" / "exp"))
    resumed = HonestOptunaSearch(space=DefineBySpace("lwta", PRESETS["quick"]), metric="objective", mode="max",
                                 sampler=optuna.samplers.RandomSampler(seed=0), study_name="exp")
    resumed.use_study(copy.open())
    resumed.restore(str(tmp_path / "copied" / "exp" / "searcher-state.pkl"))
    resumed.on_trial_complete("b", {"objective": 0.5, "final_evaluated": 1.0, "training_iteration": 1})
    resumed.suggest("c")
    assert study_states(copy.open(), "exp") == {"a": "COMPLETE", "b": "COMPLETE", "c": "RUNNING"}
    assert hashlib.sha256((tmp_path / "runs" / "exp" / "optuna.db").read_bytes()).hexdigest() == before
    assert study_states(original.open(), "exp") == {"a": "COMPLETE", "b": "RUNNING"}


# ------------------------------------------------------------------------------ settings checked first
def test_a_folder_that_cannot_be_written_or_a_full_disk_is_one_line(tmp_path: Path) -> None:
    from tuner.cluster.storage import check_writable

    check_writable(str(tmp_path / "new" / "runs"), "--storage-path")  # made later: its parent is checked
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_writable(str(tmp_path / "file" / "runs"), "--storage-path")
    with pytest.raises(ValueError, match="cannot write in /proc"):
        check_writable("/proc/runs", "--export-dir")
    with pytest.raises(ValueError, match=r"MiB free on its disk; a search needs at least"):
        check_writable(str(tmp_path), "--storage-path", free_bytes=1 << 62)
    check_writable("s3://bucket/runs", "--storage-path")  # remote storage: pyarrow's to check
