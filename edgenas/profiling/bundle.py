"""On-device bundles: every op instance a space needs, as model files a device can time without edgenas.

A bundle is a zip with ``manifest.json`` (op keys, batch sizes, threads, protocol settings,
backend, edgenas version, SHA-256 of every file), ``models/`` (one artifact per op instance and
batch, plus the reference op per batch), and the scripts from ``tools/`` that run it: the
standalone runner and the Android ``benchmark_model`` helper. Nothing else is executable.

``bundle_id`` is the hash of the manifest's content, so any edit to the manifest shows. The
manifest also carries a random ``nonce``: the runner keys the checksum of its results with it,
which ties a results file to its bundle and shows edits (a checksum, not a signature: whoever
holds the bundle can recompute it). A copy of every manifest is kept under
``<tables>/<device>/bundles/<bundle_id>.json`` so ``edgenas tables import results.json`` can
check results without the zip.

The file formats (ids, checksums, results schema) are defined once, in the runner, which this
module loads from ``tools/``: the device and edgenas cannot disagree about them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgenas import __version__
from edgenas.devices import DeviceProfile
from edgenas.errors import InputError
from edgenas.io import atomic_write_bytes, atomic_write_text
from edgenas.latency.store import TableStore
from edgenas.latency.table import now_iso
from edgenas.ops.registry import is_zero_cost
from edgenas.ops.spec import OpSpec
from edgenas.paths import cache_dir, shipped
from edgenas.profiling.base import Backend
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.runner import REFERENCE_OP, ProfileEvent, convert_artifacts, nchw, op_cache_key, op_module

RUNNER = "edgenas_device_runner.py"
ANDROID_HELPER = "android_benchmark.sh"


@functools.lru_cache(maxsize=1)
def device_runner():
    """The standalone runner as a module (its integrity functions define the bundle and results formats)."""
    path = shipped("tools") / RUNNER
    if not path.is_file():
        raise InputError(f"the on-device runner {path} is missing; reinstall edgenas (pip install edgenas, or "
                         f"pip install -e . in a source checkout)")
    spec = importlib.util.spec_from_file_location("edgenas_device_runner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Bundle:
    path: Path
    bundle_id: str
    manifest: dict
    manifest_copy: Path | None = None

    @property
    def entries(self) -> int:
        return len(self.manifest["entries"])


def runner_backends() -> list[str]:
    """Backends whose files the standalone runner executes (those naming a ``runner_runtime``)."""
    from edgenas.profiling.base import backend_class, list_backends

    return [n for n in list_backends() if backend_class(n).runner_runtime]


def check_bundle_backend(device: DeviceProfile, backend_name: str) -> None:
    from edgenas.profiling.base import backend_class

    if backend_class(backend_name).runner_runtime is None:
        raise InputError(f"bundles hold {' or '.join(runner_backends())} models (what the on-device runner executes), "
                         f"not {backend_name!r}; pick one with --backend")
    if backend_name not in device.backends:
        raise InputError(f"device {device.name} does not list backend {backend_name!r}; its backends: "
                         f"{', '.join(device.backends)} (edit {device.path} to add it)")


def build_bundle(device: DeviceProfile, backend: Backend, specs: list[OpSpec], batches: list[int], out: Path,
                 settings: ProtocolSettings = ProtocolSettings(), store: TableStore | None = None,
                 chunk_size: int = 12, cache: Path | None = None,
                 on_event: Callable[[ProfileEvent], None] | None = None) -> Bundle:
    """Convert every (non-zero-cost) spec at every batch size and write the bundle zip atomically.

    Artifacts come from the same cache as local profiling, so a bundle and ``edgenas profile``
    time the very same files. ``store``: where the manifest copy for later imports is kept.
    """
    check_bundle_backend(device, backend.name)
    device.check_precision(backend.name, backend.precision)
    out = Path(out)
    if out.suffix != ".zip":
        raise InputError(f"--bundle must name a .zip file, got {out}")
    device_runner()  # one clear error when tools/ is not there
    tools = shipped("tools")
    runner_src = (tools / RUNNER).read_bytes()
    helper_src = (tools / ANDROID_HELPER).read_bytes() if (tools / ANDROID_HELPER).is_file() else b""
    specs = [s for s in dict.fromkeys(specs) if not is_zero_cost(s)]
    if not specs:
        raise InputError("no op instances to put in the bundle (every op given is zero-cost)")
    cache = Path(cache or cache_dir())
    files: dict[str, bytes] = {}
    entries, references = [], {}
    total, done = len(specs) * len(batches), 0

    def add(spec: OpSpec, batch: int, name: str) -> dict:
        shape = nchw(spec, batch)
        path = backend.artifact(op_module(spec), shape, cache, op_cache_key(spec))
        data = path.read_bytes()
        rel = f"models/b{batch}/{name}{backend.suffix}"
        files[rel] = data
        return {"op_key": spec.key, "batch": batch, "file": rel, "sha256": hashlib.sha256(data).hexdigest(),
                "input_shape": backend.runtime_input_shape(shape)}

    convert_artifacts(backend, [(s, b) for b in batches for s in [REFERENCE_OP, *specs]], cache, on_event=on_event)
    for batch in batches:
        references[str(batch)] = {"id": f"ref-b{batch}", **add(REFERENCE_OP, batch, "reference")}
        for i, spec in enumerate(specs):
            if on_event:
                on_event(ProfileEvent("pack", done, total, batch, spec.key))
            entries.append({"id": f"b{batch}-{i:04d}", **add(spec, batch, f"{i:04d}")})
            done += 1
    manifest = {
        "format": "edgenas.bundle", "version": 1, "created_at": now_iso(), "edgenas_version": __version__,
        "device": device.name, "backend": backend.name, "runner_runtime": backend.runner_runtime,
        "precision": backend.precision, "threads": backend.threads, "layout": backend.layout,
        "converter_version": backend.converter_version(), "build_runtime_version": backend.runtime_version(),
        "batches": list(batches), "chunk_size": chunk_size, "protocol": settings.as_dict(),
        "reference_op": REFERENCE_OP.key, "references": references, "entries": entries,
        "tools": {name: hashlib.sha256(src).hexdigest() for name, src in ((RUNNER, runner_src),
                                                                          (ANDROID_HELPER, helper_src)) if src},
        "nonce": secrets.token_hex(16),
    }
    if backend.precision == "int8":  # what the models were quantized with: the recipe and its value ranges
        manifest["calibration"] = backend.calibration_for(nchw(REFERENCE_OP, batches[0])).describe()
    # the shell helper reads models.tsv, not the JSON: the manifest (hence bundle_id) covers its hash
    manifest["models_tsv_sha256"] = hashlib.sha256(models_tsv(manifest).encode()).hexdigest()
    manifest["bundle_id"] = device_runner().manifest_id(manifest)
    atomic_write_bytes(out, _zip(manifest, files, runner_src, helper_src))
    copy = save_manifest(store, manifest) if store is not None else None
    if on_event:
        on_event(ProfileEvent("saved", done, total, batches[-1]))
    return Bundle(out, manifest["bundle_id"], manifest, copy)


def _zip(manifest: dict, files: dict[str, bytes], runner_src: bytes, helper_src: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        z.writestr("models.tsv", models_tsv(manifest))
        for rel, data in files.items():
            z.writestr(rel, data)
        _add_script(z, RUNNER, runner_src)
        if helper_src:
            _add_script(z, ANDROID_HELPER, helper_src)
        z.writestr("README.txt", _readme(manifest))
    return buf.getvalue()


def _add_script(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def models_tsv(manifest: dict) -> str:
    """One line per model for the shell helper (which cannot read JSON): id, role, batch, file, threads."""
    lines = []
    for batch, ref in manifest["references"].items():
        lines.append(f"{ref['id']}\treference\t{batch}\t{ref['file']}\t{manifest['threads']}")
    for e in manifest["entries"]:
        lines.append(f"{e['id']}\tentry\t{e['batch']}\t{e['file']}\t{manifest['threads']}")
    return "\n".join(lines) + "\n"


def _readme(m: dict) -> str:
    return (f"edgenas bundle {m['bundle_id']}: {len(m['entries'])} {m['backend']} models for {m['device']}, "
            f"{m['threads']} thread(s), batch {', '.join(map(str, m['batches']))}.\n\n"
            "On the device (Python 3.8+, numpy and ai-edge-litert / tflite-runtime / onnxruntime):\n"
            f"  python3 {RUNNER} run THIS.zip --out results.json\n"
            "Android phone over adb, with TFLite's benchmark_model binary:\n"
            f"  sh {ANDROID_HELPER} THIS.zip /path/to/benchmark_model results.json\n"
            "Back where edgenas is installed:\n"
            "  edgenas tables import results.json\n")


def save_manifest(store: TableStore, manifest: dict) -> Path:
    """Keep a copy of the manifest, so results can be checked against it without the zip."""
    path = store.root / manifest["device"] / "bundles" / f"{manifest['bundle_id']}.json"
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def read_bundle_manifest(path: Path) -> dict:
    """The manifest of a bundle zip, checked against its bundle_id."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("manifest.json")
            if info.file_size > 64 << 20:
                raise ValueError("manifest.json is over 64 MiB")
            from edgenas.schemas import load_json_text

            manifest = load_json_text(z.read(info).decode("utf-8"), f"{path}: manifest.json")
    except FileNotFoundError:
        raise InputError(f"no such bundle: {path}") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise InputError(f"{path} is not an edgenas bundle ({e}); build one with edgenas profile --bundle") from None
    check_manifest(manifest, str(path))
    return manifest


def check_manifest(manifest, where: str) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != "edgenas.bundle":
        raise InputError(f"{where} is not an edgenas bundle manifest")
    if device_runner().manifest_id(manifest) != manifest.get("bundle_id"):
        raise InputError(f"{where}: the manifest was modified (it no longer hashes to its bundle_id "
                         f"{manifest.get('bundle_id')}); rebuild the bundle")
    from edgenas.schemas import BundleManifest, validate

    validate(BundleManifest, manifest, f"bundle manifest {where}", "rebuild the bundle with edgenas profile --bundle")
