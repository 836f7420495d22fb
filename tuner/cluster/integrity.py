"""Resume only what this machine wrote: an HMAC record of the files Tune unpickles on ``--resume``.

``Tuner.restore`` unpickles the experiment folder (``tuner.pkl``, the searcher's state, trial
parameters, and pickles inside the experiment-state JSON): whoever can write that folder can run code
on the next ``--resume``. So the search keeps ``integrity.json`` beside them: the sha256 of each such
file, authenticated by an HMAC whose key lives outside the folder (``~/.config/robustune/integrity.key``,
or ``$ROBUSTUNE_KEY_FILE``; created with mode 600 on first use). ``--resume`` checks the record before
Tune reads anything; a folder written elsewhere resumes only where that key is, or with
``--trust-experiment`` after the user decides to trust it.

The record is renewed as the last part of every save of Tune's state (Tune asks its callbacks for
their state then), after every step of Tune's loop (for the trial folders made within the step) and
at the end; a driver killed (SIGKILL) resumes with the record of its last save. Only a kill within
the few milliseconds of a save leaves files newer than the record, which ``--resume`` refuses (with
the same two ways out).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from ray.tune import Callback

from trainables.atomic import atomic_write_text
from tuner.experiment import ExperimentFolder

__all__ = ["RECORD_FILE", "IntegrityRecorder", "key_file", "protected_files", "sign", "verify"]

RECORD_FILE = ExperimentFolder.INTEGRITY
_ROOT_STATE = ("tuner.pkl", "experiment_state-", "search_gen_state-", "searcher-state-")  # Tune's own state


def key_file() -> Path:
    """Where the key is: ``$ROBUSTUNE_KEY_FILE``, else ~/.config/robustune/integrity.key."""
    override = os.environ.get("ROBUSTUNE_KEY_FILE")
    return Path(override) if override else Path.home() / ".config" / "robustune" / "integrity.key"


def _key() -> bytes:
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def protected_files(experiment: Path) -> list[Path]:
    """Files ``Tuner.restore`` may unpickle: Tune's state at the top, every ``*.pkl``, Ray Train's run state."""
    found = {p for p in experiment.iterdir() if p.is_file() and p.name.startswith(_ROOT_STATE)}
    found |= set(experiment.rglob("*.pkl"))
    found |= set(experiment.glob(f"{ExperimentFolder.TRAIN_RUNS}/*/*.json"))
    return sorted(found)


Stamp = tuple[int, int, int]  # (inode, mtime ns, size) of a file whose digest is known


def _digests(experiment: Path, cache: dict[str, tuple[Stamp, str]] | None = None) -> dict[str, str]:
    """sha256 of every protected file; with ``cache``, files whose stamp did not change are not read again."""
    digests = {}
    for path in protected_files(experiment):
        name = str(path.relative_to(experiment))
        if cache is None:
            digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            continue
        info = path.stat()
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        known = cache.get(name)
        if known is None or known[0] != stamp:
            known = cache[name] = (stamp, hashlib.sha256(path.read_bytes()).hexdigest())
        digests[name] = known[1]
    return digests


def _mac(files: dict[str, str]) -> str:
    return hmac.new(_key(), json.dumps(files, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def sign(experiment: Path, cache: dict[str, tuple[Stamp, str]] | None = None) -> None:
    """Record the digests of the protected files, authenticated with this machine's key.

    ``cache``: the signer's own digests of files it read before (a running search's; the files
    Tune rewrites get a new inode or mtime), so signing after a save reads only what changed.
    """
    files = _digests(experiment, cache)
    atomic_write_text(experiment / RECORD_FILE, json.dumps({"version": 1, "files": files, "mac": _mac(files)},
                                                           indent=1, sort_keys=True))


def verify(experiment: Path) -> None:
    """ValueError (one line) unless every protected file is as this machine's record says."""
    how = ("resume only experiments this machine (or one with its key, see README 'Security') wrote, or pass "
           "--trust-experiment if you trust this folder")
    try:
        record = json.loads((experiment / RECORD_FILE).read_text())
        files, mac = dict(record["files"]), str(record["mac"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{experiment} has no readable integrity record ({RECORD_FILE}); --resume would unpickle "
                         f"its files: {how}") from None
    if not hmac.compare_digest(_mac(files), mac):
        raise ValueError(f"the integrity record of {experiment} was not made with this machine's key "
                         f"({key_file()}); --resume would unpickle its files: {how}")
    for name, digest in _digests(experiment).items():
        if files.get(name) != digest:
            raise ValueError(f"{experiment / name} changed since this machine's search wrote it; --resume would "
                             f"unpickle it: {how}")


class IntegrityRecorder(Callback):
    """Renews the record after each step of Tune's loop whose state files changed, and at the end."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self._seen: dict[str, tuple[int, int]] = {}
        self._digests: dict[str, tuple[Stamp, str]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "_seen": {}, "_digests": {}}

    def resume_at(self, experiment: str) -> None:
        """Keep the record of ``experiment`` from now on: a resumed search's folder, wherever it now is."""
        self.experiment = experiment

    def _renew(self) -> None:
        folder = Path(self.experiment)
        if not folder.is_dir():
            return
        stamps = {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in protected_files(folder)}
        if stamps != self._seen:
            sign(folder, self._digests)
            self._seen = stamps

    def get_state(self) -> dict | None:
        """Renew the record: Tune asks for its callbacks' state as the last part of saving its own.

        So the record matches the state a driver leaves when it is killed after a save (the new
        trials' ``params.pkl``, written outside the save, are covered at the end of the step).
        No state of its own: Tune then writes no callback-state pickle after the record.
        """
        self._renew()
        return None

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """After Tune saved its state in this step."""
        self._renew()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """After Tune's final save."""
        self._renew()
