"""Shared fixtures: real Fashion-MNIST subsets and the test device ($ROBUSTUNE_DEVICE, CPU by default)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see trainables/__init__.py)
# the integrity key of the test session (tuner.cluster.integrity): never the user's own
os.environ.setdefault("ROBUSTUNE_KEY_FILE", os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                         f"robustune-test-{os.getpid()}.key"))

import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from trainables.data import FASHION_MNIST_DIR, DataConfig, Splits, load_splits


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked gpu when torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where tests run their tensors: $ROBUSTUNE_DEVICE or CPU."""
    return torch.device(os.environ.get("ROBUSTUNE_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def fmnist() -> Splits:
    """A small real Fashion-MNIST split: 4000 train, 500 val, 500 test."""
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"Fashion-MNIST missing in {FASHION_MNIST_DIR}: run ./setup.sh (apt package dataset-fashion-mnist)")
    return load_splits(DataConfig(train_limit=4000, val_limit=500, test_limit=500))


@dataclass(frozen=True)
class SearchCommand:
    """``python -m tuner.search`` run in a test's folder, with its runs and exports kept there."""

    folder: Path

    def argv(self, *args: str) -> list[str]:
        """The command line with ``args``; trials alone unless ``args`` give ``--fuse`` (auto measures, may bundle)."""
        return [sys.executable, "-m", "tuner.search", "--storage-path", str(self.folder / "runs"),
                "--export-dir", str(self.folder / "exports"), "--fuse", "off", *args]

    def run(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        """Run to the end and capture its output."""
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, cwd=self.folder)

    def interrupt_when(self, ready: Callable[[], bool], *args: str,
                       within: float = 400) -> subprocess.CompletedProcess[str]:
        """Start, press Ctrl-C (SIGINT) as soon as ``ready()`` holds, and wait for the exit."""
        proc = subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=self.folder)
        try:
            deadline = time.time() + within
            while not ready():
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"not ready to interrupt within {within}s (exit {proc.poll()})")
                time.sleep(0.25)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def search(tmp_path: Path) -> SearchCommand:
    """The search command line in this test's tmp_path."""
    return SearchCommand(tmp_path)


@pytest.fixture
def rendered_figures() -> Callable[[Path], tuple[int, int]]:
    """``render(page)``: (figures drawn, figures) of an HTML page opened in headless chromium, in a laptop's window.

    It also fails when the page is wider than that window (1280 px): nothing should need a sideways scroll.
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (./setup.sh --dev installs it)")

    def render(page: Path) -> tuple[int, int]:
        argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,800", "--dump-dom",
                page.resolve().as_uri()]
        dom = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
        drawn = re.search(r'data-figures-drawn="(\d+)"', dom)
        total = re.search(r'data-figures="(\d+)"', dom)
        assert drawn and total, dom[:2000]
        width, window = re.search(r'data-page-width="(\d+)"', dom), re.search(r'data-window-width="(\d+)"', dom)
        assert width and window, dom[:2000]
        assert int(width.group(1)) <= int(window.group(1)) <= 1280, (width.group(1), window.group(1))
        return int(drawn.group(1)), int(total.group(1))

    return render
