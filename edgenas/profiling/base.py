"""Backend: one small interface per runtime, split into export (convert) and load (run).

``export`` turns a module into the backend's artifact (``.onnx``, ``.tflite``, an engine) and
``load`` turns an artifact into a ``Timer`` that runs one inference per call. Keeping the two
apart lets on-device bundles ship the artifacts and time them elsewhere with the same protocol.

Everything else that differs between runtimes is asked of the backend too, so export, parity,
the latency gate and bundles never compare backend names: the artifact's tensor ``layout``, the
``export_format`` that ships it and the checks that go with it (``ship``), the parity run
(``outputs``), and the runtime the standalone on-device runner loads (``runner_runtime``).
Backends register with ``@register_backend``; ``create_backend`` is the one front door.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgenas.errors import BackendUnavailable, InputError
from edgenas.profiling.protocol import Timer
from edgenas.registry import Registry


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None: part of a cache key or a report, never fatal."""
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:  # noqa: BLE001 - a missing or broken distribution's metadata: no version to report
        return None


@dataclass
class ShippedArtifact:
    """What ``Backend.ship`` found out about an artifact written for deployment.

    ``info`` goes into the export report as is; ``failures`` are (check, message) pairs that fail
    the export; ``strict_failures`` fail it only under ``--strict``; ``warnings`` are reported.
    """

    path: Path
    info: dict
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    strict_failures: list[tuple[str, str]] = field(default_factory=list)


