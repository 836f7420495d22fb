"""Shared state: the filesystem under the experiment picks (or refuses) the study's storage; no Ray here."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tuner.cluster.storage import JOURNAL_FILE, SQLITE_FILE, check_shared, filesystem_type, study_storage
from tuner.search import SearchConfig

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:50 / /mnt/shared rw,relatime - nfs4 server:/export rw,vers=4.2
41 40 8:2 / /mnt/shared/local\\040disk rw,relatime - xfs /dev/sdb1 rw
42 27 0:51 / /scratch rw - ext4 /dev/sdc1 rw
43 27 0:52 / /scratch rw - cifs //srv/s rw
"""


@pytest.mark.parametrize(("path", "kind"), [
    ("/home/me/runs/exp", "ext4"),
    ("/mnt/shared/runs/exp-not-there-yet", "nfs4"),  # a folder still to be made: its nearest existing parent's
    ("/mnt/shared", "nfs4"),
    ("/mnt/shared/local disk/runs", "xfs"),  # a mount inside a mount, its space escaped as \040 in mountinfo
    ("/scratch/runs", "cifs"),  # mounted over: the later mount on the same point is the one seen
])
def test_the_filesystem_of_a_path_is_its_deepest_mount(path: str, kind: str) -> None:
    assert filesystem_type(path, MOUNTINFO) == kind


def test_this_machines_own_folders_are_on_a_known_filesystem(tmp_path: Path) -> None:
    assert filesystem_type(tmp_path) not in ("", "nfs", "nfs4")


def _nfs(path: str) -> str:
    return "nfs4"


def _disk(path: str) -> str:
    return "ext4"


def test_auto_takes_sqlite_on_a_disk_and_the_journal_on_nfs(tmp_path: Path) -> None:
    assert study_storage(str(tmp_path / "a"), fs_type=_disk).location == f"sqlite:///{tmp_path / 'a' / SQLITE_FILE}"
    journal = study_storage(str(tmp_path / "b"), fs_type=_nfs)
    assert (journal.kind, journal.location) == ("journal", str(tmp_path / "b" / JOURNAL_FILE))
    assert study_storage(str(tmp_path / "c"), "journal", fs_type=_disk).kind == "journal"
    assert study_storage(str(tmp_path / "d"), remote=True) is None  # s3://: kept in the searcher's state


@pytest.mark.parametrize("how", [{"choice": "sqlite"}, {"url": "sqlite:////mnt/shared/study.db"}])
def test_sqlite_on_a_network_filesystem_is_refused_in_one_line(tmp_path: Path, how: dict) -> None:
    with pytest.raises(ValueError, match="network filesystem") as caught:
        study_storage(str(tmp_path / "exp"), fs_type=_nfs, **how)
    assert "--study-storage journal" in str(caught.value) and "\n" not in str(caught.value)


def test_a_database_server_is_taken_as_given(tmp_path: Path) -> None:
    url = "postgresql://optuna@db/robustune"
    assert study_storage(str(tmp_path), "sqlite", url, fs_type=_nfs).location == url


def test_a_resumed_experiment_keeps_the_storage_its_study_started_in(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    storage = study_storage(str(folder), "journal", fs_type=_disk)
    optuna.create_study(study_name="exp", storage=storage.open()).optimize(lambda t: t.suggest_float("x", 0, 1), 2)
    again = study_storage(str(folder), "auto", fs_type=_disk)  # a disk would have picked SQLite for a new study
    assert again == storage
    assert len(optuna.load_study(study_name="exp", storage=again.open()).trials) == 2
    with pytest.raises(ValueError, match="resume it with --study-storage journal"):
        study_storage(str(folder), "sqlite", fs_type=_disk)


def test_the_search_refuses_a_bad_study_storage_name() -> None:
    with pytest.raises(ValueError, match="--study-storage must be one of"):
        SearchConfig(study_storage="redis")


NODES = [{"NodeManagerAddress": "10.0.0.1", "Alive": True}, {"NodeManagerAddress": "10.0.0.2", "Alive": True},
         {"NodeManagerAddress": "10.0.0.3", "Alive": False}]


def test_a_local_experiment_folder_is_refused_when_nodes_sit_on_other_hosts() -> None:
    here = {"127.0.0.1", "10.0.0.1"}
    with pytest.raises(ValueError, match="1 other host"):
        check_shared("/home/me/runs/exp", False, NODES, local=lambda: here, fs_type=_disk)
    check_shared("/mnt/shared/runs/exp", False, NODES, local=lambda: here, fs_type=_nfs)  # every node mounts it
    check_shared("s3://bucket/runs/exp", True, NODES, local=lambda: here, fs_type=_disk)
    check_shared("/home/me/runs/exp", False, NODES[:1] + NODES[2:], local=lambda: here, fs_type=_disk)  # one host
