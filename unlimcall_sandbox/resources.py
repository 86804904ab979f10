"""The data files shipped inside the package: the contract, the demo dataset and rate table,
the dashboard's assets, the migrations. Found with ``importlib.resources``, so they are
where the installed package is (a wheel in any venv), never beside a source checkout."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

ROOT: Traversable = files("unlimcall_sandbox")
CONTRACT: Traversable = ROOT / "openapi" / "unlimcall-openapi.json"
FIXTURES: Traversable = ROOT / "fixtures"


def directory(*parts: str) -> Path:
    """A packaged folder as a filesystem path (Alembic and the static-files router need
    one). The package is never imported from a zip (``zip-safe = false``)."""
    found = ROOT.joinpath(*parts)
    if not isinstance(found, Path):  # pragma: no cover - only under a zip import
        raise RuntimeError(f"unlimcall_sandbox must be installed unzipped to read {found}")
    return found
