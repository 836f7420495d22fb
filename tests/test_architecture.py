"""The shape of the house: the import contracts in pyproject.toml hold, and no folder grows into a hallway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trainables", "search_spaces", "tuner", "bench")
MOST_MODULES = 12  # a folder with more holds more than one job: split it


def test_the_import_contracts_hold() -> None:
    """Layers (trainables < search_spaces < tuner < bench, and the rooms inside two of them) and no cycles."""
    from importlinter.cli import lint_imports

    here = os.getcwd()
    os.chdir(ROOT)  # import-linter finds the packages from the working directory
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
    finally:
        os.chdir(here)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_folder_holds_more_than_a_room_of_modules(package: str) -> None:
    for folder in [ROOT / package, *(p for p in (ROOT / package).rglob("*") if p.is_dir())]:
        modules = [p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        if folder.name == "__pycache__":
            continue
        assert len(modules) <= MOST_MODULES, f"{folder.relative_to(ROOT)} holds {len(modules)} modules"
