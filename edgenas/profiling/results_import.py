"""Import a device's ``results.json`` into its latency table, after checking it against its bundle.

Checks, each failing with one line that names the problem: the schema; that the bundle it
names is known (a kept manifest copy, or ``--bundle``) and its manifest unmodified; that device,
backend, precision and threads are the bundle's; that every entry is an entry of the bundle
with the model SHA-256 the manifest lists (as the device computed it) and sane statistics; and
the results checksum, which catches any other edit. Only then are the rows merged, in one
atomic write: a rejected file changes nothing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edgenas.devices import get_profile
from edgenas.errors import EdgeNASError, InputError
from edgenas.latency.store import TableStore
from edgenas.latency.table import LatencyTable, TableSelection, now_iso, rows_from_stats
from edgenas.ops.spec import OpSpec
from edgenas.profiling.bundle import check_manifest, device_runner, read_bundle_manifest, save_manifest

RESULTS_FORMAT = "edgenas.results"
MEASURED_BY = ("edgenas_device_runner", "benchmark_model")
BENCHMARK_MODEL_NOTE = ("measured by TFLite benchmark_model: no per-call samples; mean_ms/std_ms/n are its avg/std/"
                        "count, median/p10/p90/rel_ci are empty; ref_ratio pairs each model with one reference run "
                        "just before it; min/max per entry are under benchmark_model_us")


class ResultsRejected(InputError):
    """A results file that is malformed, foreign to its bundle, or modified after the run."""


@dataclass
class ImportReport:
    file: Path
    device: str
    backend: str
    bundle_id: str
    measured_by: str
    runtime_version: str
    imported: int
    bundle_entries: int
    table: Path
    table_entries: int
    run_id: str
    warnings: list[str] = field(default_factory=list)


def is_results_file(path) -> bool:
    """True for a JSON file that says it is edgenas device results (cheap sniff, no validation)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    from edgenas.schemas import load_json_text, read_bounded

    try:
        data = load_json_text(read_bounded(path, "results file"), str(path))
    except InputError:
        return False
    return isinstance(data, dict) and data.get("format") == RESULTS_FORMAT


def read_results(path) -> tuple[dict, bytes]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    from edgenas.schemas import MAX_FILE_BYTES, load_json_text

    if len(raw) > MAX_FILE_BYTES:
        raise ResultsRejected(f"{path} is over {MAX_FILE_BYTES >> 20} MiB; not an edgenas results file")
    try:
        data = load_json_text(raw.decode("utf-8"), str(path), "was it copied completely?", allow_nan=False)
    except (InputError, UnicodeDecodeError) as e:
        raise ResultsRejected(str(e) if isinstance(e, InputError) else f"{path} is not UTF-8 JSON") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ResultsRejected(f"{path} is not an edgenas results file (expected \"format\": \"{RESULTS_FORMAT}\")")
    if data.get("version") != 1:
        raise ResultsRejected(f"{path}: results format version {data.get('version')!r}; this edgenas reads version 1")
    return data, raw


def find_manifest(bundle_id: str, device: str, store: TableStore, bundle: Path | None = None) -> dict:
    """The bundle's manifest: from ``bundle`` (a zip) or the copy kept when the bundle was built."""
    if bundle is not None:
        manifest = read_bundle_manifest(bundle)
        if manifest["bundle_id"] != bundle_id:
            raise ResultsRejected(f"the results belong to bundle {bundle_id}, but {bundle} is bundle "
                                  f"{manifest['bundle_id']}; pass the bundle the device ran")
        return manifest
    candidates = [store.root / device / "bundles" / f"{bundle_id}.json"] if _safe(device) else []
    candidates += sorted(store.root.glob(f"*/bundles/{bundle_id}.json")) if _safe(bundle_id) else []
    for path in candidates:
        if path.is_file():
            from edgenas.schemas import load_json_file

            manifest = load_json_file(path, "kept bundle manifest", "pass the bundle with --bundle")
            check_manifest(manifest, str(path))
            return manifest
    raise ResultsRejected(f"the results belong to bundle {bundle_id!r}, which is not among the bundles built here "
                          f"(no {store.root}/{device}/bundles/{bundle_id}.json); pass the bundle zip with --bundle")


