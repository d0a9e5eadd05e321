"""Import published latency tables into our schema, keeping their provenance.

``proxylessnas``: the YAML lookup-table format of ProxylessNAS (``mobile_trim.yaml``) and
Once-for-All (``<res>_lookup_table.yaml``): ``key: {count, mean, var | std}`` in ms, batch 1.
Keys that our op types parse become typed rows; keys with fields outside them (OFA's ``se``,
``hs`` and absolute ``expand``) keep their exact string as ``op_key`` with parsed shapes and the
remaining fields in ``extra``, so a lookup by the published string still works.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import yaml

from edgenas.errors import InputError
from edgenas.latency.table import LatencyTable, now_iso
from edgenas.ops.spec import OpSpec, parse_shape, split_key

FORMATS = ("proxylessnas",)


def _loose_row(key: str) -> dict:
    """A row for a published key our op types do not parse: shapes and known fields typed, the rest kept."""
    op, (ih, iw, ic), out_txt, items = split_key(key)
    if out_txt.isdigit():
        oh, ow, oc = 1, 1, int(out_txt)
    else:
        oh, ow, oc = parse_shape(out_txt, key)
    fields, extra = {}, []
    for item in items:
        name, _, value = item.partition(":")
        if name in ("kernel", "stride", "expand", "idskip", "dilation") and value.isdigit():
            fields[name] = int(value)
        else:
            extra.append(item)
    return {"op_key": key, "op": op, "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow,
            "out_c": oc, "kernel": fields.get("kernel", 0), "stride": fields.get("stride", 1),
            "expand": fields.get("expand", 0), "dilation": fields.get("dilation", 1),
            "idskip": fields.get("idskip", 0), "extra": "-".join(extra)}


def import_proxylessnas(path, device: str, backend: str = "tflite", threads: int = 1, precision: str = "fp32",
                        runtime_version: str = "published", note: str = "") -> LatencyTable:
    path = Path(path)
    from edgenas.schemas import LutEntry, load_yaml_text, read_bounded, validate

    text = read_bounded(path, "lookup table")
    raw = text.encode("utf-8")
    data = load_yaml_text(text, str(path))
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path} is not a ProxylessNAS/OFA lookup table (expected 'key: {{count, mean, var}}')")
    run_id = "import-" + hashlib.sha256(raw).hexdigest()[:12]
    ts = now_iso()
    rows = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or "mean" not in entry:
            raise InputError(f"{path}: entry {key!r} has no 'mean' (expected {{count, mean, var}})")
        entry = validate(LutEntry, entry, f"{path}: entry {str(key)[:120]!r}",
                         "a published latency is a finite number of ms > 0").model_dump(exclude_none=True)
        try:
            spec = OpSpec.from_key(str(key))
            row = {**spec.to_row(), "extra": ""}
            if row["op_key"] != key:  # our rendering differs: keep the published string
                row = _loose_row(str(key))
        except InputError:
            row = _loose_row(str(key))
        mean = float(entry["mean"])
        std = float(entry["std"]) if "std" in entry else math.sqrt(float(entry["var"])) if "var" in entry else math.nan
        n = int(entry["count"]) if "count" in entry else None
        rows.append({**row, "device": device, "backend": backend, "runtime_version": runtime_version,
                     "precision": precision, "threads": threads, "batch": 1, "mean_ms": mean, "std_ms": std,
                     "cv": std / mean if mean > 0 and not math.isnan(std) else math.nan, "n": n,
                     "measured_at": ts, "source": f"import:proxylessnas:{path.name}", "run_id": run_id})
    runs = {run_id: {"kind": "import", "format": "proxylessnas", "file": path.name,
                     "sha256": hashlib.sha256(raw).hexdigest(), "imported_at": ts, "entries": len(rows),
                     "note": note}}
    return LatencyTable().upsert(rows, runs)


def export_proxylessnas(table: LatencyTable) -> str:
    """Write rows back in the ProxylessNAS YAML form (key: {count, mean, var})."""
    out = {}
    for r in table.df.itertuples():
        value = r.mean_ms if not math.isnan(r.mean_ms) else r.median_ms
        entry = {"count": int(r.n) if r.n is not None and str(r.n) != "<NA>" else 0, "mean": float(value)}
        if not math.isnan(r.std_ms):
            entry["var"] = float(r.std_ms) ** 2
        out[r.op_key] = entry
    return yaml.safe_dump(out, sort_keys=True)
