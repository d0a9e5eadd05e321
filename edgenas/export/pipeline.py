"""``edgenas export``: genotype + weights -> artifacts -> checks -> one report.

Stages (``export_genotype``): plan (resolve the genotype, batch, output directory, device and
target; bad input fails here, before minutes of conversion), build (the network and its trained
weights), ship (each format's backend writes its artifact with its static checks: ``model.onnx``
through the ONNX checker, ``model.tflite`` with XNNPACK delegation and tflite_runtime 2.14
loadability), parity (each backend runs its artifact on real inputs against PyTorch), latency
(the device backend's artifact timed against the target), report. Everything lands in
``report.json`` and ``report.md`` (atomic writes) in the output directory, and the result lists
the checks that failed; the CLI turns the first into one line and an exit code.

Formats are the backends' ``export_format``: this module names no runtime.

At ``precision`` int8 each backend ships its quantized artifact (``model_int8.onnx``, ...), calibrated
on training images of the run's dataset, and parity becomes the int8 checks (``int8_checks``:
accuracy against the fp32 network and top-1 agreement on the real test set, size); the latency
gate times the int8 artifact against the int8 table.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgenas.errors import DeploymentCheckFailed, EdgeNASError, InputError, TargetMissed
from edgenas.export.parity import DEFAULT_ATOL
from edgenas.io import atomic_write_text, json_safe
from edgenas.profiling.protocol import TARGET_TOLERANCE

REPORT_FORMAT = "edgenas.export-report"


@dataclass
class ExportOptions:
    formats: tuple[str, ...] | None = None  # default: every format a backend ships (``export_formats``)
    batch: int | None = None  # default: the genotype's latency batch, else 1
    nhwc: bool = False  # channel-last input/output, for backends whose artifacts can take it (TFLite)
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
    precision: str = "fp32"  # int8: quantized artifacts, checked on the test set (``int8_checks``)
    int8_samples: int = 10_000  # test images of the int8 checks (Fashion-MNIST's whole test set)
    io: str = "float"  # an int8 model's input/output type: "float" or "int8" (``Backend.int8_io``)


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


def export_formats() -> dict[str, str]:
    """{export format: backend name}: every format a backend ships, the first backend by name for each."""
    from edgenas.profiling.base import backend_class, list_backends

    formats: dict[str, str] = {}
    for name in list_backends():
        fmt = backend_class(name).export_format
        if fmt:
            formats.setdefault(fmt, name)
    return formats


def parse_formats(text: str) -> tuple[str, ...]:
    known = list(export_formats())
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in fmts if f not in known]
    if bad or not fmts:
        raise InputError(f"unknown export format {', '.join(bad) or repr(text)}; use {', '.join(known)} "
                         f"or {','.join(known)}")
    return fmts


def export_backends(opts: ExportOptions) -> dict:
    """{format: backend instance} for ``opts.formats``, in ``export_formats`` order, one thread each.

    Every backend gets the export options as backend options and takes those it understands. Without
    ``formats``, every format whose backend runs ``opts.precision``; a named format whose backend
    cannot is one line (InputError).
    """
    from edgenas.profiling.base import backend_class

    if opts.io not in ("float", "int8"):
        raise InputError(f"--io must be float or int8, got {opts.io!r}")
    if opts.io != "float" and opts.precision != "int8":
        raise InputError(f"--io {opts.io} is for quantized models: add --precision int8")

    def fits(name):
        cls = backend_class(name)
        return opts.precision in cls.precisions and (opts.io == "float" or opts.io in cls.int8_io)

    wanted = opts.formats or tuple(f for f, name in export_formats().items() if fits(name))
    if not wanted:
        raise InputError(f"no export format runs precision {opts.precision!r}"
                         + (f" with {opts.io} I/O" if opts.io != "float" else "") + " here")
    for fmt, name in export_formats().items():
        if fmt in wanted and opts.io not in backend_class(name).int8_io and opts.io != "float":
            able = [f for f, n in export_formats().items() if opts.io in backend_class(n).int8_io]
            raise InputError(f"--format {fmt} cannot give {opts.io} model I/O (its int8 models keep float I/O); "
                             f"formats that can: {', '.join(able) or 'none'}")
    return {fmt: backend_class(name)(threads=1, precision=opts.precision, nhwc=opts.nhwc, simplify=opts.simplify,
                                     legacy_python=opts.legacy_python, io=opts.io)
            for fmt, name in export_formats().items() if fmt in wanted}


def artifact_name(backend) -> str:
    """``model.onnx`` at fp32, ``model_int8.onnx`` at int8: both can sit in one export directory."""
    return f"model{'' if backend.precision == 'fp32' else '_' + backend.precision}{backend.suffix}"


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


@dataclass
class _Plan:
    """What an export will do, settled before anything slow runs."""

    genotype: object
    space: object
    run_dir: Path | None
    gdir: Path | None
    meta: dict
    batch: int
    out: Path
    device: str | None
    backend: str | None
    target: float | None
    gating: bool  # the target is enforced (--target-ms or --strict)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, *self.space.input_shape)


def export_genotype(source: str, opts: ExportOptions, genotype=None,
                    on_progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export the genotype at ``source`` (run dir, file, JSON or DARTS text) and check the artifacts.

    ``genotype``: the already loaded genotype of ``source`` (e.g. at another ``--space/--preset``).
    """
    say = on_progress or (lambda phase: None)
    plan = _plan(source, opts, genotype)
    say("build")
    module, weights, warnings = _build(plan, opts)
    plan.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report = _report_head(source, plan, opts, weights)
    net = check_network(module, plan.space, plan.batch, plan.out, opts, data=_parity_data(plan, opts),
                        on_progress=say)
    report["artifacts"], report["parity"] = net.info, net.parity
    failures = list(net.failures)
    warnings += net.warnings
    gate, report["latency"] = _latency(plan, opts, module, net.artifacts, say)
    latency_failures, latency_warnings = _latency_check(plan, opts, gate, report["latency"])
    failures += latency_failures
    warnings += latency_warnings
    if opts.strict:
        failures += net.strict_failures
    report.update(_summary(plan, opts, gate, report, failures, warnings, t0))
    atomic_write_text(plan.out / "report.json", json.dumps(json_safe(report), indent=2) + "\n")
    atomic_write_text(plan.out / "report.md", markdown(report))
    return ExportResult(report, plan.out, failures)


