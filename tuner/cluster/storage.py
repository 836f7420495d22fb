"""Where a search keeps its shared state: the Optuna study's storage, and whether every node sees the experiment.

The study lives beside the Tune experiment. SQLite (``optuna.db``) is the default on a local disk;
on a network filesystem (NFS, CIFS, Lustre, CephFS, ...) SQLite's locking is unreliable and a
study there can be corrupted, so a search refuses it and takes Optuna's journal storage
(``optuna-journal.log``, an append-only log with a lock file made for NFS) instead:
``--study-storage auto`` (the default) picks by the filesystem, ``sqlite`` and ``journal`` insist.
``--optuna-storage URL`` (an RDB such as PostgreSQL) overrides both. A resumed experiment keeps the
storage it started with.

On a cluster whose nodes sit on several hosts, every trial writes its checkpoints into the
experiment folder from its own node: a local folder of the driver's disk is refused there
(:func:`check_shared`), an NFS folder mounted on every node or ``s3://`` storage is what works.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trainables.registry import check_choice
from tuner.cluster.disk import nearest_existing
from tuner.experiment import ExperimentFolder, is_uri

__all__ = ["JOURNAL_FILE", "NETWORK_FILESYSTEMS", "SQLITE_FILE", "STUDY_STORAGES", "StudyChoice", "StudyKind",
           "StudyStorage", "check_shared", "check_writable", "filesystem_type", "host_addresses", "study_name",
           "study_storage"]

MIN_FREE_BYTES = 256 << 20  # a search's first checkpoints, its study and its logs, with room to spare

SQLITE_FILE = ExperimentFolder.SQLITE
JOURNAL_FILE = ExperimentFolder.JOURNAL

StudyChoice = Literal["auto", "sqlite", "journal"]  # --study-storage
StudyKind = Literal["sqlite", "journal", "url"]  # where a study is kept once chosen

# --study-storage: how the study is kept, in words for --help
STUDY_STORAGES: dict[StudyChoice, str] = {
    "auto": "SQLite on a local disk, Optuna's journal file on a network filesystem",
    "sqlite": f"SQLite ({SQLITE_FILE}); refused on a network filesystem",
    "journal": f"Optuna's journal file ({JOURNAL_FILE}), safe on NFS",
}

# filesystem types (as /proc/self/mountinfo names them) whose file locking SQLite cannot trust
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "lustre", "gpfs", "glusterfs", "beegfs", "ocfs2",
    "gfs2", "fuse.sshfs", "fuse.glusterfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs", "fuse.ceph-fuse",
    "fuse.rclone", "fuse.goofys", "fuse.mountpoint-s3", "fuse.lxcfs", "virtiofs",
})


def _unescape(field: str) -> str:
    """A mountinfo path field with its octal escapes (\\040 for a space) decoded."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _mounts(mountinfo: str) -> Iterable[tuple[str, str]]:
    """(mount point, filesystem type) of every line of a /proc/self/mountinfo text."""
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if sep and len(fields) >= 5 and rest:
            yield _unescape(fields[4]), rest[0]


def filesystem_type(path: str | Path, mountinfo: str | None = None) -> str:
    """The filesystem type that holds (or will hold) ``path``: 'ext4', 'nfs4', ...; '' when unknown."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:  # not Linux: nothing to tell
            return ""
    target = Path(os.path.realpath(path))  # symlinks followed as far as the path exists
    best, kind = -1, ""
    for point, fstype in _mounts(mountinfo):
        mount = Path(point)
        if (target == mount or mount in target.parents) and len(mount.parts) >= best:
            best, kind = len(mount.parts), fstype  # the deepest mount point wins; the later of two on one point
    return kind


@dataclass(frozen=True)
class StudyStorage:
    """Where the Optuna study is kept: an RDB URL (SQLite included) or a journal file."""

    kind: StudyKind
    location: str  # the RDB URL, or the journal file's path

    def open(self) -> Any:
        """The Optuna storage object (what ``optuna.load_study(storage=...)`` and the searcher take)."""
        import optuna

        if self.kind != "journal":
            return optuna.storages.RDBStorage(self.location)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(JournalFileBackend(self.location,
                                                                 lock_obj=JournalFileOpenLock(self.location)))

    def check(self) -> None:
        """ValueError (one line) unless the storage opens: a malformed URL, a missing driver, no server."""
        try:
            self.open()
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's and the drivers' errors alike become one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"cannot open the study storage {_shown(self.location)}: {first}") from None

    @property
    def in_experiment(self) -> bool:
        """Whether the study is a file of the experiment folder (it moves with it), not a database elsewhere."""
        return self.kind != "url"


def _shown(url: str) -> str:
    """``url`` with its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: shown as it is
        return url


