"""Latency tables: measured (or imported) per-op latencies as a typed pandas DataFrame.

Schema (one row per measured op instance):

- key: ``device, backend, runtime_version, precision, threads, batch, op_key``
- op parameters as typed columns: ``op, in_h, in_w, in_c, out_h, out_w, out_c, kernel, stride,
  expand, dilation, idskip`` (``extra`` holds key fields outside our op types, e.g. OFA ``se``/``hs``)
- statistics: ``median_ms, mean_ms, p10_ms, p90_ms, std_ms, cv, n, rel_ci, rounds, stable, ref_ms,
  ref_ratio`` (``ref_ratio``: median ratio to the paired reference op, see ``profiling/protocol.py``)
  (imported tables give only ``mean_ms``/``std_ms``/``n``; the others are empty)
- provenance: ``measured_at`` (UTC ISO time), ``source``, ``run_id`` -> ``runs[run_id]`` in the
  sidecar ``.meta.json`` (environment, protocol, command or upstream file and licence)

Storage: ``<root>/<device>/<backend>.csv`` plus ``<backend>.meta.json``. CSV, because tables are
small (hundreds of rows), diff well in git and open anywhere. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from edgenas.errors import InputError, TableMissError
from edgenas.io import atomic_write_bytes, atomic_write_text
from edgenas.ops.registry import is_zero_cost
from edgenas.ops.spec import OpSpec

KEY_COLUMNS = ["device", "backend", "runtime_version", "precision", "threads", "batch", "op_key"]
SPEC_COLUMNS = ["op", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "kernel", "stride", "expand",
                "dilation", "idskip", "extra"]
STAT_COLUMNS = ["median_ms", "mean_ms", "p10_ms", "p90_ms", "std_ms", "cv", "n", "rel_ci", "rounds", "stable",
                "ref_ms", "ref_ratio"]
PROVENANCE_COLUMNS = ["measured_at", "source", "run_id"]
COLUMNS = KEY_COLUMNS + SPEC_COLUMNS + STAT_COLUMNS + PROVENANCE_COLUMNS

_INT = ["threads", "batch", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "kernel", "stride", "expand",
        "dilation", "idskip"]
_FLOAT = ["median_ms", "mean_ms", "p10_ms", "p90_ms", "std_ms", "cv", "rel_ci", "ref_ms", "ref_ratio"]
_STR = ["device", "backend", "runtime_version", "precision", "op_key", "op", "extra", "measured_at", "source", "run_id"]
SELECTORS = ("device", "backend", "runtime_version", "precision", "threads", "batch")


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = np.nan if c in _FLOAT + ["n", "rounds"] else ("" if c in _STR else 0)
    df = df[COLUMNS].copy()
    for c in _INT:
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0).astype("int64")
    for c in _FLOAT:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in ("n", "rounds"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    df["stable"] = df["stable"].map(lambda v: v if isinstance(v, bool) else
                                    (str(v).lower() == "true") if str(v).lower() in ("true", "false") else pd.NA
                                    ).astype("boolean")
    for c in _STR:
        df[c] = df[c].fillna("").astype(str).replace({"nan": ""})
    return df


@dataclass
class TableSelection:
    device: str
    backend: str
    precision: str = "fp32"
    threads: int = 1
    batch: int = 1
    runtime_version: str | None = None

    def describe(self) -> str:
        rv = f" {self.runtime_version}" if self.runtime_version else ""
        return (f"device {self.device}, backend {self.backend}{rv}, {self.precision}, "
                f"{self.threads} thread(s), batch {self.batch}")


class LatencyTable:
    """A DataFrame of latency rows plus the run records its rows point to."""

    def __init__(self, df: pd.DataFrame | None = None, runs: dict | None = None):
        self.df = _typed(df if df is not None else pd.DataFrame(columns=COLUMNS))
        self.runs = dict(runs or {})

    def __len__(self) -> int:
        return len(self.df)

    # ---- IO -----------------------------------------------------------------------------
    @classmethod
    def read(cls, path) -> "LatencyTable":
        """Read and validate a table: its meta (schema, row count, hash) and every row's latency and shape."""
        from edgenas.schemas import MAX_FILE_BYTES, TableMeta, load_json_file, validate

        path = Path(path)
        fix = table_fix(path)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InputError(f"latency table {path} is over {MAX_FILE_BYTES >> 20} MiB; not an edgenas table")
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"no latency table at {path}") from None
        except IsADirectoryError:
            raise InputError(f"latency table {path} is a directory") from None
        meta_path = path.with_suffix(".meta.json")
        meta = TableMeta()
        if meta_path.exists():
            meta = validate(TableMeta, load_json_file(meta_path, "table meta", fix), f"table meta {meta_path}", fix)
        if meta.csv_sha256:  # tables written before issue 13 have no hash: legacy, not checked
            digest = hashlib.sha256(raw).hexdigest()
            if digest not in (meta.csv_sha256, meta.previous_csv_sha256):
                raise InputError(f"latency table {path} does not match the hash in {meta_path.name} (truncated or "
                                 f"edited since edgenas wrote it; {meta.rows} rows expected); {fix}")
        try:
            df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise InputError(f"latency table {path} is empty; {fix}") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"latency table {path} is not a readable CSV: {' '.join(str(e).split())[:150]}; "
                             f"{fix}") from None
        missing = [c for c in KEY_COLUMNS + ["op"] if c not in df.columns]
        if missing:
            raise InputError(f"latency table {path} lacks column(s) {', '.join(missing)}; is it an edgenas table?")
        check_table_frame(df, str(path), fix)
        return cls(df.replace({"": np.nan}), meta.runs)

    def write(self, path) -> Path:
        """Atomic write of the CSV and its ``.meta.json`` (rows sorted for stable diffs).

        The meta records the CSV's row count and SHA-256 (and those of the CSV it replaces, which is
        what a crash between the two atomic renames leaves), so a truncated or edited CSV is caught."""
        path = Path(path)
        df = self.df.sort_values(KEY_COLUMNS).reset_index(drop=True)
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        data = buf.getvalue().encode("utf-8")
        # the same checks a reader makes: a bad row (an imported mean of -5, an absurd op) never reaches disk
        check_table_frame(pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False), f"{path} (not written)")
        used = set(df["run_id"])
        meta = {"format": "edgenas.latency_table", "version": 1, "columns": COLUMNS,
                "rows": len(df), "csv_sha256": hashlib.sha256(data).hexdigest(),
                "runs": {k: v for k, v in self.runs.items() if k in used}}
        if path.is_file():
            old = path.read_bytes()
            meta["previous_csv_sha256"] = hashlib.sha256(old).hexdigest()
            meta["previous_rows"] = max(old.count(b"\n") - 1, 0)
        atomic_write_text(path.with_suffix(".meta.json"), json.dumps(meta, indent=2, default=str) + "\n")
        atomic_write_bytes(path, data)
        return path

    # ---- edit -----------------------------------------------------------------------------
    def upsert(self, rows: pd.DataFrame | list[dict], runs: dict | None = None) -> "LatencyTable":
        """Add rows, replacing rows with the same key (newer measurement wins)."""
        new = _typed(pd.DataFrame(rows))
        both = pd.concat([self.df, new], ignore_index=True) if len(self.df) else new
        both = both.drop_duplicates(subset=KEY_COLUMNS, keep="last").reset_index(drop=True)
        return LatencyTable(both, {**self.runs, **(runs or {})})

    def merge(self, other: "LatencyTable") -> "LatencyTable":
        """Union of two tables; on equal keys the later ``measured_at`` wins."""
        both = pd.concat([self.df, other.df], ignore_index=True)
        both = both.sort_values("measured_at", kind="stable")
        both = both.drop_duplicates(subset=KEY_COLUMNS, keep="last").reset_index(drop=True)
        return LatencyTable(both, {**self.runs, **other.runs})

    # ---- query ----------------------------------------------------------------------------
    def select(self, **filters) -> "LatencyTable":
        df = self.df
        for k, v in filters.items():
            if v is None:
                continue
            if k not in SELECTORS:
                raise ValueError(f"cannot select on {k!r}")
            df = df[df[k] == v]
        return LatencyTable(df.reset_index(drop=True), self.runs)

    def for_selection(self, sel: TableSelection) -> "LatencyTable":
        """Rows of one (device, backend, precision, threads, batch); newest runtime version wins per op."""
        t = self.select(device=sel.device, backend=sel.backend, precision=sel.precision, threads=sel.threads,
                        batch=sel.batch, runtime_version=sel.runtime_version)
        df = t.df.sort_values("measured_at", kind="stable").drop_duplicates("op_key", keep="last")
        return LatencyTable(df.reset_index(drop=True), self.runs)

    def latency_ms(self) -> pd.Series:
        """The value predictors use, by op key: the median, or the mean where only a mean was published."""
        value = self.df["median_ms"].where(self.df["median_ms"].notna(), self.df["mean_ms"])
        return pd.Series(value.to_numpy(), index=self.df["op_key"].to_numpy())

    def lookup(self, specs: Iterable[OpSpec], sel: TableSelection, profile_hint: str = "") -> dict[str, float]:
        """ms per op key for every spec (zero-cost ops are 0); TableMissError lists what is missing."""
        values = self.for_selection(sel).latency_ms().to_dict()
        out, missing = {}, []
        for spec in specs:
            key = spec.key
            if key in out:
                continue
            if is_zero_cost(spec):
                out[key] = 0.0
            elif key in values and not math.isnan(values[key]):
                out[key] = float(values[key])
            else:
                missing.append(key)
        if missing:
            raise table_miss(missing, sel, profile_hint)
        return out

    def missing(self, specs: Iterable[OpSpec], sel: TableSelection) -> list[OpSpec]:
        have = set(self.for_selection(sel).df["op_key"])
        seen, out = set(), []
        for s in specs:
            if s.key not in have and s.key not in seen and not is_zero_cost(s):
                seen.add(s.key)
                out.append(s)
        return out

    def groups(self) -> pd.DataFrame:
        """One row per (device, backend, runtime, precision, threads, batch) with counts and spread."""
        if not len(self.df):
            return pd.DataFrame(columns=SELECTORS + ("entries", "stable_share", "median_cv", "last_measured"))
        g = self.df.groupby(list(SELECTORS), dropna=False)
        out = g.agg(entries=("op_key", "size"), stable_share=("stable", lambda s: float(s.fillna(False).mean())),
                    median_cv=("cv", "median"), last_measured=("measured_at", "max")).reset_index()
        return out


