"""Where a result came from: git revision, library versions, hardware, seed and time."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

__all__ = ["collect_provenance", "git_revision", "measurement_provenance"]


def git_revision() -> str | None:
    """HEAD of the repository holding this file, or None without git or outside a checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def collect_provenance(seed: int | None = None) -> dict[str, Any]:
    """Git revision, library versions, Python, host, CPU/GPU, seed and a UTC timestamp."""
    return {
        "git_revision": git_revision(),
        "torch": torch.__version__,
        "ray": _version("ray"),
        "optuna": _version("optuna"),
        "safetensors": _version("safetensors"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "seed": seed,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def measurement_provenance(device: torch.device, **extra: Any) -> dict[str, Any]:
    """What a measurement ran on: :func:`collect_provenance` with the device, torch's threads and the machine's load."""
    info = collect_provenance()
    info.pop("safetensors", None)
    info["torchattacks"] = _version("torchattacks")
    info["device"] = str(device)
    info["device_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else info["cpu"]
    info["torch_threads"] = torch.get_num_threads()
    info["loadavg_1_5_15"] = _loadavg()
    return info | extra
