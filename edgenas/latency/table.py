"""Latency tables: measured (or imported) per-op latencies as a typed pandas DataFrame.

Schema (one row per measured op instance; see docs/latency-tables.md):

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
from edgenas.io import atomic_write_text
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
        path = Path(path)
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise InputError(f"no latency table at {path}") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise InputError(f"latency table {path} is not a readable CSV: {e}") from None
        missing = [c for c in KEY_COLUMNS + ["op"] if c not in df.columns]
        if missing:
            raise InputError(f"latency table {path} lacks column(s) {', '.join(missing)}; is it an edgenas table?")
        meta = path.with_suffix(".meta.json")
        runs = json.loads(meta.read_text()).get("runs", {}) if meta.exists() else {}
        return cls(df.replace({"": np.nan}), runs)

    def write(self, path) -> Path:
        """Atomic write of the CSV and its ``.meta.json`` (rows sorted for stable diffs)."""
        path = Path(path)
        df = self.df.sort_values(KEY_COLUMNS).reset_index(drop=True)
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        used = set(df["run_id"])
        meta = {"format": "edgenas.latency_table", "version": 1, "columns": COLUMNS,
                "runs": {k: v for k, v in self.runs.items() if k in used}}
        atomic_write_text(path.with_suffix(".meta.json"), json.dumps(meta, indent=2, default=str) + "\n")
        atomic_write_text(path, buf.getvalue())
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


def table_miss(missing: list[str], sel: TableSelection, profile_hint: str = "") -> TableMissError:
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    hint = profile_hint or (f"edgenas profile --device {sel.device} --backend {sel.backend} --batch {sel.batch} "
                            f"--threads {sel.threads} --resume")
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
