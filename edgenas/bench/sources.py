"""Where NAS-Bench-201 accuracy and latency come from: HW-NAS-Bench-360 or a CSV.

Sources are named at the command line:

* ``hwnas:pi5-litert``, ``hwnas:pi5-onnx``, ``hwnas:pi5-torchmobile``, ``hwnas:pixel-litert``:
  median latency (ms) of HW-NAS-Bench-360 (Raspberry Pi 5 / Pixel, batch 1);
* ``hwnas:cifar100``: NAS-Bench-201 CIFAR-100 test accuracy (%), as HW-NAS-Bench-360 ships it;
* a CSV path: ``genotype,latency_ms`` (latency) or ``genotype,accuracy`` (accuracy, %), one
  NAS-Bench-201 ``arch_str`` per row; it may cover only part of the space.

HW-NAS-Bench-360 is not shipped with edgenas (its licence is unstated): the user points at their
copy of ``dataset.parquet`` with ``--hwnasbench PATH`` or ``$EDGENAS_HWNASBENCH``.

Every loader returns a float array over the 15,625 architecture codes of ``edgenas.spaces.nb201_arch``,
NaN where the source has no value.
"""

from __future__ import annotations

import csv
import math
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from edgenas.spaces import nb201_arch as enc
from edgenas.errors import EdgeNASError, InputError

HWNAS_LATENCY = {"pi5-litert": ("pi5", "litert"), "pi5-onnx": ("pi5", "onnx"),
                 "pi5-torchmobile": ("pi5", "torchmobile"), "pixel-litert": ("pixel", "litert")}
HWNAS_ACCURACY = {"cifar100": "cifar100"}
ENV = "EDGENAS_HWNASBENCH"


@lru_cache(maxsize=1)
def nb201_index_codes() -> np.ndarray:
    """code of the NAS-Bench-201 architecture at each index (HW-NAS-Bench order)."""
    text = resources.files("edgenas.bench").joinpath("data/nb201_index_codes.txt").read_text()
    return np.array([int(v) for v in text.split()], dtype=np.int64)


def find_hwnasbench(path: str | Path | None) -> Path:
    raw = path or os.environ.get(ENV)
    if not raw:
        raise InputError(f"HW-NAS-Bench-360 is needed for this source: pass --hwnasbench PATH (its dataset.parquet "
                         f"or the folder holding it) or set ${ENV}")
    p = Path(raw).expanduser()
    for cand in (p, p / "dataset.parquet", p / "hwnasbench360" / "dataset.parquet"):
        if cand.is_file():
            return cand
    raise InputError(f"no HW-NAS-Bench-360 dataset.parquet at {p}")


@lru_cache(maxsize=4)
def _hwnas_frame(path: Path):
    import pandas as pd

    try:
        df = pd.read_parquet(path, columns=["arch_idx", "rep_arch_idx", "device", "framework", "task", "lat_ms_median",
                                            "accuracy"])
    except Exception as e:  # pyarrow raises many types for a bad file
        raise InputError(f"cannot read {path} as HW-NAS-Bench-360 parquet: {type(e).__name__}: {e}") from None
    return df


def _hwnas_column(path: Path, column: str, **where) -> np.ndarray:
    df = _hwnas_frame(path)
    for k, v in where.items():
        df = df[df[k] == v]
    if df.empty:
        raise InputError(f"{path} has no rows for {where}")
    out = np.full(enc.N_ARCHS, np.nan)
    idx = df["arch_idx"].to_numpy()
    codes = nb201_index_codes()
    if idx.min() < 0 or idx.max() >= len(codes):
        raise InputError(f"{path}: arch_idx outside 0..{len(codes) - 1}")
    out[codes[idx]] = df[column].to_numpy(dtype=float)
    return out


def _source_kind(source: str, known: dict, what: str) -> str | None:
    if source.startswith("hwnas:"):
        name = source.split(":", 1)[1]
        if name not in known:
            raise InputError(f"unknown {what} source {source!r}; known: "
                             f"{', '.join('hwnas:' + k for k in known)} or a CSV path")
        return name
    if not Path(source).is_file():
        raise InputError(f"unknown {what} source {source!r}: neither hwnas:NAME "
                         f"({', '.join(known)}) nor an existing CSV file")
    return None


def load_latency(source: str, hwnasbench: str | Path | None = None) -> np.ndarray:
    name = _source_kind(source, HWNAS_LATENCY, "latency")
    if name is None:
        return read_csv(Path(source), "latency_ms")
    device, framework = HWNAS_LATENCY[name]
    # latency does not depend on the task; every task row carries it, take cifar100's
    return _hwnas_column(find_hwnasbench(hwnasbench), "lat_ms_median", device=device, framework=framework,
                         task="cifar100")


def load_representatives(source: str, hwnasbench: str | Path | None = None) -> np.ndarray | None:
    """Per code, the code of the network whose measurement ``load_latency(source)`` gives it.

    HW-NAS-Bench-360 measured one network per NAS-Bench-201 isomorphism class (``rep_arch_idx``) and
    copied its latency to the others, even where their cells run other ops; None for a CSV (each
    architecture measured as itself)."""
    name = _source_kind(source, HWNAS_LATENCY, "latency")
    if name is None:
        return None
    device, framework = HWNAS_LATENCY[name]
    path = find_hwnasbench(hwnasbench)
    rep = _hwnas_column(path, "rep_arch_idx", device=device, framework=framework, task="cifar100")
    codes = nb201_index_codes()
    out = np.arange(enc.N_ARCHS)
    ok = np.isfinite(rep)
    if ok.any() and (rep[ok].min() < 0 or rep[ok].max() >= len(codes)):
        raise InputError(f"{path}: rep_arch_idx outside 0..{len(codes) - 1}")
    out[ok] = codes[rep[ok].astype(np.int64)]
    return out


def load_accuracy(source: str, hwnasbench: str | Path | None = None) -> np.ndarray:
    name = _source_kind(source, HWNAS_ACCURACY, "accuracy")
    if name is None:
        return read_csv(Path(source), "accuracy")
    return _hwnas_column(find_hwnasbench(hwnasbench), "accuracy", device="pi5", framework="litert",
                         task=HWNAS_ACCURACY[name])


def read_csv(path: Path, column: str) -> np.ndarray:
    """A ``genotype,<column>`` CSV -> array over codes. Any malformed row is an InputError naming it;
    an architecture listed twice gets the mean of its rows."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            fields = rows and list(rows[0].keys()) or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if not rows or "genotype" not in fields or column not in fields:
        raise InputError(f"{path}: want a CSV with columns 'genotype,{column}' and at least one row")
    total = np.zeros(enc.N_ARCHS)
    count = np.zeros(enc.N_ARCHS)
    for line, row in enumerate(rows, start=2):
        try:
            code = enc.to_code(enc.from_str(row["genotype"] or ""))
            value = float(row[column])
        except EdgeNASError as e:
            raise InputError(f"{path}:{line}: {e}") from None
        except (TypeError, ValueError):
            raise InputError(f"{path}:{line}: {column} {row[column]!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{path}:{line}: {column} must be a finite non-negative number, got {value}")
        total[code] += value
        count[code] += 1
    out = np.full(enc.N_ARCHS, np.nan)
    out[count > 0] = total[count > 0] / count[count > 0]
    return out


def write_csv(path: Path, values: np.ndarray, column: str = "latency_ms") -> None:
    """The generic ``genotype,<column>`` format (finite values only)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["genotype", column])
        for code in np.flatnonzero(np.isfinite(values)):
            w.writerow([enc.to_str(enc.from_code(code)), f"{values[code]:.6g}"])