def _plan(source: str, opts: ExportOptions, genotype=None) -> _Plan:
    from edgenas.spaces import load_genotype

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
    from edgenas.quant.precision import check_precision

    check_precision(opts.precision)
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

        prof = get_profile(device)
        if backend:
            backend_class(backend).check_precision(opts.precision)
            prof.check_precision(backend, opts.precision)
    return _Plan(g, space, run_dir, gdir, meta, batch, out, device, backend, target, gating)


def _build(plan: _Plan, opts: ExportOptions):
    """(network in eval mode with its weights loaded, weights path or None, warnings)."""
    module = plan.space.build(plan.genotype.arch).eval()
    meta = plan.meta
    weights = (Path(opts.weights) if opts.weights else
               (plan.gdir / meta["weights"] if plan.gdir and meta.get("weights") else None))
    warnings: list[str] = []
    if weights is not None:
        load_weights(module, weights)
    else:
        warnings.append("no weights: the network has its initial (untrained) weights; fine for checking "
                        "deployability and latency, not for shipping (give --weights or export a run directory)")
    return module, weights, warnings


def _report_head(source: str, plan: _Plan, opts: ExportOptions, weights: Path | None) -> dict:
    from edgenas.profiling.networks import arch_id

    g = plan.genotype
    return {
        "format": REPORT_FORMAT, "version": 1,
        "genotype": {"source": str(source), "space": g.space, "preset": g.preset,
                     "arch_id": arch_id(plan.space, g.arch), "meta": plan.meta},
        "weights": str(weights) if weights is not None else None, "batch": plan.batch, "precision": opts.precision,
        "input_shape_nchw": list(plan.shape), "tflite_io_layout": "NHWC" if opts.nhwc else "NCHW", "artifacts": {},
    }


def _parity_data(plan: _Plan, opts: ExportOptions) -> str | None:
    """The parity images: ``--data``, else the run's dataset (its config.json), else None (the default)."""
    if opts.data is not None or plan.run_dir is None or not (plan.run_dir / "config.json").is_file():
        return opts.data
    try:
        from edgenas.schemas import load_json_file

        data = load_json_file(plan.run_dir / "config.json", "run configuration").get("data")
        return data if isinstance(data, str) else None
    except (OSError, InputError, AttributeError):
        return None


def _latency(plan: _Plan, opts: ExportOptions, module, artifacts: dict, say) -> tuple:
    """(the latency gate's result, or None without a device and backend; the report's latency section)."""
    if not (plan.device and plan.backend):
        return None, {"measured": False, "notes": [
            "no device/backend: give --device and --backend (a genotype from edgenas search carries them)"]}
    from edgenas.export.gate import latency_gate
    from edgenas.profiling.protocol import ProtocolSettings

    say("latency")
    threads = opts.threads if opts.threads is not None else plan.meta.get("threads")
    gate = latency_gate(plan.space, plan.genotype.arch, module, artifacts, plan.device, plan.backend, plan.batch,
                        threads, plan.target, measure=opts.measure, precision=opts.precision,
                        settings=ProtocolSettings.quick() if opts.quick else ProtocolSettings(),
                        tolerance=opts.tolerance)
    return gate, gate.as_dict()


