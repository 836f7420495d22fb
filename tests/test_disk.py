"""A disk filling up under a search: stopped in time, said in one line, its log never a traceback."""

from __future__ import annotations

import errno
import logging
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tuner.cluster.disk import DiskFull, DiskWatch, disk_full_in
from tuner.search.logs import quiet_libraries


def test_the_watch_stops_the_search_once_when_free_space_runs_low(tmp_path: Path) -> None:
    heard: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))  # Tune's handler stands here
    free = iter([500 << 20, 200 << 20, 10 << 20, 0, 0])
    try:
        with DiskWatch(tmp_path, low=64 << 20, every=0.01, free=lambda: next(free, 0)) as watch:
            deadline = time.monotonic() + 5
            while not heard and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, before)
    assert heard == [signal.SIGINT]  # once, on the first reading below the mark
    assert watch.tripped == 10 << 20
    error = watch.full()
    assert isinstance(error, ValueError)  # a user error: one line, non-zero exit
    message = str(error)
    assert str(tmp_path) in message and "10 MiB free" in message and "--resume" in message
    assert "\n" not in message


def test_a_watch_with_room_to_spare_stays_quiet(tmp_path: Path) -> None:
    with DiskWatch(tmp_path, low=1, every=0.01) as watch:  # the real disk: more than one byte free
        time.sleep(0.05)
    assert watch.tripped is None


def _raised(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - raised *during* the inner one, as Tune's handlers do
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(("error", "full"), [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (sqlite3.OperationalError("database or disk is full"), True),
    (RuntimeError("Traceback ... OSError: [Errno 28] Error writing bytes to file"), True),  # TuneError's text
    (_raised(RuntimeError("saving the experiment failed"), OSError(errno.ENOSPC, "full")), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (ValueError("invalid training setting eps_scale=-1.0"), False),
    (KeyboardInterrupt(), False),
])
def test_a_write_that_failed_for_want_of_space_is_recognised_in_any_wrapping(error: BaseException,
                                                                             full: bool) -> None:
    assert disk_full_in(error) is full


def test_disk_full_names_the_folder_and_the_way_back(tmp_path: Path) -> None:
    message = str(DiskFull(tmp_path / "runs" / "x", 3 << 20))
    assert message.startswith(f"the disk holding {tmp_path / 'runs' / 'x'} is full (3 MiB free)")
    assert message.endswith("run again with --resume")


class _FullFile:
    """A file whose every write fails as on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self.flush()


def test_search_log_on_a_full_disk_drops_lines_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "search.log"
    with quiet_libraries(log, verbose=False):
        [handler] = [h for h in logging.getLogger("optuna").handlers if getattr(h, "baseFilename", None) == str(log)]
        handler.stream = _FullFile()  # the disk fills up under the open log
        logging.getLogger("optuna").warning("a message the full disk cannot take")
    captured = capsys.readouterr()
    assert "Logging error" not in captured.err and "Traceback" not in captured.err