def table_fix(path) -> str:
    """How to get a good table back at ``path`` (``<root>/<device>/<backend>.csv``)."""
    path = Path(path)
    return (f"rebuild it with: edgenas profile --device {path.parent.name} --backend {path.stem} --resume "
            f"(measured tables) or edgenas tables import the source again (imported ones)")


def check_table_frame(df: pd.DataFrame, where: str, fix: str = "") -> None:
    """Every row's latency finite and > 0, statistics finite and >= 0, op shapes within bounds."""
    from edgenas.schemas import op_shape_problem

    tail = f"; {fix}" if fix else ""

    def bad(i, msg):
        key = df["op_key"].iloc[i] if "op_key" in df.columns else ""
        raise InputError(f"latency table {where}, row {i + 2} ({key}): {msg}{tail}")

    def numbers(col):
        raw = df[col].astype(str).str.strip() if col in df.columns else pd.Series([""] * len(df))
        num = pd.to_numeric(raw.where(raw != "", np.nan), errors="coerce")
        garbled = num.isna() & (raw != "") & (raw.str.lower() != "nan")
        if garbled.any():
            i = int(np.flatnonzero(garbled.to_numpy())[0])
            bad(i, f"{col} is {raw.iloc[i]!r}, not a number")
        return num.astype("float64"), raw

    median, median_raw = numbers("median_ms")
    mean, mean_raw = numbers("mean_ms")
    for col, values, raw in (("median_ms", median, median_raw), ("mean_ms", mean, mean_raw)):
        given = raw != ""
        wrong = given & ~(np.isfinite(values) & (values > 0))
        if wrong.any():
            i = int(np.flatnonzero(wrong.to_numpy())[0])
            bad(i, f"{col} is {raw.iloc[i]}; latencies must be finite and > 0")
    none = median.isna() & mean.isna()
    if none.any():
        bad(int(np.flatnonzero(none.to_numpy())[0]), "no latency (median_ms and mean_ms both empty)")
    for col in ("p10_ms", "p90_ms", "std_ms", "cv", "rel_ci", "ref_ms", "ref_ratio", "n", "rounds"):
        values, raw = numbers(col)
        wrong = (raw != "") & (raw.str.lower() != "nan") & ~(np.isfinite(values) & (values >= 0))
        if wrong.any():
            i = int(np.flatnonzero(wrong.to_numpy())[0])
            bad(i, f"{col} is {raw.iloc[i]}; it must be finite and >= 0")
    ints = {}
    for col in ("threads", "batch", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "kernel", "stride", "expand",
                "dilation", "idskip"):
        values, raw = numbers(col)
        if ((raw != "") & (values != values.round())).any():
            bad(int(np.flatnonzero(((raw != "") & (values != values.round())).to_numpy())[0]), f"{col} is not an integer")
        ints[col] = values.fillna(0).clip(-1, 2 ** 40).astype("int64").to_numpy()
    for col, hi in (("threads", 1024), ("batch", 65536)):
        wrong = (ints[col] < 1) & (df[col].astype(str) != "") if col in df.columns else np.zeros(len(df), bool)
        wrong = np.asarray(wrong) | (ints[col] > hi)
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            bad(i, f"{col} {ints[col][i]} is outside 1..{hi}")
    for i in range(len(df)):
        problem = op_shape_problem((ints["in_h"][i], ints["in_w"][i], ints["in_c"][i]),
                                   (ints["out_h"][i], ints["out_w"][i], ints["out_c"][i]), ints["kernel"][i],
                                   ints["stride"][i], ints["expand"][i], ints["dilation"][i])
        if problem:
            bad(i, problem)


def table_miss(missing: list[str], sel: TableSelection, profile_hint: str = "") -> TableMissError:
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    hint = profile_hint or (f"edgenas profile --device {sel.device} --backend {sel.backend} --batch {sel.batch} "
                            f"--threads {sel.threads}" + (f" --precision {sel.precision}" if sel.precision != "fp32"
                                                           else "") + " --resume")
    return TableMissError(f"latency table has no entry for {len(missing)} op(s) ({sel.describe()}): {shown}; "
                          f"fill them with: {hint}", missing)


def rows_from_stats(specs_stats: Iterable[tuple[OpSpec, dict]], sel: TableSelection, runtime_version: str,
                    run_id: str, source: str = "edgenas profile") -> list[dict]:
    ts = now_iso()
    rows = []
    for spec, stats in specs_stats:
        row = {"device": sel.device, "backend": sel.backend, "runtime_version": runtime_version,
               "precision": sel.precision, "threads": sel.threads, "batch": sel.batch,
               **spec.to_row(), "extra": "", "measured_at": ts, "source": source, "run_id": run_id}
        row.update({k: stats[k] for k in STAT_COLUMNS if k in stats})
        rows.append(row)
    return rows