def check_writable(path: str, flag: str, free_bytes: int = MIN_FREE_BYTES) -> None:
    """ValueError (one line) when the local folder ``path`` cannot be made and written, or its disk is nearly full.

    Checked on the nearest folder of ``path`` that exists, by writing a file there (permissions,
    read-only mounts and full quotas alike), before a search starts Ray; remote URIs are left to pyarrow.
    """
    if is_uri(path):
        return
    here = nearest_existing(path)
    if not here.is_dir():
        raise ValueError(f"{flag} {path}: {here} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=here, prefix=".robustune-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot write in {here} ({exc.strerror or exc})") from None
    free = shutil.disk_usage(here).free
    if free < free_bytes:
        raise ValueError(f"{flag} {path}: only {free >> 20} MiB free on its disk; a search needs at least "
                         f"{free_bytes >> 20} MiB for its first checkpoints, study and logs")


def study_name(storage: StudyStorage | None, default: str) -> str:
    """The name of the study an experiment keeps: ``default`` (the experiment's name) for a new one.

    A study file of the experiment folder holds one study, named after the experiment when it began;
    a copied or renamed experiment keeps that name inside its copy of the file.
    """
    if storage is None or not storage.in_experiment:
        return default
    location = Path(storage.location.removeprefix("sqlite:///"))
    if not location.is_file():
        return default
    import optuna

    names = optuna.get_all_study_names(storage.open())
    return names[0] if len(names) == 1 else default


def _started_with(folder: Path) -> StudyKind | None:
    """The storage an existing experiment's study is in, by its file; None when it has none."""
    kinds: tuple[tuple[StudyKind, str], ...] = (("journal", JOURNAL_FILE), ("sqlite", SQLITE_FILE))
    for kind, name in kinds:
        if (folder / name).is_file():
            return kind
    return None


def study_storage(experiment_path: str, choice: StudyChoice = "auto", url: str | None = None, remote: bool = False,
                  fs_type: Callable[[str], str] = filesystem_type) -> StudyStorage | None:
    """The study's storage for an experiment folder; None for remote storage without ``url``.

    ValueError (one line) for SQLite on a network filesystem, or for a choice that differs from
    the storage the experiment's study was started in.
    """
    check_choice("--study-storage", choice, STUDY_STORAGES)
    folder = Path(experiment_path)
    if url:
        if url.startswith("sqlite:///"):
            _refuse_sqlite_on_network(Path(url.removeprefix("sqlite:///")).parent, fs_type)
        return StudyStorage("url", url)
    if remote:
        return None  # no local folder to keep it in: the study lives in the searcher's saved state only
    started = _started_with(folder)
    if started is not None and choice not in ("auto", started):
        raise ValueError(f"the study of {experiment_path} is in {started} storage; resume it with --study-storage "
                         f"{started} (or auto), not {choice}")
    kind = started or choice
    if kind == "auto":
        kind = "journal" if fs_type(str(folder)) in NETWORK_FILESYSTEMS else "sqlite"
    if kind == "sqlite":
        _refuse_sqlite_on_network(folder, fs_type)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "journal":
        return StudyStorage("journal", str(folder / JOURNAL_FILE))
    return StudyStorage("sqlite", f"sqlite:///{folder / SQLITE_FILE}")


def _refuse_sqlite_on_network(folder: Path, fs_type: Callable[[str], str]) -> None:
    kind = fs_type(str(folder))
    if kind in NETWORK_FILESYSTEMS:
        raise ValueError(f"an SQLite Optuna study cannot live on a network filesystem ({kind} at {folder}): its "
                         "locking is unreliable there and corrupts studies; use --study-storage journal, or "
                         "--optuna-storage with a database server")


def host_addresses() -> set[str]:
    """Every IP address of this host's interfaces (loopback included)."""
    import psutil

    return {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)}


def check_shared(experiment_path: str, remote: bool, nodes: list[dict[str, Any]],
                 local: Callable[[], set[str]] = host_addresses,
                 fs_type: Callable[[str], str] = filesystem_type) -> None:
    """ValueError (one line) when live nodes on other hosts would checkpoint into a folder only this host sees.

    ``nodes``: ``ray.nodes()``; ``local``: this host's addresses. Nodes on the driver's own host (a
    cluster started on one machine) share its disk; other hosts need a network filesystem or
    remote storage.
    """
    if remote:
        return
    hosts = {n.get("NodeManagerAddress") for n in nodes if n.get("Alive")} - local() - {None}
    if not hosts:
        return
    kind = fs_type(experiment_path)
    if kind not in NETWORK_FILESYSTEMS:
        raise ValueError(f"the experiment folder {experiment_path} is on this host's own disk ({kind or 'unknown'} "
                         f"filesystem) but the cluster has nodes on {len(hosts)} other host(s), whose trials could "
                         "not save checkpoints there: use a --storage-path every node mounts (NFS) or s3://")
