"""Benchmark: time to build each shipped latency table, and the spread of its entries.

Not a test (timings on a shared VM are noisy); writes benchmarks/results/profile_tables.{json,md}.

    python benchmarks/profile_tables.py            # summarise the shipped tables from their run records
    python benchmarks/profile_tables.py --rebuild  # rebuild them from scratch in a temp dir, timing it

Spread is reported two ways: the per-call CV (std/mean of single calls: how noisy one inference
is) and the relative half-width of the 95% CI of the entry's value (how well the table value is
pinned down, which is what a predictor relies on).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def summarise(tables_root: Path, build_times: dict | None = None) -> list[dict]:
    from edgenas.latency.table import LatencyTable

    rows = []
    for path in sorted(tables_root.glob("x86-64-host/*.csv")):
        t = LatencyTable.read(path)
        for (backend, batch), df in t.df.groupby(["backend", "batch"]):
            runs = [t.runs[r] for r in set(df["run_id"]) if r in t.runs]
            measure_s = sum(c["elapsed_s"] for r in runs for c in r.get("chunks", []) if c["batch"] == batch)
            # the conversion phase (runs since it exists) converts every batch at once: shown per run
            convert_s = sum(r.get("conversion", {}).get("elapsed_s", 0.0) for r in runs)
            drift = [c["drift"] for r in runs for c in r.get("chunks", []) if c["batch"] == batch]
            rows.append({
                "backend": backend, "batch": int(batch), "entries": len(df),
                "cpu_model": runs[0]["environment"]["cpu_model"] if runs else "",
                "measure_s": round(measure_s, 1),
                "convert_s": round(convert_s, 1) if any("conversion" in r for r in runs) else None,
                "build_s": (build_times or {}).get(backend),
                "cv_under_5pct": round(float((df["cv"] < 0.05).mean()), 3),
                "cv_under_10pct": round(float((df["cv"] < 0.10).mean()), 3),
                "median_cv": round(float(df["cv"].median()), 3),
                "ci_under_5pct": round(float((df["rel_ci"] < 0.05).mean()), 3),
                "ci_under_10pct": round(float((df["rel_ci"] < 0.10).mean()), 3),
                "stable_share": round(float(df["stable"].fillna(False).astype(bool).mean()), 3),
                "median_host_drift": round(float(pd.Series(drift).median()), 3) if drift else None,
            })
    return rows


def rebuild(tmp: Path) -> dict:
    times = {}
    for backend in ("onnxruntime", "tflite", "torch-cpu"):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "edgenas", "profile", "--device", "x86-64-host", "--backend", backend,
                        "--batch", "1,8", "--space", "darts,proxyless", "--preset", "small",
                        "--tables-dir", str(tmp / "tables")], check=True,
                       env={**__import__("os").environ, "EDGENAS_CACHE": str(tmp / "cache")})
        times[backend] = round(time.perf_counter() - start, 1)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rebuild", action="store_true", help="rebuild the tables from scratch and time it")
    args = ap.parse_args()
    if args.rebuild:
        with tempfile.TemporaryDirectory() as d:
            times = rebuild(Path(d))
            rows = summarise(Path(d) / "tables", times)
    else:
        rows = summarise(ROOT / "latency_tables")
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%d"), "rebuilt": args.rebuild, "tables": rows}
    (OUT / "profile_tables.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Latency tables of x86-64-host ({result['date']}, {rows[0]['cpu_model'] if rows else ''})", "",
             "| backend | batch | entries | build s (incl. conversion) | convert s (all batches) | measure s "
             "| per-call CV <5% | <10% | median CV | value CI <5% | <10% | stable (CI<3%) | host drift |",
             "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['batch']} | {r['entries']} | {r['build_s'] or '-'} "
                     f"| {r['convert_s'] if r['convert_s'] is not None else '-'} | {r['measure_s']} "
                     f"| {100 * r['cv_under_5pct']:.0f}% | {100 * r['cv_under_10pct']:.0f}% | {r['median_cv']} "
                     f"| {100 * r['ci_under_5pct']:.0f}% | {100 * r['ci_under_10pct']:.0f}% "
                     f"| {100 * r['stable_share']:.0f}% | {r['median_host_drift']} |")
    (OUT / "profile_tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