def _safe(name) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and not name.startswith(".") and "*" not in name


def validate(results: dict, manifest: dict, where: str) -> None:
    """Raise ResultsRejected (one line) unless every result belongs to the bundle, unmodified."""
    def bad(msg):
        return ResultsRejected(f"{where}: {msg}; nothing was imported")

    for key, kind in (("entries", list), ("references", dict), ("checksum", str), ("device_facts", dict),
                      ("chunks", list)):
        present = key in results
        if (present and not isinstance(results[key], kind)) or (not present and key in ("entries", "checksum")):
            raise bad(f"'{key}' must be a {kind.__name__}")
    for key in ("device", "backend", "precision", "threads"):
        if results.get(key) != manifest.get(key):
            raise bad(f"{key} is {results.get(key)!r} but bundle {manifest['bundle_id']} was built for "
                      f"{manifest.get(key)!r}")
    if results.get("measured_by") not in MEASURED_BY:
        raise bad(f"measured_by must be one of {', '.join(MEASURED_BY)}, got {results.get('measured_by')!r}")
    rv = results.get("runtime_version")
    if not isinstance(rv, str) or not rv:
        raise bad("runtime_version is missing")
    entries = results.get("entries")
    if not isinstance(entries, list) or not entries:
        raise bad("it holds no entries")
    by_id = {e["id"]: e for e in manifest["entries"]}
    seen = set()
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("stats"), dict):
            raise bad("an entry is not an object with 'stats'")
        item = by_id.get(e.get("id"))
        if item is None:
            raise bad(f"entry {e.get('id')!r} ({e.get('op_key')}) is not part of bundle {manifest['bundle_id']}")
        if e["id"] in seen:
            raise bad(f"entry {e['id']} appears twice")
        seen.add(e["id"])
        if e.get("op_key") != item["op_key"] or e.get("batch") != item["batch"]:
            raise bad(f"entry {e['id']} says {e.get('op_key')} batch {e.get('batch')}, the bundle has "
                      f"{item['op_key']} batch {item['batch']}")
        if e.get("sha256") != item["sha256"]:
            raise bad(f"entry {e['id']} ({item['op_key']}) was measured on a model with SHA-256 "
                      f"{str(e.get('sha256'))[:16]}, not the bundle's {item['sha256'][:16]}")
        _check_stats(e["id"], e["stats"], bad)
    for batch in {str(e["batch"]) for e in entries}:
        ref = (results.get("references") or {}).get(batch) or {}
        want = manifest["references"][batch]["sha256"]
        if ref.get("sha256") != want:
            raise bad(f"the reference model for batch {batch} has SHA-256 {str(ref.get('sha256'))[:16]}, "
                      f"not the bundle's {want[:16]}")
    checksum = device_runner().results_checksum(results, manifest["nonce"])
    if results.get("checksum") != checksum:
        raise bad("it was modified after the device wrote it (checksum mismatch); import the file the runner wrote, "
                  "or run the bundle again")


def _check_stats(entry_id: str, s: dict, bad) -> None:
    from pydantic import ValidationError

    from edgenas.schemas import ResultStats, explain

    try:
        st = ResultStats.model_validate(s)
    except ValidationError as e:
        first = e.errors()[0]["loc"][:1]
        lead = "no positive median_ms or mean_ms: " if first in (("median_ms",), ("mean_ms",)) else ""
        raise bad(f"entry {entry_id}: {lead}{explain(e)} (latencies must be finite and > 0)") from None
    if st.median_ms is None and st.mean_ms is None:
        raise bad(f"entry {entry_id}: no positive median_ms or mean_ms")
    if None not in (st.p10_ms, st.p90_ms, st.median_ms) and not st.p10_ms <= st.median_ms <= st.p90_ms:
        raise bad(f"entry {entry_id}: p10 <= median <= p90 does not hold ({st.p10_ms}, {st.median_ms}, {st.p90_ms})")


