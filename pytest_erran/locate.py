"""Where a config may be: light enough for every pytest start-up (no imports beyond pathlib)."""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "erran.toml"


def config_candidate(rootdir: Path) -> Path | None:
    """erran.toml in the rootdir, else a pyproject.toml that mentions tool.erran, else None.
    A text search, not a TOML parse: most projects have no erran config and must not pay."""
    candidate = rootdir / CONFIG_FILE
    if candidate.is_file():
        return candidate
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file() and "tool.erran" in pyproject.read_text(encoding="utf-8", errors="replace"):
        return pyproject
    return None
