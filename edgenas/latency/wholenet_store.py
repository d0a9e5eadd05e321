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
from edgenas.io import atomic_write_text, locked
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
        p = self.store.readable(self.path(device, backend))
        if not p.is_file():
            return {}
        from edgenas.schemas import load_json_file

        d = load_json_file(p, "whole-network model file", "delete it and refit")
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
        prov = {**provenance, "fitted": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        p = self.path(device, backend)
        with locked(p):  # re-read under the lock: a model another process fitted meanwhile is kept
            models = self.load_all(device, backend)
            models[model_key(model.space, batch, threads)] = {"model": model.to_dict(), "provenance": prov}
            return atomic_write_text(p, json.dumps({"format": "edgenas.wholenet-models", "version": 1, "device": device,
                                                    "backend": backend, "models": models}, indent=1) + "\n")


class WholeNetPredictor:
    """A fitted whole-network model behind the interface the search uses (``predict``, ``sel``, ``calibration``).

    Black-box strategies (random, spos, enas) only ask for the latency of whole architectures, so a device
    known only from whole-network measurements (no op table) can be searched. The model predicts the
    network as it was measured (the measured config: e.g. the NB201 cifar10 skeleton), whatever preset the
    search trains."""

    uses_reference = False

    def __init__(self, model, provenance: dict, device: str, backend: str, batch: int = 1,
                 threads: int | None = None):
        from edgenas.latency.predictor import Calibration
        from edgenas.latency.table import TableSelection

        self.model, self.provenance = model, provenance
        self.sel = TableSelection(device, backend, "fp32", threads or provenance.get("threads"), batch)
        self.calibration = Calibration(model=f"wholenet:{model.level}", n_networks=int(provenance.get("n") or 0),
                                       fit_within_10pct=float(provenance.get("fit_within_10pct") or float("nan")))
        self.description = (f"whole-network {model.level} model fitted on {provenance.get('n')} networks of "
                            f"{provenance.get('source')}")
        self._cache: dict[str, float] = {}

    @classmethod
    def load(cls, device: str, backend: str, space, batch: int = 1, threads: int | None = None,
             store: TableStore | None = None) -> "WholeNetPredictor | None":
        found = WholeNetStore(store).get(device, backend, space.name, batch, threads)
        return cls(*found, device, backend, batch, threads) if found else None

    def _features(self, space, arch):
        from edgenas.spaces.nb201_arch import Nb201Arch

        if isinstance(arch, Nb201Arch):
            return arch
        counts: dict[str, float] = {"const": 1.0}
        for spec in space.op_specs(arch):
            counts[spec.key] = counts.get(spec.key, 0.0) + 1.0
        return counts

    def predict(self, space, arch):
        from edgenas.latency.predictor import Prediction

        key = repr(arch)
        ms = self._cache.get(key)
        if ms is None:
            ms = self._cache[key] = float(self.model.predict_many([self._features(space, arch)])[0])
        return Prediction(ms, ms, 0, True, [])

    def measured_ms(self, ref_ratio: float, median_ms: float) -> float:
        return median_ms

    def op_ms(self, specs):
        raise InputError("a whole-network latency model has no per-op latencies; profile or import an op table")


def search_predictor(device: str, backend: str, space, strategy: str, batch: int = 1, threads: int | None = None,
                     precision: str = "fp32", store: TableStore | None = None):
    """The latency predictor a search uses: the device's fitted whole-network model for black-box strategies
    (as 'edgenas predict' does), otherwise its op table (with calibration)."""
    from edgenas.latency.predictor import LatencyPredictor
    from edgenas.search.base import list_strategies, strategy_class

    store = store or TableStore()
    per_op = strategy_class(strategy).needs_op_latencies
    if not per_op and precision == "fp32":  # whole-network models are fitted on fp32 measurements
        wn = WholeNetPredictor.load(device, backend, space, batch, threads, store)
        if wn is not None:
            return wn
    try:
        return LatencyPredictor.load(device, backend, space, batch, threads, precision, store)
    except InputError:
        if per_op and WholeNetStore(store).get(device, backend, space.name, batch, threads) is not None:
            whole = ", ".join(n for n in list_strategies() if not strategy_class(n).needs_op_latencies)
            raise InputError(f"--strategy {strategy} needs per-op latencies (an op table), but {device}/{backend} "
                             f"only has a whole-network model; strategies that work with a whole-network model: "
                             f"{whole} (or profile/import an op table)") from None
        raise
