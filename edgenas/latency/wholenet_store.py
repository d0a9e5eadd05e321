"""Fitted whole-network models, stored beside a device's op table.

``<tables>/<device>/<backend>.wholenet.json`` holds one model per (space, batch, threads), each with
its provenance: the measurements file and its sha256, its format, N, the fit error and when it was
made. A device needs no profile to have one: a model fitted from a third-party CSV for a device
edgenas has never seen is filed under that device name (``edgenas devices`` profiles are only needed
to *measure* on a device).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from edgenas.errors import InputError
from edgenas.io import atomic_write_text
from edgenas.latency.fit import WholeNetModel
from edgenas.latency.store import TableStore


def model_key(space: str, batch: int = 1, threads: int | None = None) -> str:
    return f"{space}/b{batch}/t{threads if threads else 'any'}"


class WholeNetStore:
    def __init__(self, store: TableStore | None = None):
        self.store = store or TableStore()

    def path(self, device: str, backend: str) -> Path:
        return self.store.path(device, backend).with_suffix(".wholenet.json")

    def load_all(self, device: str, backend: str) -> dict:
        p = self.path(device, backend)
        if not p.is_file():
            return {}
        try:
            d = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{p} is not a readable whole-network model file ({e}); delete it and refit") from None
        models = d.get("models") if isinstance(d, dict) else None
        if not isinstance(d, dict) or d.get("format") != "edgenas.wholenet-models" or not isinstance(models, dict) \
                or not all(isinstance(e, dict) and isinstance(e.get("model"), dict)
                           and isinstance(e.get("provenance", {}), dict) for e in models.values()):
            raise InputError(f"{p} is not an edgenas whole-network model file (format, models); delete it and refit")
        return models

    def get(self, device: str, backend: str, space: str, batch: int = 1, threads: int | None = None):
        """(model, provenance) or None; a model fitted without a thread count serves any.

        The model is validated (data only: a file carrying a serialized object is refused)."""
        models = self.load_all(device, backend)
        for key in (model_key(space, batch, threads), model_key(space, batch, None)):
            if key in models:
                entry = models[key]
                try:
                    model = WholeNetModel.from_dict(entry["model"])
                except InputError as e:
                    raise InputError(f"{self.path(device, backend)}: model {key}: {e}; delete it and refit") from None
                return model, entry.get("provenance", {})
        return None

    def put(self, device: str, backend: str, model: WholeNetModel, provenance: dict, batch: int = 1,
            threads: int | None = None) -> Path:
        models = self.load_all(device, backend)
        prov = {**provenance, "fitted": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        models[model_key(model.space, batch, threads)] = {"model": model.to_dict(), "provenance": prov}
        p = self.path(device, backend)
        return atomic_write_text(p, json.dumps({"format": "edgenas.wholenet-models", "version": 1,
                                                "device": device, "backend": backend, "models": models}, indent=1) + "\n")
