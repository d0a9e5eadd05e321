"""TableStore: the ``latency_tables/<device>/<backend>.csv`` tree."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgenas.errors import InputError
from edgenas.io import locked
from edgenas.latency.table import LatencyTable
from edgenas.paths import shipped_tables_behind, tables_root


class TableStore:
    """Tables under ``root``. With no root given, in an installed edgenas, the shipped tables are read
    behind the user's root (``shipped``): writes always go to ``root``, and a table written there
    (the shipped rows merged with new ones) hides the shipped file from then on."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else tables_root()
        self.shipped = None if root else shipped_tables_behind()

    def path(self, device: str, backend: str) -> Path:
        for part, what in ((device, "device"), (backend, "backend")):
            if not part or "/" in part or part.startswith("."):
                raise InputError(f"invalid {what} name {part!r}")
        return self.root / device / f"{backend}.csv"

    def readable(self, path: Path) -> Path:
        """``path`` (a file under ``root``) or, when it does not exist there, its shipped counterpart."""
        if self.shipped is not None and not path.exists():
            alt = self.shipped / path.relative_to(self.root)
            if alt.exists():
                return alt
        return path

    def files(self) -> list[Path]:
        found = {}
        for root in (self.shipped, self.root):  # the user's copy of a table hides the shipped one
            if root is not None and root.is_dir():
                found.update({p.relative_to(root): p for p in root.glob("*/*.csv")})
        return [found[k] for k in sorted(found)]

    def load(self, device: str, backend: str, missing_ok: bool = True) -> LatencyTable:
        p = self.readable(self.path(device, backend))
        if not p.exists():
            if missing_ok:
                return LatencyTable()
            raise InputError(f"no latency table for device {device!r}, backend {backend!r} under {self.root} "
                             f"(edgenas tables list shows what exists; edgenas profile --device {device} "
                             f"--backend {backend} builds it)")
        return LatencyTable.read(p)

    def load_all(self) -> LatencyTable:
        table = LatencyTable()
        for p in self.files():
            table = table.merge(LatencyTable.read(p))
        return table

    def save(self, table: LatencyTable, device: str, backend: str) -> Path:
        """Replace the table outright; writers that add rows use ``update`` (safe with concurrent writers)."""
        return table.write(self.path(device, backend))

    def update(self, device: str, backend: str,
               change: Callable[[LatencyTable], LatencyTable]) -> tuple[Path, LatencyTable]:
        """Re-read the table under its lock, apply ``change`` and write the result: rows another process
        wrote since this one last read are kept. Returns the path and the table as written."""
        with locked(self.path(device, backend)):
            table = change(self.load(device, backend))
            return self.save(table, device, backend), table
