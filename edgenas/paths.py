"""Where edgenas finds tables, device profiles, the on-device runner and its artifact cache.

Each has an environment override (``EDGENAS_TABLES``, ``EDGENAS_DEVICE_PROFILES``, ``EDGENAS_CACHE``);
otherwise ``./latency_tables`` / ``./device_profiles`` in the working directory when present, else the
shipped ones (``shipped``): the repository's top-level folders in a source checkout, the copies built
into the package (``edgenas/_data``, see ``setup.py``) in an installed wheel.

Tables are also written. In a checkout they are written where they are shipped, as before; in an
installed wheel the package folder is not the user's, so tables are written under the user's data
directory (``$XDG_DATA_HOME/edgenas/latency_tables``, default ``~/.local/share/...``) and the shipped
tables are read behind them (``TableStore``: a table written there hides the shipped one).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def in_checkout() -> bool:
    """True when edgenas runs from a source checkout (its pyproject.toml sits next to the package)."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "latency_tables").is_dir()


def shipped(name: str) -> Path:
    """A shipped folder (``device_profiles``, ``latency_tables``, ``tools``) of this edgenas."""
    if in_checkout():
        return REPO_ROOT / name
    return Path(str(files("edgenas") / "_data" / name))


def _pick(env: str, name: str) -> Path | None:
    if os.environ.get(env):
        return Path(os.environ[env])
    local = Path.cwd() / name
    return local if local.is_dir() else None


def tables_root() -> Path:
    """The default table root, read and written (see ``shipped_tables_behind``)."""
    picked = _pick("EDGENAS_TABLES", "latency_tables")
    if picked is not None:
        return picked
    if in_checkout():
        return REPO_ROOT / "latency_tables"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "edgenas" / "latency_tables"


def shipped_tables_behind() -> Path | None:
    """The shipped tables read behind the default ``tables_root()``: only in an installed edgenas with
    no override (an explicit root, ``EDGENAS_TABLES`` or ``./latency_tables`` is used alone)."""
    if in_checkout() or _pick("EDGENAS_TABLES", "latency_tables") is not None:
        return None
    return shipped("latency_tables")


def profiles_root() -> Path:
    return _pick("EDGENAS_DEVICE_PROFILES", "device_profiles") or shipped("device_profiles")


def cache_dir() -> Path:
    return Path(os.environ.get("EDGENAS_CACHE") or Path.home() / ".cache" / "edgenas")