def _measured_at(results: dict, manifest: dict) -> str:
    """The device's finish time when plausible (after the bundle was built, not in the future), else now."""
    now = now_iso()
    t = str(results.get("finished_at") or "")
    try:
        ok = (datetime.fromisoformat(manifest["created_at"]) <= datetime.fromisoformat(t)
              <= datetime.fromisoformat(now))
    except (ValueError, TypeError, KeyError):
        ok = False
    return t if ok else now


def results_table(results: dict, manifest: dict, file: Path, sha256: str, command: str = "") -> tuple[LatencyTable, str]:
    """(table of the imported rows with their run record, run_id); call ``validate`` first."""
    run_id = f"bundle-{manifest['bundle_id'][:8]}-{results['checksum'][:8]}"
    measured_at = _measured_at(results, manifest)
    rows = []
    for batch in sorted({e["batch"] for e in results["entries"]}):
        sel = TableSelection(results["device"], results["backend"], results["precision"], results["threads"], batch)
        chosen = [e for e in results["entries"] if e["batch"] == batch]
        stats = [(OpSpec.from_key(e["op_key"]), {k: (math.nan if v is None else v) for k, v in e["stats"].items()})
                 for e in chosen]
        rows += rows_from_stats(stats, sel, results["runtime_version"], run_id,
                                source=f"bundle:{results['measured_by']}")
    for r in rows:
        r["measured_at"] = measured_at
    facts = dict(results.get("device_facts") or {})
    run = {"kind": "bundle", "measured_by": results["measured_by"], "bundle_id": manifest["bundle_id"],
           "file": file.name, "sha256": sha256, "checksum": results["checksum"], "imported_at": now_iso(),
           "command": command, "environment": {**facts, "date": results.get("finished_at")},
           "runtime": results.get("runtime"), "runtime_version": results["runtime_version"],
           "runner_version": results.get("runner_version"), "protocol": results.get("protocol"),
           "reference_op": manifest.get("reference_op"), "chunks": results.get("chunks", []),
           "modules": results.get("modules"), "complete": results.get("complete"),
           "bundle": {k: manifest.get(k) for k in ("created_at", "edgenas_version", "converter_version",
                                                   "build_runtime_version", "layout")}}
    if results["measured_by"] == "benchmark_model":
        run["note"] = BENCHMARK_MODEL_NOTE
        run["benchmark_model_us"] = {e["op_key"] + f"@b{e['batch']}": e.get("benchmark_model", {})
                                     for e in results["entries"]}
    return LatencyTable().upsert(rows, {run_id: run}), run_id


def import_results(path, store: TableStore, bundle: Path | None = None, command: str = "") -> ImportReport:
    """Check ``results.json`` against its bundle and merge its rows into the device's table, all or nothing."""
    path = Path(path)
    results, raw = read_results(path)
    bundle_id, device = results.get("bundle_id"), results.get("device")
    if not isinstance(bundle_id, str) or not isinstance(device, str):
        raise ResultsRejected(f"{path}: bundle_id and device must be strings; nothing was imported")
    manifest = find_manifest(bundle_id, device, store, bundle)
    validate(results, manifest, str(path))
    new, run_id = results_table(results, manifest, path, hashlib.sha256(raw).hexdigest(), command)
    warnings = []
    try:
        ok, why = get_profile(device).matches(results.get("device_facts") or {})
        if not ok:
            warnings.append(f"the device facts in {path.name} do not match profile {device} ({why}); "
                            f"the rows are filed under {device} as the bundle says")
    except EdgeNASError as e:
        warnings.append(f"cannot check the device facts: {e}")
    if not results.get("complete"):
        warnings.append(f"{path.name} is partial ({len(results['entries'])} of {len(manifest['entries'])} "
                        f"entries): continue the run with --resume on the device to measure the rest")
    # one atomic write of the whole table, re-read under its lock (a concurrent profile keeps its rows)
    table, merged = store.update(device, results["backend"], lambda t: t.merge(new))
    if bundle is not None:
        save_manifest(store, manifest)
    return ImportReport(path, device, results["backend"], bundle_id, results["measured_by"],
                        results["runtime_version"], len(new), len(manifest["entries"]), table, len(merged), run_id,
                        warnings)