class Backend(ABC):
    name: ClassVar[str]
    suffix: ClassVar[str] = ""  # artifact file suffix; "" = no file (eager PyTorch)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: the input/output types an int8 artifact of this backend can have (backend option ``io``):
    #: "float" (quantize/dequantize inside the model) and, where the format allows, "int8"
    int8_io: ClassVar[tuple[str, ...]] = ("float",)
    install_hint: ClassVar[str] = ""
    uses_threads: ClassVar[bool] = True
    #: the ``edgenas export --format`` that ships this backend's artifact; None: export writes none
    export_format: ClassVar[str | None] = None
    #: the runtime ``tools/edgenas_device_runner.py`` loads for this backend's files (its
    #: ``find_runtime`` names); None: the runner cannot run them, so bundles cannot hold them
    runner_runtime: ClassVar[str | None] = None

    def __init__(self, threads: int = 1, precision: str = "fp32", **options):
        self.check_precision(precision)
        if not isinstance(threads, int) or threads < 1:
            raise InputError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads if self.uses_threads else 1
        self.precision = precision
        self.options = options
        #: data a static int8 quantizer calibrates on; None: ``calibration_for`` makes
        #: representative inputs (single ops). Whole-network exports set real images here.
        self.calibration = None

    @classmethod
    def check_precision(cls, precision: str) -> str:
        """``precision`` when this backend runs it; else one line (InputError), before any work."""
        from edgenas.quant.precision import check_precision

        check_precision(precision)
        if precision not in cls.precisions:
            raise InputError(f"backend {cls.name!r} supports precision {', '.join(cls.precisions)}, not {precision!r}")
        return precision

    def calibration_for(self, input_shape):
        """The CalibrationSet an int8 export of an input of ``input_shape`` calibrates on."""
        from edgenas.quant.calibration import representative

        return self.calibration if self.calibration is not None else representative(input_shape)

    # ---- availability --------------------------------------------------------------
    @classmethod
    @abstractmethod
    def availability(cls) -> tuple[bool, str]:
        """(True, "") when usable here, else (False, why) with an install hint."""

    @classmethod
    def require(cls) -> None:
        ok, why = cls.availability()
        if not ok:
            raise BackendUnavailable(f"backend {cls.name!r} is not available here: {why}")

    @abstractmethod
    def runtime_version(self) -> str:
        """Version string of the runtime that executes the artifact."""

    # ---- convert / run ---------------------------------------------------------------
    @abstractmethod
    def export(self, module, input_shape: tuple[int, ...], path: Path) -> Path:
        """Write the backend's artifact for ``module`` at NCHW ``input_shape``; return its path."""

    @abstractmethod
    def load(self, artifact, input_shape: tuple[int, ...]) -> Timer:
        """A Timer that runs the artifact (or module, for eager backends) once per call."""

    def prepare(self, module, input_shape, cache_dir: Path | None = None, cache_key: str | None = None) -> Timer:
        """Export (reusing a cached artifact when ``cache_key`` is given) and load."""
        if not self.suffix:
            return self.load(module, input_shape)
        if cache_dir is None or cache_key is None:
            import tempfile

            tmp = Path(tempfile.mkdtemp(prefix="edgenas-"))
            return self.load(self.export(module, input_shape, tmp / f"model{self.suffix}"), input_shape)
        return self.load(self.artifact(module, input_shape, cache_dir, cache_key), input_shape)

    def artifact(self, module, input_shape, cache_dir: Path, cache_key: str) -> Path:
        """The cached artifact for ``cache_key`` at ``input_shape``, exported on first use.

        Shared by local profiling and on-device bundles, so both time the very same file.
        """
        path = self.artifact_path(cache_dir, cache_key, input_shape)
        source = None if path.exists() else self.derived_from(getattr(module, "edgenas_op", None), input_shape)
        if source is not None:  # made from its source if that is cached (``convert_artifacts`` orders them)
            self.derive_artifact(source, input_shape, cache_dir, cache_key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # unique per process: two processes exporting the same op never write into one file;
            # the rename is atomic, so whichever finishes last replaces an identical artifact
            tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
            try:
                self.export(module, input_shape, tmp)
                tmp.replace(path)
            finally:
                tmp.unlink(missing_ok=True)
        return path

    def derived_from(self, op_kind: str | None, input_shape) -> tuple | None:
        """The input shape of the artifact that ``derive`` may turn into this one without converting
        (single ops of kind ``op_kind``; None for a network), or None: it is always converted."""
        return None

    def derive(self, source: Path, input_shape) -> bytes | None:
        """The bytes of the artifact at ``input_shape`` made from ``source`` (``derived_from``'s), exactly
        what converting would write; None where that cannot be assured (then it is converted)."""
        return None

    def derive_artifact(self, source_shape, input_shape, cache_dir: Path, cache_key: str) -> Path | None:
        """Write the cached artifact at ``input_shape`` from the cached one at ``source_shape``; None
        (nothing written) when that one is not cached or ``derive`` refuses."""
        source = self.artifact_path(cache_dir, cache_key, source_shape)
        data = self.derive(source, input_shape) if source.exists() else None
        if data is None:
            return None
        path = self.artifact_path(cache_dir, cache_key, input_shape)
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def artifact_path(self, cache_dir: Path, cache_key: str, input_shape) -> Path:
        """Where ``artifact`` keeps (or will write) the artifact for ``cache_key`` at ``input_shape``."""
        return Path(cache_dir) / self.name / f"{self.artifact_id(cache_key, input_shape)}{self.suffix}"

    def artifact_id(self, cache_key: str, input_shape) -> str:
        parts = [self.name, self.precision, self.converter_version(), cache_key, "x".join(map(str, input_shape))]
        if self.precision == "int8":  # a static quantizer's artifact depends on its calibration data
            parts.append(self.calibration_for(input_shape).fingerprint())
        text = "|".join(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def converter_version(self) -> str:
        """Versions that change the artifact (exporter + runtime); part of the cache key."""
        return self.runtime_version()

    def describe(self) -> dict:
        return {"backend": self.name, "runtime_version": self.runtime_version(), "precision": self.precision,
                "threads": self.threads, "options": dict(self.options)}

    # ---- layout, deployment and parity -----------------------------------------------------
    @property
    def layout(self) -> str:
        """Tensor layout of the artifact's image input and output: "nchw", or "nhwc" (channel-last)."""
        return "nchw"

    def runtime_input_shape(self, shape_nchw: tuple[int, ...]) -> list[int]:
        """The input shape the artifact takes, for NCHW ``shape_nchw`` (what a bundle's runner feeds it)."""
        if self.layout == "nhwc" and len(shape_nchw) == 4:
            b, c, h, w = shape_nchw
            return [b, h, w, c]
        return list(shape_nchw)

    def ship(self, module, input_shape: tuple[int, ...], path: Path) -> ShippedArtifact:
        """Write the artifact ``edgenas export`` ships, with the format's static checks (``export_format``)."""
        raise NotImplementedError(f"backend {self.name!r} ships no artifact of its own")

    @classmethod
    def report_lines(cls, info: dict) -> list[str]:
        """Markdown lines of the export report for ``ship``'s ``info``."""
        return [f"- {cls.export_format}: {info.get('path')}"]

    def outputs(self, artifact, x: np.ndarray, batch: int) -> np.ndarray:
        """Run ``artifact`` on NCHW inputs ``x``, ``batch`` at a time: its outputs in NCHW (the parity run)."""
        raise NotImplementedError(f"backend {self.name!r} has no parity run")

    def more_parity(self, artifact, x: np.ndarray, reference: np.ndarray, atol: float,
                    info: dict) -> list[tuple[str, dict, list[tuple[str, str]]]]:
        """Other runtimes that must run the same artifact (an older interpreter on the board, say).

        Each is (name, parity entry, failures); ``info`` is the artifact's report section, for
        details that belong beside the static checks. None by default.
        """
        return []


_BACKENDS: Registry[Backend] = Registry("backend", tuple(
    f"edgenas.profiling.{m}" for m in ("cuda", "onnxruntime_backend", "tensorrt_backend", "tflite", "torch_cpu")),
    group="edgenas.backends", base=Backend)


def register_backend(cls):
    return _BACKENDS.register(cls)


def backend_class(name: str) -> type[Backend]:
    return _BACKENDS.get(name)


def list_backends() -> list[str]:
    return _BACKENDS.names()


def create_backend(name: str, threads: int = 1, precision: str = "fp32", **options) -> Backend:
    """The one front door: a ready backend, or BackendUnavailable saying why and how to fix it."""
    from edgenas.profiling.allocator import pin_malloc

    cls = backend_class(name)
    cls.require()
    pin_malloc()  # before the backend allocates anything: timings must not depend on malloc's history
    return cls(threads=threads, precision=precision, **options)