def _latency_check(plan: _Plan, opts: ExportOptions, gate, latency: dict) -> tuple[list[Failure], list[str]]:
    """(failures, warnings) of the latency check: enforced when gating, else a warning when over the target."""
    target = plan.target
    if not plan.gating:
        if gate is not None and gate.within_target is False:
            return [], [f"measured {gate.measured_ms:.4f} ms is over the genotype's target {target:g} ms "
                        f"(not enforced: add --strict or --target-ms)"]
        return [], []
    if gate is None or not gate.measured:
        why = (gate.notes[-1] if gate and gate.notes else latency["notes"][-1])
        return [Failure("latency", f"latency could not be verified here ({why})", DeploymentCheckFailed)], []
    if not gate.within_target:
        return [Failure("latency", f"measured {gate.measured_ms:.4f} ms on {plan.device}/{plan.backend} batch "
                                   f"{plan.batch} is over the target {target:g} ms (+{100 * opts.tolerance:g}% "
                                   f"noise allowance; raw p50 {gate.p50_ms:.4f}, p90 {gate.p90_ms:.4f} ms"
                                   + (f"; predicted {gate.predicted_ms:.4f} ms" if gate.predicted_ms else "")
                                   + ")", TargetMissed)], []
    return [], []


def _summary(plan: _Plan, opts: ExportOptions, gate, report: dict, failures: list[Failure], warnings: list[str],
             t0: float) -> dict:
    diffs = [r["max_abs_diff"] for r in report["parity"].get("runtimes", {}).values()]
    return {
        "parity_max_abs_diff": max(diffs) if diffs else None,
        "measured_ms": gate.measured_ms if gate else None,
        "measured_p50_ms": gate.p50_ms if gate else None, "measured_p90_ms": gate.p90_ms if gate else None,
        "predicted_ms": gate.predicted_ms if gate else plan.meta.get("predicted_ms"),
        "target_ms": plan.target, "target_tolerance": opts.tolerance, "latency_gated": plan.gating,
        "passed": not failures, "failures": [f"{f.check}: {f.message}" for f in failures], "warnings": warnings,
        "elapsed_s": round(time.perf_counter() - t0, 1), "out": str(plan.out),
    }


@dataclass
class NetworkCheck:
    """Artifacts of one network, what the report says about them, and the checks they failed."""

    artifacts: dict[str, Path]
    info: dict
    parity: dict
    failures: list[Failure]
    warnings: list[str]
    strict_failures: list[Failure] = field(default_factory=list)  # fail the export only under --strict


def check_network(module, space, batch: int, out: Path, opts: ExportOptions, data: str | None = None,
                  inputs=None, on_progress: Callable[[str], None] | None = None) -> NetworkCheck:
    """Write ``opts.formats`` for ``module`` into ``out`` and run the deployability and parity checks.

    ``inputs`` (``parity.ParityInputs``) skips loading images again (benchmarks check many networks).
    """
    say = on_progress or (lambda phase: None)
    shape = (batch, *space.input_shape)
    out.mkdir(parents=True, exist_ok=True)
    check = NetworkCheck({}, {}, {}, [], [])
    backends = export_backends(opts)
    if opts.precision == "int8":
        from edgenas.export.int8_checks import calibration_images

        say("int8 calibration data")
        calibration = calibration_images(data, space.input_shape, batch)
        for backend in backends.values():
            backend.calibration = calibration
    for fmt, backend in backends.items():
        say(f"{fmt} export")
        shipped = backend.ship(module, shape, out / artifact_name(backend))
        check.artifacts[fmt], check.info[fmt] = shipped.path, shipped.info
        check.failures += [Failure(c, m, DeploymentCheckFailed) for c, m in shipped.failures]
        check.strict_failures += [Failure(c, m, DeploymentCheckFailed) for c, m in shipped.strict_failures]
        check.warnings += shipped.warnings
    say("parity")
    check.parity = (_int8_checks if opts.precision == "int8" else _parity)(module, space, backends, check, batch,
                                                                            opts, data, inputs)
    return check


