"""Benchmark: predictor accuracy on held-out random networks, every backend and batch size here.

Runs ``edgenas verify --n N --calibration-n C --recalibrate`` for each (backend, batch, space) and
writes benchmarks/results/verify_predictor.{json,md} (README quotes the .md). Run it on a quiet
machine: a second busy process on this 2-core VM moves whole-network latencies by 10-40%.

The truth is independent of edgenas's own scale by default (``--truth auto``): each exported model
is timed plainly with its runtime, the fastest of 3 fresh processes (in 3 passes over the files since
2026-12-08), as ``benchmark_model`` or
``onnxruntime_perf_test`` would (``edgenas/profiling/plain.py``); torch-cpu, which runs no model
file, is scored against the paired protocol measurement.

    python benchmarks/verify_predictor.py                      # all backends, batch 1 and 8, darts small
    python benchmarks/verify_predictor.py --spaces darts,proxyless --n 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="onnxruntime,tflite,torch-cpu")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--spaces", default="darts")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--calibration-n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tables-dir", default=str(ROOT / "latency_tables"))
    ap.add_argument("--truth", default="auto", choices=["auto", "plain", "protocol"])
    ap.add_argument("--no-recalibrate", action="store_true", help="Score the stored calibrations as they are.")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = _previous_results(args)
    for space in args.spaces.split(","):
        for backend in args.backends.split(","):
            for batch in args.batches.split(","):
                plot = OUT / f"verify-{backend}-{space}-b{batch}.png"
                cmd = [sys.executable, "-m", "edgenas", "verify", "--device", "x86-64-host", "--backend", backend,
                       "--space", space, "--preset", "small", "--batch", batch, "--n", str(args.n),
                       "--calibration-n", str(args.calibration_n), "--seed", str(args.seed), "--truth", args.truth,
                       "--plot", str(plot), "--tables-dir", args.tables_dir, "--json"]
                cmd += [] if args.no_recalibrate else ["--recalibrate"]
                start = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
                if p.returncode != 0:
                    print(f"{backend} b{batch} {space}: FAILED {p.stderr.strip()[-300:]}")
                    continue
                r = json.loads(p.stdout)
                nets = r.pop("networks", None)
                if nets:  # per-network predicted/measured, for finding which architectures a model misses
                    (OUT / f"verify-{backend}-{space}-b{batch}.networks.json").write_text(json.dumps(nets, indent=1) + "\n")
                r["calibration_n"] = args.calibration_n
                r["wall_s"] = round(time.perf_counter() - start, 1)
                r["date"] = time.strftime("%Y-%m-%d")
                results = [old for old in results if _row_key(old) != _row_key(r)] + [r]
                print(f"{backend} b{batch} {space}: {100 * r['within_10pct']:.0f}% within 10%, "
                      f"MAPE {100 * r['mape']:.1f}%, tau {r['kendall_tau']:.2f} ({r['wall_s']} s)", flush=True)
                _write(results, args)
    _write(results, args)


def _row_key(r):
    return (r["backend"], int(r["batch"]), r["space"])


def _previous_results(args):
    """Rows from an earlier run with the same n: a run for one space must not erase the other's rows."""
    path = OUT / "verify_predictor.json"
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []
    if doc.get("n") != args.n:
        return []
    return doc.get("results", [])


def _processes(row) -> str:
    """How a plain-truth row's fresh processes were spaced (``plain.time_fresh_many``'s recipe)."""
    if row.get("truth") != "plain":
        return "-"
    return "in passes" if "passes" in row.get("truth_recipe", "") else "back to back"


def _write(results, args):
    from edgenas.devices import machine_facts

    cpu = machine_facts().get("cpu_model")
    doc = {"date": time.strftime("%Y-%m-%d"), "machine": f"x86-64-host ({cpu}, {os.cpu_count()} vCPU)",
           "n": args.n, "calibration_n": args.calibration_n, "results": results}
    (OUT / "verify_predictor.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    lines = [f"# Predictor accuracy on held-out random networks ({doc['date']}, {doc['machine']})", "",
             f"{args.n} held-out random architectures per row; calibration on the number of others the "
             "calibration column gives (fitted by that run on this machine's CPU); 1 thread. Truth `plain`: the "
             "exported file timed plainly with its runtime, the fastest of 3 fresh processes (since 2026-12-02 "
             "each process times blocks for 2 s and takes their 10th percentile, the fastest steady phase: "
             "`edgenas/profiling/plain.py`), independent of edgenas's scale; column `processes`: a file's three "
             "processes back to back (before 2026-12-08: one slow spell of the host can hold all three) or in "
             "three passes over all the row's files (a whole pass apart); `protocol`: "
             "edgenas's paired measurement on the predictor's quiet-state scale (torch-cpu runs no model file). "
             "`edgenas/plain`: edgenas's own measurement of the same networks over the plain truth (1.00 = the "
             "scale is right).", "",
             "| backend | batch | space | truth | within ±5% | within ±10% | MAPE | RMSE ms | Kendall τ | edgenas/plain | plain op sum: within ±10% / bias | calibration | processes | measured on |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["space"], r["backend"], int(r["batch"]))):
        raw, cal = r["raw_op_sum"], r["calibration"]
        ratio = r.get("protocol_over_plain")
        lines.append(f"| {r['backend']} | {r['batch']} | {r['space']} | {r.get('truth', 'protocol')} | "
                     f"{100 * r['within_5pct']:.0f}% | "
                     f"{100 * r['within_10pct']:.0f}% | {100 * r['mape']:.1f}% | {r['rmse_ms']:.4f} | "
                     f"{r['kendall_tau']:.3f} | {f'{ratio:.3f}' if ratio else '-'} | "
                     f"{100 * raw['within_10pct']:.0f}% / {100 * raw['bias']:+.0f}% | "
                     f"{cal['model']} on {cal.get('n_networks', r.get('calibration_n', '?'))} | "
                     f"{_processes(r)} | {r.get('date', doc['date'])} |")
    (OUT / "verify_predictor.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
