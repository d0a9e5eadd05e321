"""Benchmark: do edgenas's milliseconds match a plain runtime timing of the exported model?

The check a new user makes (issue "Milliseconds that mean milliseconds"): N random networks per
space, each exported with ``edgenas export --format onnx,tflite --no-measure``, each file timed
plainly with its runtime (``edgenas/profiling/plain.py``: since 2026-12-02 the fastest steady phase of
2 s of timing blocks, the fastest of 3 fresh processes; before, the median of 250 runs), against
``edgenas predict`` on the tables given.
Nothing of edgenas's protocol or scale enters the truth.

    python benchmarks/ms_truth.py --n 20 --spaces darts,proxyless --backends onnxruntime,tflite
    python benchmarks/ms_truth.py --tables-dir /tmp/busy-tables --label "table built under load"

Exports are kept under --work (default /tmp/edgenas-ms-truth) and reused: a rerun only times.
Writes benchmarks/results/ms_truth.{json,md}; a row (label, files, backend, space) rerun replaces its old self.
Run on a quiet machine (the truth is the quiet device's figure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
SUFFIX = {"onnxruntime": "onnx", "tflite": "tflite"}


def export(space: str, seed: int, work: Path) -> Path:
    d = work / f"{space}-s{seed}"
    if (d / "model.onnx").exists() and (d / "model.tflite").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    g = d / "genotype.json"
    subprocess.run([sys.executable, "-m", "edgenas", "genotype", "sample", "--space", space, "--preset", "small",
                    "--seed", str(seed), "--out", str(g)], check=True, capture_output=True)
    p = subprocess.run([sys.executable, "-m", "edgenas", "export", str(g), "--format", "onnx,tflite", "--no-measure",
                        "--out", str(d), "--json"], capture_output=True, text=True)
    if p.returncode not in (0, 6) or not (d / "model.tflite").exists():
        raise RuntimeError(f"export of {space} seed {seed} failed: {p.stderr.strip()[-300:]}")
    return d


def main():
    from edgenas.devices import machine_facts
    from edgenas.latency.predictor import LatencyPredictor
    from edgenas.latency.store import TableStore
    from edgenas.latency.verify import score
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.networks import network_artifact
    from edgenas.profiling.plain import time_fresh
    from edgenas.spaces import create_space
    from edgenas.spaces.genotype import load_genotype

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default="darts,proxyless")
    ap.add_argument("--backends", default="onnxruntime,tflite")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7000, help="First genotype seed (seeds seed..seed+n-1).")
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--tables-dir", default=str(ROOT / "latency_tables"))
    ap.add_argument("--label", default="shipped tables")
    ap.add_argument("--work", default="/tmp/edgenas-ms-truth")
    ap.add_argument("--export-only", action="store_true", help="Only export (conversion can run while busy).")
    ap.add_argument("--reuse-timings", action="store_true",
                    help="Take plain timings of files already timed in benchmarks/results/ms_truth.json (to score "
                         "another table against the same truth).")
    ap.add_argument("--artifacts", default="export", choices=["export", "profile"],
                    help="export: the files edgenas export writes (its parity and deployability checks cost about a "
                         "minute per network here); profile: the network files edgenas's own measurements time "
                         "(the same exporters; TFLite with NHWC I/O instead of export's default NCHW).")
    args = ap.parse_args()
    work = Path(args.work)
    store = TableStore(args.tables_dir)
    timed = {}
    if args.reuse_timings and (OUT / "ms_truth.json").exists():
        for r in json.loads((OUT / "ms_truth.json").read_text()).get("rows", []):
            for x in r.get("networks", []):
                timed[x.get("file")] = x
    rows = []
    for space_name in args.spaces.split(","):
        sp = create_space(space_name, "small")
        dirs = []
        for i in range(args.n if args.artifacts == "export" else 0):
            t0 = time.perf_counter()
            dirs.append(export(space_name, args.seed + i, work))
            print(f"export {space_name} {i + 1}/{args.n} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.export_only and args.artifacts == "export":
            continue
        archs = ([load_genotype(str(d / "genotype.json")).arch for d in dirs] if args.artifacts == "export" else
                 [sp.sample(random.Random(args.seed + i)) for i in range(args.n)])
        for backend in args.backends.split(","):
            pred = LatencyPredictor.load("x86-64-host", backend, sp, 1, store=store)
            be = create_backend(backend, threads=pred.sel.threads)
            nets, recipe = [], ""
            if args.export_only:  # profile artifacts: convert now (conversion may run while the host is busy)
                for i, arch in enumerate(archs):
                    network_artifact(be, sp, arch, 1)
                    print(f"converted {backend} {space_name} {i + 1}/{len(archs)}", flush=True)
                continue
            for i, arch in enumerate(archs):
                p = pred.predict(sp, arch).predicted_ms
                f = (dirs[i] / f"model.{SUFFIX[backend]}" if args.artifacts == "export"
                     else network_artifact(be, sp, arch, 1))
                if str(f) in timed:
                    plain_ms, per = timed[str(f)]["plain_ms"], timed[str(f)]["per_process_ms"]
                    recipe = timed[str(f)].get("recipe", "")
                else:
                    t = time_fresh(f, pred.sel.threads, args.processes)
                    plain_ms, per, recipe = t.ms, t.per_process_ms, t.recipe
                nets.append({"file": str(f), "predicted_ms": p, "plain_ms": plain_ms, "per_process_ms": per,
                             "recipe": recipe, "ratio": p / plain_ms})
                d = Path(f).parent if args.artifacts == "export" else Path(f)
                print(f"{backend} {space_name} {d.name}: predicted {p:.4f} ms, plain {plain_ms:.4f} ms "
                      f"({p / plain_ms:.3f})", flush=True)
            if not nets:
                continue
            m = score([x["predicted_ms"] for x in nets], [x["plain_ms"] for x in nets])
            rows.append({"label": args.label, "artifacts": args.artifacts, "backend": backend, "space": space_name,
                         "n": len(nets), "seed": args.seed, "cpu": machine_facts().get("cpu_model"), **m, "truth_recipe": recipe,
                         "scale": pred.anchor.as_dict() if pred.anchor else None, "tables_dir": args.tables_dir,
                         "ratio_min": min(x["ratio"] for x in nets), "ratio_max": max(x["ratio"] for x in nets),
                         "date": time.strftime("%Y-%m-%d"), "networks": nets})
            print(f"== {args.label}: {backend} {space_name}: {100 * m['within_10pct']:.0f}% within ±10% "
                  f"(MAPE {100 * m['mape']:.1f}%, bias {100 * m['bias']:+.1f}%)", flush=True)
    _write(rows, args)


def _row_key(r):
    return r["label"], r.get("artifacts"), r["backend"], r["space"]


def _write(rows, args):
    from edgenas.devices import machine_facts

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ms_truth.json"
    old = json.loads(path.read_text()).get("rows", []) if path.exists() else []
    new = {_row_key(r) for r in rows}  # a rerun of one row replaces it
    keep = [r for r in old if _row_key(r) not in new] + rows
    doc = {"machine": f"x86-64-host ({machine_facts().get('cpu_model')}, {os.cpu_count()} vCPU)", "rows": keep}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    lines = ["# edgenas predict vs a plain runtime timing of the edgenas export artifact", "",
             f"Machine of the last run: {doc['machine']}; each row's CPU in its column. Per row: N random `small` "
             "networks (the seeds column); files timed: "
             "`export` = the files `edgenas export --format onnx,tflite --no-measure` writes, `profile` = the network "
             "files edgenas's own measurements time (the same exporters; TFLite with NHWC I/O). Truth = the file "
             "timed plainly with its runtime, the fastest of 3 fresh processes; per process (column `truth`) "
             "`250 runs`: 30 warm-up runs, median of 5 blocks of 50 runs (until 2026-12-02), `phase-aware`: blocks "
             "for 2 s, their 10th percentile (the fastest steady phase: this VM alternates 1.4x-apart speed phases "
             "of 0.1-1 s, `edgenas/profiling/plain.py`). Produced by `python benchmarks/ms_truth.py`.", "",
             "| tables | CPU | files timed | backend | space | N | seeds | truth | within ±10% | within ±5% | MAPE | bias | predicted/plain min-max | scale | date |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in keep:
        sc = r.get("scale") or {}
        truth = "phase-aware" if "percentile" in r.get("truth_recipe", "") else "250 runs"
        lines.append(f"| {r['label']} | {r['cpu']} | {r.get('artifacts', 'export')} | {r['backend']} | {r['space']} | "
                     f"{r['n']} | {r['seed']}-{r['seed'] + r['n'] - 1} | {truth} | "
                     f"{100 * r['within_10pct']:.0f}% | "
                     f"{100 * r['within_5pct']:.0f}% | {100 * r['mape']:.1f}% | {100 * r['bias']:+.1f}% | "
                     f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f} | {sc.get('basis', '-')} "
                     f"{sc.get('anchor_ms', float('nan')):.4f} ms | {r['date']} |")
    (OUT / "ms_truth.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