def _int8_checks(module, space, backends: dict, check: NetworkCheck, batch, opts, data, inputs) -> dict:
    """The int8 form of the parity section: each artifact against the fp32 network on the test set."""
    from edgenas.export import int8_checks as Q
    from edgenas.export import parity as P

    if inputs is None or len(inputs.x) % batch:
        inputs = P.parity_inputs(space.input_shape, opts.int8_samples, batch, data)
    ref = P.torch_outputs(module, inputs.x)
    res: dict = {"inputs": inputs.source, "real_inputs": inputs.real, "n": int(len(inputs.x)), "atol": None,
                 "rule": f"int8: accuracy at most {100 * Q.MAX_ACCURACY_DROP:g} point below the fp32 network's and "
                         f">= {100 * Q.MIN_AGREEMENT:g}% top-1 agreement with it", "runtimes": {}}
    for fmt, backend in backends.items():
        path = check.artifacts[fmt]
        try:
            got = backend.outputs(path, inputs.x, batch)
        except Exception as e:  # noqa: BLE001 - a runtime that cannot run the artifact is a failed check
            msg = f"could not run: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
            res["runtimes"][backend.name] = {"passed": False, "max_abs_diff": float("inf"), "problem": msg}
            check.failures.append(Failure("int8", f"{backend.name} {msg}", DeploymentCheckFailed))
            continue
        entry, failures = Q.check(ref, got, inputs.labels, Path(path).stat().st_size,
                                  check.info[fmt].get("float_bytes"))
        res["runtimes"][backend.name] = entry
        check.failures += [Failure(c, f"{backend.name}: {m}", DeploymentCheckFailed) for c, m in failures]
        # other runtimes of the same artifact must compute what its own runtime computes
        for name, e, more in backend.more_parity(path, inputs.x, got, opts.atol, check.info[fmt]):
            res["runtimes"][name] = e
            check.failures += [Failure(c, m, DeploymentCheckFailed) for c, m in more]
    res["passed"] = all(r.get("passed") for r in res["runtimes"].values())
    return res


def _parity(module, space, backends: dict, check: NetworkCheck, batch, opts, data, inputs) -> dict:
    from edgenas.export import parity as P

    if inputs is None or len(inputs.x) % batch:
        inputs = P.parity_inputs(space.input_shape, opts.parity_samples, batch, data)
    ref = P.torch_outputs(module, inputs.x)
    res: dict = {"inputs": inputs.source, "real_inputs": inputs.real, "n": int(len(inputs.x)), "atol": opts.atol,
                 "rule": f"max |output - PyTorch| <= {opts.atol:g}, and top-1 equal wherever PyTorch's top-2 margin "
                         f"> {2 * opts.atol:g}", "runtimes": {}}
    if inputs.labels is not None and ref.ndim == 2 and ref.shape[1] == space.num_classes:
        res["pytorch_top1_accuracy"] = float((ref.argmax(1) == inputs.labels).mean())
    for fmt, backend in backends.items():
        try:
            got = backend.outputs(check.artifacts[fmt], inputs.x, batch)
        except Exception as e:  # noqa: BLE001 - a runtime that cannot run the artifact is a failed check
            r = {"passed": False, "max_abs_diff": float("inf"), "problem": f"could not run: {type(e).__name__}: "
                                                                             f"{' '.join(str(e).split())[:200]}"}
        else:
            r = P.compare(ref, got, opts.atol)
        res["runtimes"][backend.name] = r
        if not r["passed"]:
            check.failures.append(Failure("parity", P.describe_failure(backend.name, r, opts.atol)
                                          + f" against PyTorch on {res['n']} inputs", DeploymentCheckFailed))
    for fmt, backend in backends.items():
        for name, entry, failures in backend.more_parity(check.artifacts[fmt], inputs.x, ref, opts.atol,
                                                         check.info[fmt]):
            res["runtimes"][name] = entry
            check.failures += [Failure(c, m, DeploymentCheckFailed) for c, m in failures]
    res["passed"] = all(r.get("passed") for r in res["runtimes"].values())
    return res


def markdown(r: dict) -> str:
    """A short human summary of the report."""
    g = r["genotype"]
    lines = [f"# edgenas export: {g['space']}/{g['preset'] or 'custom'} {g['arch_id']}", "",
             f"- result: **{'PASSED' if r['passed'] else 'FAILED'}**" + ("" if r["passed"] else
                                                                         " - " + "; ".join(r["failures"])),
             f"- weights: {r['weights'] or 'none (untrained)'}; batch {r['batch']}, input {r['input_shape_nchw']} "
             f"(TFLite I/O {r['tflite_io_layout']})"]
    from edgenas.profiling.base import backend_class

    formats = export_formats()
    for fmt, info in r["artifacts"].items():
        lines += backend_class(formats[fmt]).report_lines(info)
    p = r["parity"]
    if r.get("precision") == "int8":
        from edgenas.export.int8_checks import markdown_line

        lines += [markdown_line(k, v) for k, v in p["runtimes"].items()]
    else:
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
    order = {"parity": 0, "int8": 0, "int8_accuracy": 0, "int8_agreement": 0, "tflite_runtime": 1, "xnnpack": 2, "tflite_runtime 2.14": 3, "latency": 4}
    fs = sorted(result.failures, key=lambda f: order.get(f.check, 9))
    head = fs[0]
    extra = f" (also: {'; '.join(f.check for f in fs[1:])})" if len(fs) > 1 else ""
    return head.error(f"export check failed: {head.message}{extra}; report: {result.out / 'report.json'}")
