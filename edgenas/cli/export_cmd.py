"""``edgenas export``: ONNX and TFLite artifacts with parity, deployability and a latency gate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgenas.cli import common
from edgenas.cli._output import console, emit, err_console
from edgenas.export.parity import DEFAULT_ATOL
from edgenas.profiling.protocol import TARGET_TOLERANCE


def export(
    genotype: str = typer.Argument(..., help="Run directory of edgenas search, genotype file, JSON or DARTS text."),
    space: Optional[str] = common.SPACE, preset: Optional[str] = common.PRESET,
    channels: Optional[int] = common.CHANNELS, layers: Optional[int] = common.LAYERS,
    formats: Optional[str] = typer.Option(None, "--format", "-f", help="Artifacts to write: onnx, tflite or "
                                          "onnx,tflite (default: every format with a backend at --precision)."),
    precision: str = common.PRECISION,
    io: str = typer.Option("float", "--io", help="Input/output type of an int8 model: float (quantize inside) or "
                                                 "int8 (apps feed int8; TFLite only). Needs --precision int8."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, max=65536, help="Batch size baked into the artifacts (default: the run's)."),
    nhwc: bool = typer.Option(False, "--nhwc/--nchw", help="Channel-last input/output where the format takes it "
                                                           "(TFLite; ONNX stays NCHW)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="State dict to load (default: the run's weights.safetensors)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: RUN/export)."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Device of the latency gate (default: the run's)."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Backend of the latency gate (default: the run's)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024, help="Threads for the latency gate (default: the run's)."),
    target_ms: Optional[float] = typer.Option(None, "--target-ms", callback=common.finite, help="Fail unless the measured latency is within target (+tolerance)."),
    strict: bool = typer.Option(False, "--strict", help="Enforce the run's target, and fail when latency cannot be "
                                                         "verified here or tflite_runtime 2.14 could not load the model."),
    tolerance: float = typer.Option(TARGET_TOLERANCE, "--tolerance", min=0.0, max=0.99, callback=common.finite, help="Noise allowance of the latency gate (0.05 = 5%)."),
    atol: float = typer.Option(DEFAULT_ATOL, "--atol", min=0.0, max=1e6, callback=common.finite, help="Parity: largest allowed |output - PyTorch|."),
    parity_samples: int = typer.Option(64, "--parity-samples", min=1, max=100_000, help="Test images compared across runtimes."),
    data: Optional[str] = typer.Option(None, "--data", help="Parity images (default: the run's dataset, else Fashion-MNIST)."),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Time the artifact on this machine."),
    quick: bool = typer.Option(False, "--quick", help="Shorter measurement protocol (smoke tests)."),
    legacy_python: Optional[Path] = typer.Option(None, "--tflite-runtime-python",
                                                 help="A Python with tflite_runtime 2.14: load and run model.tflite there too."),
    as_json: bool = common.JSON,
):
    """Export a searched network to ONNX and TFLite, and prove it is fit to ship.

    Checks: ONNX checker; XNNPACK delegates every TFLite op; onnxruntime and TFLite match PyTorch
    on real images (max abs diff <= --atol); measured latency on the device vs --target-ms.
    Writes model.onnx, model.tflite, report.json and report.md (at --precision int8: model_int8.onnx /
    model_int8.tflite, whose checks are accuracy within 1 point of fp32 and >= 98% top-1 agreement
    on the test set instead of the fp32 parity tolerance).

    The genotype is read as 'edgenas predict' reads it: --space/--preset (and DARTS --channels/--layers)
    choose the network a bare genotype is built at (a DARTS Genotype(...) text defaults to cifar10).

    Examples:
      edgenas export runs/my-run --format onnx,tflite --target-ms 0.8
      edgenas export runs/my-run/genotype.json --format tflite --nhwc --strict --json
      edgenas export "Genotype(normal=[...], ...)" --preset small --no-measure --out darts-small
      edgenas export runs/my-int8-run --precision int8   (model_int8.onnx, calibrated on the run's training
                                                          images, checked on the test set against fp32)
    """
    from edgenas.errors import InputError
    from edgenas.export.pipeline import ExportOptions, export_genotype, first_failure, parse_formats

    if parity_samples < 1:
        raise InputError(f"--parity-samples must be at least 1, got {parity_samples}")
    if not 0 <= tolerance < 1:
        raise InputError(f"--tolerance is a fraction in [0, 1), got {tolerance}")
    opts = ExportOptions(formats=parse_formats(formats) if formats is not None else None, precision=precision, batch=batch, nhwc=nhwc, weights=weights, out=out, atol=atol,
                         parity_samples=parity_samples, data=data, device=device, backend=backend, threads=threads,
                         target_ms=target_ms, strict=strict, measure=measure, quick=quick, tolerance=tolerance,
                         legacy_python=legacy_python, io=io)
    g, _ = common.resolve_genotype(genotype, space, preset, channels=channels, layers=layers)
    with err_console.status("export") as status:
        result = export_genotype(genotype, opts, genotype=g, on_progress=lambda p: status.update(f"export: {p}"))
    emit(result.report, as_json, lambda r: console.print((result.out / "report.md").read_text(), markup=False))
    err = first_failure(result)
    if err is not None:
        raise err
