"""Where edgenas finds tables, device profiles and its artifact cache.

Each has an environment override; otherwise ``./latency_tables`` / ``./device_profiles`` in the
working directory when present, else the ones shipped next to the package (the repository).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pick(env: str, name: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    local = Path.cwd() / name
    if local.is_dir():
        return local
    return REPO_ROOT / name


def tables_root() -> Path:
    return _pick("EDGENAS_TABLES", "latency_tables")


def profiles_root() -> Path:
    return _pick("EDGENAS_DEVICE_PROFILES", "device_profiles")


def cache_dir() -> Path:
    return Path(os.environ.get("EDGENAS_CACHE") or Path.home() / ".cache" / "edgenas")
