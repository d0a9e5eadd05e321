"""One schema per file format edgenas reads, checked at the door (pydantic v2).

Every reader parses its file with the loaders here (JSON with size and nesting bounds, YAML without
aliases) and validates the result against its model below; a failure is one ``InputError`` line that
names the file, the field and what to do. Latencies are finite and > 0 everywhere.

Formats: latency table sidecar (``TableMeta``) and rows (``check_table_frame``), calibrations
(``CalibrationFile``), device profiles (``DeviceProfileFile``, see ``devices.py``), genotypes
(``load_json_text`` bounds; the space checks the content), published LUT entries (``LutEntry``),
device-runner results (``ResultStats``), bundle manifests (``BundleManifest``), space configs
(``check_space_config``) and op shapes (``op_shape_problem``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgenas.errors import InputError

MAX_FILE_BYTES = 64 << 20  # no table, profile, genotype or results file is near this
MAX_DEPTH = 32  # nesting of JSON/YAML containers; our deepest format uses 6

PositiveMs = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def explain(e: ValidationError, limit: int = 2) -> str:
    """A pydantic error in a few words: 'field.path: message; ...'."""
    parts = []
    for err in e.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{where}: {msg}")
    more = len(e.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def validate(model: type[BaseModel], data: Any, where: str, fix: str = ""):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InputError(f"{where}: {explain(e)}" + (f"; {fix}" if fix else "")) from None


# ---- bounded parsing --------------------------------------------------------------------------

def _text_depth(text: str) -> int:
    """Bracket depth of JSON text outside strings, without parsing it (cheap and recursion-free)."""
    depth = deepest = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def read_bounded(path, what: str) -> str:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{what} {path} is {size >> 20} MiB, over the {MAX_FILE_BYTES >> 20} MiB any "
                             f"edgenas file needs; is it the right file?")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no {what} at {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not UTF-8 text") from None
    except OSError as e:  # permissions, I/O errors: still one line, never a traceback
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None


def load_json_text(text: str, where: str, fix: str = "", allow_nan: bool = True):
    """``json.loads`` with size and nesting bounds; errors name ``where`` and the ``fix``."""
    tail = f"; {fix}" if fix else ""
    if len(text) > MAX_FILE_BYTES:
        raise InputError(f"{where} is larger than {MAX_FILE_BYTES >> 20} MiB{tail}")
    if _text_depth(text) > MAX_DEPTH:
        raise InputError(f"{where} nests deeper than {MAX_DEPTH} levels{tail}")
    try:
        return json.loads(text, parse_constant=None if allow_nan else _no_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"{where} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}){tail}") from None
    except (ValueError, RecursionError) as e:
        raise InputError(f"{where} is not valid JSON ({e}){tail}") from None


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def load_json_file(path, what: str, fix: str = "", allow_nan: bool = True):
    return load_json_text(read_bounded(path, what), f"{what} {path}", fix, allow_nan)


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors/aliases: no alias bombs, no shared nodes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted", event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "YAML anchors (&name) are not accepted", event.start_mark)
        if self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            self._depth = getattr(self, "_depth", 0) + 1
            try:
                if self._depth > MAX_DEPTH:
                    raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                      event.start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)


def load_yaml_text(text: str, where: str, fix: str = ""):
    """Safe YAML without anchors/aliases and with bounded size and nesting."""
    tail = f"; {fix}" if fix else ""
    if len(text) > MAX_FILE_BYTES:
        raise InputError(f"{where} is larger than {MAX_FILE_BYTES >> 20} MiB{tail}")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise InputError(f"{where} is not valid YAML: {' '.join(str(e).split())[:200]}{tail}") from None
    except RecursionError:
        raise InputError(f"{where} nests too deep{tail}") from None


# ---- latency tables -----------------------------------------------------------------------------

class TableMeta(_Open):
    """``<backend>.meta.json``. ``csv_sha256``/``rows`` (written since issue 13) let a reader detect a
    truncated or edited CSV; metas without them are legacy and not checked. ``previous_*`` cover the
    instant between the meta's and the CSV's atomic replacement (a crash there leaves the old CSV)."""

    format: Optional[str] = None
    version: Optional[int] = None
    columns: Optional[list[str]] = None
    runs: dict[str, dict] = Field(default_factory=dict)
    rows: Optional[Annotated[int, Field(ge=0)]] = None
    csv_sha256: Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = None
    previous_rows: Optional[Annotated[int, Field(ge=0)]] = None
    previous_csv_sha256: Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = None

    @field_validator("format")
    @classmethod
    def _format(cls, v):
        if v is not None and v != "edgenas.latency_table":
            raise ValueError(f"format is {v!r}, not 'edgenas.latency_table'")
        return v


# op shapes: bounds and the check live with OpSpec (no pydantic on that hot path)
from edgenas.ops.spec import (MAX_CHANNELS, MAX_EXPAND, MAX_HW, MAX_KERNEL, MAX_STRIDE,  # noqa: E402,F401
                              MAX_TENSOR_ELEMENTS, MAX_WEIGHT_ELEMENTS, op_shape_problem)


# ---- device profiles -------------------------------------------------------------------------------

class BackendEntry(_Strict):
    threads: Annotated[int, Field(strict=True, ge=1, le=1024)] = 1
    precisions: Annotated[list[Literal["fp32", "fp16", "int8"]], Field(min_length=1)] = ["fp32"]


class DeviceProfileFile(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,63}$")]
    description: Annotated[str, Field(max_length=2000)]
    kind: Literal["host", "board", "phone", "gpu-server"]
    arch: Annotated[str, Field(max_length=100)]
    os: Annotated[str, Field(max_length=200)] = ""
    reach: Union[Literal["local", "ssh", "bundle", "published"], list[Literal["local", "ssh", "bundle", "published"]]]
    backends: dict[str, Optional[BackendEntry]]
    detect: dict[Literal["machine", "device_tree_model", "cpu_model", "gpu_name", "android"],
                 Union[str, bool, int, float, list[str]]] = Field(default_factory=dict)
    prepare: Optional[list[Annotated[str, Field(max_length=2000)]]] = None
    notes: Annotated[str, Field(max_length=20000)] = ""


# ---- space configurations ------------------------------------------------------------------------

CONFIG_LIMITS = {"input_size": (1, 2048), "in_channels": (1, 64), "num_classes": (1, 100_000), "layers": (1, 256),
                 "nodes": (1, 16), "stem_multiplier": (1, 16), "stem_stride": (1, 8)}
CONFIG_DEFAULT_LIMIT = (0, 8192)  # channels, kernels, expands, stage repeats: nothing an edge network needs more of


def check_space_config(cfg, what: str) -> None:
    """Every integer of a space config (also inside tuples) within bounds, before anything is built."""
    from dataclasses import fields

    from edgenas.errors import SpaceError

    for f in fields(cfg):
        lo, hi = CONFIG_LIMITS.get(f.name, CONFIG_DEFAULT_LIMIT)
        stack = [getattr(cfg, f.name)]
        while stack:
            v = stack.pop()
            if isinstance(v, (tuple, list)):
                stack.extend(v)
            elif isinstance(v, bool):
                continue
            elif isinstance(v, int) and not lo <= v <= hi:
                raise SpaceError(f"{what} config: {f.name} {v} is outside {lo}..{hi}")
            elif isinstance(v, float) and not math.isfinite(v):
                raise SpaceError(f"{what} config: {f.name} must be finite, got {v}")


# ---- calibrations ---------------------------------------------------------------------------------

class CalibrationEntry(_Strict):
    a: float = Field(1.0, allow_inf_nan=False)
    b: float = Field(0.0, allow_inf_nan=False)
    c: float = Field(0.0, allow_inf_nan=False)
    model: str = "identity"
    n_networks: Annotated[int, Field(ge=0)] = 0
    fit_mape: Optional[float] = float("nan")
    fit_within_10pct: Optional[float] = float("nan")
    fitted_at: str = ""
    arch_ids: list = Field(default_factory=list)
    runtime_version: str = ""
    anchor_ms: Optional[float] = float("nan")
    truth: Literal["protocol", "plain"] = "protocol"
    cpu_model: str = ""
    type_scale: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(default_factory=dict)
    key_scale: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        from edgenas.latency.predictor import CALIBRATION_MODELS

        if v not in CALIBRATION_MODELS:
            raise ValueError(f"must be one of {', '.join(CALIBRATION_MODELS)}")
        return v

    @field_validator("fit_mape", "fit_within_10pct", "anchor_ms")
    @classmethod
    def _nan_ok(cls, v):
        return float("nan") if v is None else v


class CalibrationFile(_Strict):
    format: Optional[str] = "edgenas.calibration"
    version: Optional[int] = 1
    calibrations: dict[str, CalibrationEntry] = Field(default_factory=dict)


# ---- published lookup tables (ProxylessNAS / OFA YAML) -------------------------------------------

class LutEntry(_Strict):
    mean: PositiveMs
    count: Optional[Annotated[int, Field(ge=0)]] = None
    var: Optional[NonNegative] = None
    std: Optional[NonNegative] = None


# ---- bundle manifests ----------------------------------------------------------------------------------

class BundleModel(_Open):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,40}$")]
    op_key: str
    batch: Annotated[int, Field(strict=True, ge=1, le=65536)]
    file: Annotated[str, Field(pattern=r"^models/b[0-9]{1,5}/[A-Za-z0-9_.-]{1,64}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class BundleManifest(_Open):
    """What importers and the shell helper rely on (the manifest's hash already proves it unmodified)."""

    format: Literal["edgenas.bundle"]
    bundle_id: str
    device: str
    backend: str
    precision: str
    threads: Annotated[int, Field(strict=True, ge=1, le=1024)]
    nonce: str
    entries: list[BundleModel]
    references: dict[str, BundleModel]


# ---- device-runner results.json ---------------------------------------------------------------------

class ResultStats(_Open):
    """The ``stats`` of one results.json entry: timings finite and > 0, spreads finite and >= 0."""

    median_ms: Optional[PositiveMs] = None
    mean_ms: Optional[PositiveMs] = None
    p10_ms: Optional[PositiveMs] = None
    p90_ms: Optional[PositiveMs] = None
    ref_ms: Optional[PositiveMs] = None
    ref_ratio: Optional[PositiveMs] = None
    std_ms: Optional[NonNegative] = None
    cv: Optional[NonNegative] = None
    rel_ci: Optional[NonNegative] = None
    n: Annotated[int, Field(strict=True, ge=1)]
