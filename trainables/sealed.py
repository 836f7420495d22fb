"""Checkpoint files that prove they are whole: torch.save's bytes inside an envelope with their sha256.

torch.save's zip archive does not check its records on load: a flipped bit in a tensor loads
silently as another number (a trial then resumed from it diverges, or an export ships other
weights). So a sealed file holds the serialized payload as bytes beside their sha256, checked
before the payload is read. Written atomically (:mod:`trainables.atomic`); read with
``weights_only`` (tensors and plain data, never code), as every checkpoint here is. Files written
before sealing (no envelope) still load, unchecked.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from trainables.atomic import atomic_write

__all__ = ["SealError", "load_format", "load_sealed", "save_sealed"]

_ENVELOPE = "robustune-sealed/1"


class SealError(ValueError):
    """A sealed file that is missing, truncated, corrupt or fails its sha256."""


def save_sealed(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (torch.save-able) to ``path`` atomically, sealed with its sha256."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    envelope = {"format": _ENVELOPE, "sha256": hashlib.sha256(body).hexdigest(),
                "body": torch.frombuffer(bytearray(body), dtype=torch.uint8)}
    return atomic_write(path, lambda f: torch.save(envelope, f))


def _read(source: Path | io.BytesIO, path: Path) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError,
            TypeError, AttributeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SealError(f"{path} is corrupt or truncated: {first}") from None


def load_sealed(path: Path) -> Any:
    """The payload sealed in ``path`` once its sha256 matches (an unsealed torch file: as is); else SealError."""
    if not path.is_file():
        raise SealError(f"no file at {path}")
    outer = _read(path, path)
    if not (isinstance(outer, dict) and outer.get("format") == _ENVELOPE):
        return outer
    body, digest = outer.get("body"), outer.get("sha256")
    if not isinstance(body, torch.Tensor) or body.dtype != torch.uint8 or not isinstance(digest, str):
        raise SealError(f"{path} has a malformed seal")
    raw = body.numpy().tobytes()
    if hashlib.sha256(raw).hexdigest() != digest:
        raise SealError(f"{path} fails its sha256 check: the file changed after it was written (disk or copy error)")
    return _read(io.BytesIO(raw), path)


def load_format(path: Path, fmt: str, kind: str) -> dict[str, Any]:
    """The sealed dict in ``path`` of format ``fmt`` (its ``format`` key dropped); else SealError naming ``kind``."""
    payload = load_sealed(path)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise SealError(f"{path} is not a {kind}")
    payload.pop("format")
    return payload
