"""``edgenas export``: genotype + weights -> artifacts -> checks -> one report.

Steps: build the network and load its trained weights; write ``model.onnx`` (checker, opset,
operators) and ``model.tflite`` (ops, XNNPACK delegation, tflite_runtime 2.14 loadability);
compare both runtimes with PyTorch on real inputs; time the artifact of the device's backend
against the target. Everything lands in ``report.json`` and ``report.md`` (atomic writes) in
the output directory, and the result lists the checks that failed; the CLI turns the first
into one line and an exit code.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgenas.errors import DeploymentCheckFailed, EdgeNASError, InputError, TargetMissed
from edgenas.export.gate import TARGET_TOLERANCE
from edgenas.export.parity import DEFAULT_ATOL
from edgenas.io import atomic_write_text

FORMATS = ("onnx", "tflite")
REPORT_FORMAT = "edgenas.export-report"


@dataclass
class ExportOptions:
    formats: tuple[str, ...] = FORMATS
    batch: int | None = None  # default: the genotype's latency batch, else 1
    nhwc: bool = False  # TFLite input/output layout
    weights: Path | None = None  # default: the run's weights (genotype meta 'weights')
    out: Path | None = None  # default: RUN/export, or <genotype>-export beside a genotype file
    atol: float = DEFAULT_ATOL
    parity_samples: int = 64
    data: str | None = None  # parity images; default the run's dataset, else Fashion-MNIST
    device: str | None = None  # default: the genotype's (search run) device
    backend: str | None = None
    threads: int | None = None
    target_ms: float | None = None
    strict: bool = False
    measure: bool = True
    quick: bool = False  # shorter measurement protocol (smoke tests)
    tolerance: float = TARGET_TOLERANCE
    legacy_python: Path | None = None  # a Python with tflite_runtime 2.14: real load test + parity
    simplify: bool = True


@dataclass
class Failure:
    check: str
    message: str
    error: type

    def raise_(self):
        raise self.error(self.message)


@dataclass
class ExportResult:
    report: dict
    out: Path
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def parse_formats(text: str) -> tuple[str, ...]:
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise InputError(f"unknown export format {', '.join(bad) or repr(text)}; use onnx, tflite or onnx,tflite")
    return fmts


def load_weights(module, path: Path) -> None:
    """Load a state dict (safetensors, or a torch .pt/.pth state dict) that must fit ``module`` exactly."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no weights file at {path}; give --weights FILE (the run's weights.safetensors)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    except Exception as e:  # noqa: BLE001 - unreadable files raise many types
        raise InputError(f"cannot read weights {path}: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    if not isinstance(sd, dict):
        raise InputError(f"weights {path} hold a {type(sd).__name__}, not a state dict")
    want = module.state_dict()
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    shapes = [f"{k} {list(sd[k].shape)} vs {list(want[k].shape)}" for k in want
              if k in sd and tuple(sd[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {shapes[0]})")
        raise InputError(f"weights {path} do not fit this genotype's network: {'; '.join(parts)}; "
                         f"use the weights.safetensors of the run the genotype came from")
    module.load_state_dict(sd, strict=True)


def _locate(source: str) -> tuple[Path | None, Path | None]:
    """(run directory or None, directory of the genotype file or None) of a CLI source."""
    p = Path(source) if len(source) < 4096 and "\n" not in source else None
    try:
        if p is not None and p.is_dir():
            return p, p
        if p is not None and p.is_file():
            return (p.parent if (p.parent / "config.json").is_file() else None), p.parent
    except OSError:
        pass
    return None, None


def export_genotype(source: str, opts: ExportOptions, genotype=None,
                    on_progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export the genotype at ``source`` (run dir, file, JSON or DARTS text) and check the artifacts."""
    from edgenas.profiling.networks import arch_id
    from edgenas.spaces import load_genotype

    say = on_progress or (lambda phase: None)
    g = genotype or load_genotype(source)
    space = g.resolve()
    run_dir, gdir = _locate(source)
    meta = g.meta or {}
    try:
        batch = opts.batch or int(meta.get("batch") or 1)
    except (TypeError, ValueError):
        raise InputError(f"the genotype's meta.batch is {meta.get('batch')!r}, not a batch size; give --batch") from None
    if batch < 1:
        raise InputError(f"--batch must be positive, got {batch}")
    if opts.atol <= 0:
        raise InputError(f"--atol must be positive, got {opts.atol}")
    if opts.target_ms is not None and opts.target_ms <= 0:
        raise InputError(f"--target-ms must be positive, got {opts.target_ms}")
    out = Path(opts.out) if opts.out else (run_dir / "export" if run_dir else
                                           (gdir / f"{Path(source).stem}-export" if gdir else Path("export")))
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a directory")
    if opts.legacy_python is not None and not Path(opts.legacy_python).exists():
        raise InputError(f"--tflite-runtime-python {opts.legacy_python} does not exist")
    device = opts.device or meta.get("device")
    backend = opts.backend or meta.get("backend")
    target = opts.target_ms if opts.target_ms is not None else meta.get("target_ms")
    gating = opts.target_ms is not None or opts.strict
    if gating and target is None:
        raise InputError("--strict needs a target: give --target-ms (this genotype carries no target_ms)")
    if device:  # unknown names fail now, not after minutes of conversion
        from edgenas.devices import get_profile
        from edgenas.profiling.base import backend_class

        get_profile(device)
        if backend:
            backend_class(backend)

    # ---- the network and its weights ----------------------------------------------------------
    say("build")
    module = space.build(g.arch).eval()
    weights = Path(opts.weights) if opts.weights else (gdir / meta["weights"] if gdir and meta.get("weights") else None)
    if weights is not None:
        load_weights(module, weights)
        weights_note = str(weights)
    else:
        weights_note = None
    c, h, w = space.input_shape
    shape = (batch, c, h, w)
    failures: list[Failure] = []
    warnings: list[str] = []
    if weights is None:
        warnings.append("no weights: the network has its initial (untrained) weights; fine for checking "
                        "deployability and latency, not for shipping (give --weights or export a run directory)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict = {
        "format": REPORT_FORMAT, "version": 1,
        "genotype": {"source": str(source), "space": g.space, "preset": g.preset, "arch_id": arch_id(space, g.arch),
                     "meta": meta},
        "weights": weights_note, "batch": batch, "input_shape_nchw": list(shape),
        "tflite_io_layout": "NHWC" if opts.nhwc else "NCHW", "artifacts": {},
    }

    # ---- artifacts and parity -----------------------------------------------------------------
    data = opts.data
    if data is None and run_dir is not None and (run_dir / "config.json").is_file():
        try:
            from edgenas.schemas import load_json_file

            data = load_json_file(run_dir / "config.json", "run configuration").get("data")
            data = data if isinstance(data, str) else None
        except (OSError, InputError, AttributeError):
            data = None
    net = check_network(module, space, batch, out, opts, data=data, on_progress=say)
    artifacts = net.artifacts
    report["artifacts"], report["parity"] = net.info, net.parity
    failures += net.failures
    warnings += net.warnings

    # ---- latency ------------------------------------------------------------------------------
    gate = None
    if device and backend:
        from edgenas.export.gate import latency_gate
        from edgenas.profiling.protocol import ProtocolSettings

        say("latency")
        threads = opts.threads if opts.threads is not None else meta.get("threads")
        gate = latency_gate(space, g.arch, module, artifacts, device, backend, batch, threads, target,
                            measure=opts.measure, settings=ProtocolSettings.quick() if opts.quick else ProtocolSettings(),
                            tolerance=opts.tolerance)
        report["latency"] = gate.as_dict()
    else:
        report["latency"] = {"measured": False, "notes": [
            "no device/backend: give --device and --backend (a genotype from edgenas search carries them)"]}
    if gating:
        if gate is None or not gate.measured:
            why = (gate.notes[-1] if gate and gate.notes else report["latency"]["notes"][-1])
            failures.append(Failure("latency", f"latency could not be verified here ({why})", DeploymentCheckFailed))
        elif not gate.within_target:
            failures.append(Failure("latency", f"measured {gate.measured_ms:.4f} ms on {device}/{backend} batch "
                                               f"{batch} is over the target {target:g} ms (+{100 * opts.tolerance:g}% "
                                               f"noise allowance; raw p50 {gate.p50_ms:.4f}, p90 {gate.p90_ms:.4f} ms"
                                               + (f"; predicted {gate.predicted_ms:.4f} ms" if gate.predicted_ms else "")
                                               + ")", TargetMissed))
    elif gate is not None and gate.within_target is False:
        warnings.append(f"measured {gate.measured_ms:.4f} ms is over the genotype's target {target:g} ms "
                        f"(not enforced: add --strict or --target-ms)")
    if opts.strict:
        legacy = report["artifacts"].get("tflite", {}).get("tflite_runtime_2_14", {})
        if legacy and not legacy.get("loadable", True):
            failures.append(Failure("tflite_runtime 2.14", "model.tflite would not load in tflite_runtime 2.14: "
                                    + "; ".join(legacy.get("problems", []))[:300], DeploymentCheckFailed))

    # ---- summary ------------------------------------------------------------------------------
    diffs = [r["max_abs_diff"] for r in report["parity"].get("runtimes", {}).values()]
    report.update({
        "parity_max_abs_diff": max(diffs) if diffs else None,
        "measured_ms": gate.measured_ms if gate else None,
        "measured_p50_ms": gate.p50_ms if gate else None, "measured_p90_ms": gate.p90_ms if gate else None,
        "predicted_ms": gate.predicted_ms if gate else meta.get("predicted_ms"),
        "target_ms": target, "target_tolerance": opts.tolerance, "latency_gated": gating,
        "passed": not failures, "failures": [f"{f.check}: {f.message}" for f in failures], "warnings": warnings,
        "elapsed_s": round(time.perf_counter() - t0, 1), "out": str(out),
    })
    atomic_write_text(out / "report.json", json.dumps(_clean(report), indent=2) + "\n")
    atomic_write_text(out / "report.md", markdown(report))
    return ExportResult(report, out, failures)


@dataclass
class NetworkCheck:
    """Artifacts of one network, what the report says about them, and the checks they failed."""

    artifacts: dict[str, Path]
    info: dict
    parity: dict
    failures: list[Failure]
    warnings: list[str]


def check_network(module, space, batch: int, out: Path, opts: ExportOptions, data: str | None = None,
                  inputs=None, on_progress: Callable[[str], None] | None = None) -> NetworkCheck:
    """Write ``opts.formats`` for ``module`` into ``out`` and run the deployability and parity checks.

    ``inputs`` (``parity.ParityInputs``) skips loading images again (benchmarks check many networks).
    """
    say = on_progress or (lambda phase: None)
    c, h, w = space.input_shape
    shape = (batch, c, h, w)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"artifacts": {}}
    failures: list[Failure] = []
    warnings: list[str] = []
    artifacts: dict[str, Path] = {}
    if "onnx" in opts.formats:
        say("ONNX export")
        artifacts["onnx"] = _export_onnx(module, shape, out / "model.onnx", opts, report)
    if "tflite" in opts.formats:
        say("TFLite conversion")
        artifacts["tflite"] = _export_tflite(module, shape, out / "model.tflite", opts, report, failures, warnings)
    say("parity")
    parity = _parity(module, space, artifacts, batch, opts, data, inputs, report, failures)
    return NetworkCheck(artifacts, report["artifacts"], parity, failures, warnings)


def _export_onnx(module, shape, path: Path, opts: ExportOptions, report: dict) -> Path:
    from edgenas.export import onnx as onnx_export

    errors: list[str] = []
    tmp = path.with_name(path.name + ".partial")
    t = time.perf_counter()
    exporter = onnx_export.export_onnx(module, shape, tmp, errors=errors)
    onnx_export.check(tmp)
    simplified = onnx_export.simplify(tmp) if opts.simplify else "not simplified (disabled)"
    onnx_export.check(tmp)
    tmp.replace(path)
    info = {"path": str(path), "bytes": path.stat().st_size, "exporter": exporter,
            "exporter_fallback_reason": errors[0] if exporter == "legacy" and errors else None,
            "checker": "passed (full_check)", "simplification": simplified,
            "export_s": round(time.perf_counter() - t, 2), **onnx_export.summary(path)}
    report["artifacts"]["onnx"] = info
    return path


def _export_tflite(module, shape, path: Path, opts, report, failures, warnings) -> Path:
    from edgenas.export.deployability import legacy_compat, tflite_summary, xnnpack_delegation
    from edgenas.export.tflite import export_tflite

    tmp = path.with_name(path.name + ".partial")
    t = time.perf_counter()
    export_tflite(module, shape, tmp, nhwc=opts.nhwc)
    tmp.replace(path)
    info = {"path": str(path), "bytes": path.stat().st_size, "converter": _litert_torch_version(),
            "export_s": round(time.perf_counter() - t, 2), **tflite_summary(path)}
    deleg = xnnpack_delegation(path)
    info["xnnpack"] = deleg.as_dict()
    if not deleg.fully_delegated:
        ops = ", ".join(f"{k} x{v}" for k, v in deleg.not_delegated.items())
        failures.append(Failure("xnnpack", f"model.tflite has ops XNNPACK does not delegate: {ops} "
                                           f"(they fall back to slow reference kernels)", DeploymentCheckFailed))
    legacy = legacy_compat(path)
    info["tflite_runtime_2_14"] = legacy.as_dict()
    if not legacy.loadable:
        warnings.append("tflite_runtime 2.14 (static check) would not load model.tflite: " + "; ".join(legacy.problems))
    report["artifacts"]["tflite"] = info
    return path


def _litert_torch_version() -> str:
    try:
        from importlib.metadata import version

        return f"litert-torch {version('litert-torch')}"
    except Exception:  # noqa: BLE001
        return "litert-torch"


def _parity(module, space, artifacts, batch, opts, data, inputs, report, failures) -> dict:
    import numpy as np

    from edgenas.export import parity as P

    if inputs is None or len(inputs.x) % batch:
        inputs = P.parity_inputs(space.input_shape, opts.parity_samples, batch, data)
    ref = P.torch_outputs(module, inputs.x)
    res: dict = {"inputs": inputs.source, "real_inputs": inputs.real, "n": int(len(inputs.x)), "atol": opts.atol,
                 "rule": f"max |output - PyTorch| <= {opts.atol:g}, and top-1 equal wherever PyTorch's top-2 margin "
                         f"> {2 * opts.atol:g}", "runtimes": {}}
    if inputs.labels is not None and ref.ndim == 2 and ref.shape[1] == space.num_classes:
        res["pytorch_top1_accuracy"] = float((ref.argmax(1) == inputs.labels).mean())
    runs = []
    if "onnx" in artifacts:
        runs.append(("onnxruntime", lambda: P.onnx_outputs(artifacts["onnx"], inputs.x, batch)))
    if "tflite" in artifacts:
        runs.append(("tflite", lambda: P.tflite_outputs(artifacts["tflite"], inputs.x, batch, opts.nhwc)))
    for name, fn in runs:
        try:
            got = fn()
        except Exception as e:  # noqa: BLE001 - a runtime that cannot run the artifact is a failed check
            r = {"passed": False, "max_abs_diff": float("inf"), "problem": f"could not run: {type(e).__name__}: "
                                                                             f"{' '.join(str(e).split())[:200]}"}
        else:
            r = P.compare(ref, got, opts.atol)
        res["runtimes"][name] = r
        if not r["passed"]:
            failures.append(Failure("parity", P.describe_failure(name, r, opts.atol) + f" against PyTorch on "
                                    f"{res['n']} inputs", DeploymentCheckFailed))
    if opts.legacy_python is not None and "tflite" in artifacts:
        from edgenas.export.legacy_runtime import run_model

        lr = run_model(opts.legacy_python, artifacts["tflite"], P.to_layout(inputs.x, opts.nhwc))
        entry = {"runtime": lr.get("runtime"), "loaded": lr["loaded"], "error": lr.get("error")}
        if lr["loaded"]:
            y = lr["outputs"]
            y = y.transpose(0, 3, 1, 2) if opts.nhwc and y.ndim == 4 else y
            entry.update(P.compare(ref, np.asarray(y), opts.atol))
        report["artifacts"]["tflite"]["tflite_runtime_2_14"]["load_test"] = entry
        res["runtimes"]["tflite_runtime_legacy"] = entry if lr["loaded"] else {"passed": False, "max_abs_diff": float("inf"),
                                                                              "problem": lr.get("error")}
        if not lr["loaded"]:
            failures.append(Failure("tflite_runtime", f"{lr.get('runtime')} could not load model.tflite: "
                                    f"{lr.get('error')}", DeploymentCheckFailed))
        elif not entry["passed"]:
            failures.append(Failure("parity", P.describe_failure(lr.get("runtime", "legacy runtime"), entry, opts.atol),
                                    DeploymentCheckFailed))
    res["passed"] = all(r.get("passed") for r in res["runtimes"].values())
    return res


def _clean(obj):
    """JSON-safe: NaN/inf -> null, numpy scalars -> Python, paths -> str."""
    import math

    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return _clean(obj.item())
    return obj


def markdown(r: dict) -> str:
    """A short human summary of the report."""
    g = r["genotype"]
    lines = [f"# edgenas export: {g['space']}/{g['preset'] or 'custom'} {g['arch_id']}", "",
             f"- result: **{'PASSED' if r['passed'] else 'FAILED'}**" + ("" if r["passed"] else
                                                                         " - " + "; ".join(r["failures"])),
             f"- weights: {r['weights'] or 'none (untrained)'}; batch {r['batch']}, input {r['input_shape_nchw']} "
             f"(TFLite I/O {r['tflite_io_layout']})"]
    a = r["artifacts"]
    if "onnx" in a:
        o = a["onnx"]
        lines.append(f"- ONNX: {o['path']} ({o['bytes'] / 1e6:.2f} MB), {o['exporter']} exporter"
                     + (f" (dynamo failed: {o['exporter_fallback_reason']})" if o.get("exporter_fallback_reason") else "")
                     + f", opset {o['opset'].get('ai.onnx')}, checker {o['checker']}, {o['nodes']} nodes: "
                     + ", ".join(f"{k} {v}" for k, v in o["op_counts"].items()))
    if "tflite" in a:
        t = a["tflite"]
        x = t["xnnpack"]
        lines.append(f"- TFLite: {t['path']} ({t['bytes'] / 1e6:.2f} MB), {t['converter']}: "
                     + ", ".join(f"{k} {v}" for k, v in t["op_counts"].items()))
        lines.append(f"  - XNNPACK: {'every op delegated' if x['fully_delegated'] else 'NOT delegated: ' + str(x['not_delegated'])}"
                     f" ({x['partitions']} partition(s)); STABLEHLO/custom ops: {', '.join(x['stablehlo_or_custom']) or 'none'}")
        lg = t["tflite_runtime_2_14"]
        lt = lg.get("load_test")
        lines.append(f"  - tflite_runtime 2.14: {'loadable' if lg['loadable'] else 'NOT loadable: ' + '; '.join(lg['problems'])}"
                     f" (static check)" + (f"; real load test: {'loaded' if lt['loaded'] else 'FAILED: ' + str(lt['error'])}"
                                           f" ({lt['runtime']})" if lt else ""))
    p = r["parity"]
    lines.append(f"- parity on {p['inputs']}: " + "; ".join(
        f"{k} max abs diff {v['max_abs_diff']:.2e}, top-1 agreement "
        + (f"{100 * v['top1_agreement']:.1f}%" if v.get("top1_agreement") is not None else "n/a")
        + ("" if v["passed"] else " FAILED") for k, v in p["runtimes"].items()) + f" (tolerance {p['atol']:g})")
    lat = r["latency"]
    if lat.get("measured"):
        lines.append(f"- latency on {lat['device']}/{lat['backend']} batch {lat['batch']}, {lat['threads']} thread(s): "
                     f"measured {lat['measured_ms']:.4f} ms (raw p50 {lat['p50_ms']:.4f}, p90 {lat['p90_ms']:.4f} ms), "
                     f"predicted {_ms(lat['predicted_ms'])}, target {_ms(r['target_ms'])}"
                     + (f" -> {'within' if lat['within_target'] else 'OVER'} target (+{100 * r['target_tolerance']:g}%)"
                        if lat.get("within_target") is not None else ""))
    else:
        lines.append(f"- latency: not measured; predicted {_ms(r['predicted_ms'])}, target {_ms(r['target_ms'])}")
    for n in lat.get("notes", []):
        lines.append(f"  - {n}")
    for wmsg in r["warnings"]:
        lines.append(f"- warning: {wmsg}")
    return "\n".join(lines) + "\n"


def _ms(v) -> str:
    return f"{v:.4f} ms" if isinstance(v, (int, float)) and v is not None else "-"


def first_failure(result: ExportResult) -> EdgeNASError | None:
    """The error the CLI raises: parity and deployability before latency, all named in one line."""
    if not result.failures:
        return None
    order = {"parity": 0, "tflite_runtime": 1, "xnnpack": 2, "tflite_runtime 2.14": 3, "latency": 4}
    fs = sorted(result.failures, key=lambda f: order.get(f.check, 9))
    head = fs[0]
    extra = f" (also: {'; '.join(f.check for f in fs[1:])})" if len(fs) > 1 else ""
    return head.error(f"export check failed: {head.message}{extra}; report: {result.out / 'report.json'}")
