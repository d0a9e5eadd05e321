"""Benchmark: cold-cache table build time, conversion vs measurement, before and after the conversion phase.

Not a test (timings on a shared VM are noisy); writes benchmarks/results/table_build.{json,md}.

    python benchmarks/table_build.py                                   # ORT, TFLite, torch-cpu; small presets, b1+b8
    python benchmarks/table_build.py --backends tflite --limit 20      # a subset of the op instances
    python benchmarks/table_build.py --backends tflite --modes after   # the TFLite build as edgenas profile runs it
    python benchmarks/table_build.py --rebatch-ab --out table_build_rebatch_ab   # TFLite batch 8: rebatched vs converted

Per backend, in one process and one after the other, each from its own empty artifact cache:
- **before**: what ``edgenas profile`` did until now: every model converted in this process, one
  after another, with the exporter whole networks use (onnxruntime: dynamo for every op);
- **after**: the conversion phase (``convert_artifacts``: worker pool, legacy ONNX exporter for the
  op kinds where it is exact, TFLite batch-8 files rebatched from batch 1 where that gives the
  batch-8 conversion's bytes), then the same measurement.
Both tables are then compared entry by entry on the paired ratio to the reference op (what
carries the value across processes): two entries agree when their ratios differ by no more than
the sum of their 95% CI half-widths. The machine's load average is recorded beside each build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def convert_before(backend, specs, batches, cache: Path) -> float:
    """The old conversion path: in this process, sequential, untagged modules (the network exporter)."""
    from edgenas.ops.registry import build_op
    from edgenas.profiling.runner import REFERENCE_OP, nchw, op_cache_key

    start = time.perf_counter()
    for batch in batches:
        for spec in [REFERENCE_OP, *specs]:
            backend.artifact(build_op(spec).eval(), nchw(spec, batch), cache, op_cache_key(spec))
    return time.perf_counter() - start


def build(backend_name: str, mode: str, specs, batches, root: Path, workers: int | None, settings) -> dict:
    from edgenas.devices import get_profile
    from edgenas.latency.store import TableStore
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.runner import profile_ops

    be = create_backend(backend_name)
    cache, store = root / mode / "cache", TableStore(root / mode / "tables")
    load0, start = os.getloadavg()[0], time.perf_counter()
    before_convert = convert_before(be, specs, batches, cache) if mode == "before" and be.suffix else 0.0
    converted_before = (len(specs) + 1) * len(batches) if mode == "before" and be.suffix else 0
    r = profile_ops(get_profile("x86-64-host"), be, specs, batches, store, cache=cache, settings=settings,
                    convert_workers=1 if mode == "before" else workers)
    total = time.perf_counter() - start
    convert_s = before_convert + r.convert_s
    table = store.load("x86-64-host", backend_name)
    chunks = [c for run in table.runs.values() for c in run.get("chunks", [])]
    other = [c["other_load"] for c in chunks if c.get("other_load") is not None]
    return {"backend": backend_name, "mode": mode, "entries": len(table.df), "total_s": round(total, 1),
            "convert_s": round(convert_s, 1), "measure_s": round(total - convert_s, 1),
            "convert_s_per_artifact": round(convert_s / ((len(specs) + 1) * len(batches)), 2) if be.suffix else 0.0,
            "workers": max((run.get("conversion", {}).get("workers", 1) for run in table.runs.values()), default=1),
            "converted": converted_before + sum(run.get("conversion", {}).get("converted", 0) for run in table.runs.values()),
            "derived": sum(run.get("conversion", {}).get("derived", 0) for run in table.runs.values()),
            "ci_under_10pct": round(float((table.df["rel_ci"] < 0.10).mean()), 3),
            "ci_under_5pct": round(float((table.df["rel_ci"] < 0.05).mean()), 3),
            "load_avg_start": round(load0, 1), "load_avg_end": round(os.getloadavg()[0], 1),
            "other_load_cores_median": round(float(pd.Series(other).median()), 2) if other else None,
            "table": table.df}


def agreement(a: pd.DataFrame, b: pd.DataFrame, backend: str) -> dict:
    """Share of entries whose paired ratios agree within the sum of their CI half-widths, split by
    whether the converter changed for the entry (onnxruntime's exporter for LEGACY_EXACT_OPS kinds;
    elsewhere the artifact is made alike and only noise can differ)."""
    from edgenas.profiling.onnx_exporters import LEGACY_EXACT_OPS

    m = a.merge(b, on=["op_key", "batch"], suffixes=("_a", "_b"))
    diff = (m["ref_ratio_a"] - m["ref_ratio_b"]).abs()
    allowed = m["rel_ci_a"] * m["ref_ratio_a"] + m["rel_ci_b"] * m["ref_ratio_b"]
    rel = diff / ((m["ref_ratio_a"] + m["ref_ratio_b"]) / 2)
    ok = diff <= allowed
    changed = m["op_key"].str.split("-").str[0].isin(LEGACY_EXACT_OPS) & (backend == "onnxruntime")
    return {"compared": len(m), "agree_within_ci": round(float(ok.mean()), 3),
            "agree_converter_changed": f"{int(ok[changed].sum())}/{int(changed.sum())}",
            "agree_converter_same": f"{int(ok[~changed].sum())}/{int((~changed).sum())}",
            "median_rel_diff": round(float(rel.median()), 4), "p90_rel_diff": round(float(rel.quantile(0.9)), 4),
            "disagreeing": [{"op_key": r.op_key, "batch": int(r.batch), "ratio_before": round(r.ref_ratio_a, 4),
                             "ratio_after": round(r.ref_ratio_b, 4), "ci_before": round(r.rel_ci_a, 4),
                             "ci_after": round(r.rel_ci_b, 4)} for r in m[~ok].itertuples()]}


def exporter_ab(per_kind: int, settings) -> dict:
    """onnxruntime, batch 1: the dynamo and the legacy artifact of ops of each legacy-routed structure,
    timed in the same measure() call (interleaved, one paired reference): the cleanest A/B there is."""
    from edgenas.ops.registry import is_zero_cost
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.onnx_exporters import LEGACY_EXACT_OPS, export_op_legacy
    from edgenas.profiling.onnxruntime_backend import export_onnx
    from edgenas.profiling.protocol import measure
    from edgenas.profiling.runner import REFERENCE_OP, nchw, op_module, prepare_op, space_specs

    be = create_backend("onnxruntime")
    specs, count = [], {}
    for s in space_specs(["darts", "proxyless"], "small"):
        structure = (s.op, s.kernel, s.stride, min(s.expand, 2), s.dilation, s.idskip)  # what changes the graph
        if s.op in LEGACY_EXACT_OPS and not is_zero_cost(s) and count.get(structure, 0) < per_kind:
            specs.append(s)
            count[structure] = count.get(structure, 0) + 1
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(0, len(specs), 6):
            timers = {}
            for s in specs[i:i + 6]:
                module, shape = op_module(s), nchw(s, 1)
                export_onnx(module, shape, Path(d) / f"{s.key}.dynamo.onnx")
                export_op_legacy(module, shape, Path(d) / f"{s.key}.legacy.onnx")
                for how in ("dynamo", "legacy"):
                    timers[f"{s.key}|{how}"] = be.load(Path(d) / f"{s.key}.{how}.onnx", shape)
            rep = measure(timers, settings, reference=prepare_op(be, REFERENCE_OP, 1, Path(d) / "cache"))
            for s in specs[i:i + 6]:
                a, b = rep.stats[f"{s.key}|dynamo"], rep.stats[f"{s.key}|legacy"]
                diff = abs(a.ref_ratio - b.ref_ratio)
                rows.append({"op_key": s.key,
                             "ratio_dynamo": round(a.ref_ratio, 4), "ratio_legacy": round(b.ref_ratio, 4),
                             "ci_dynamo": round(a.rel_ci, 4), "ci_legacy": round(b.rel_ci, 4),
                             "rel_diff": round(diff / a.ref_ratio, 4),
                             "agree": bool(diff <= a.rel_ci * a.ref_ratio + b.rel_ci * b.ref_ratio)})
                print(json.dumps(rows[-1]), flush=True)
    return {"ops": len(rows), "agree_within_ci": f"{sum(r['agree'] for r in rows)}/{len(rows)}",
            "median_rel_diff": float(pd.Series([r["rel_diff"] for r in rows]).median()), "rows": rows}


def rebatch_ab(settings, batch: int = 8) -> dict:
    """TFLite, one op per structure of the darts+proxyless small presets: the batch-``batch`` conversion
    beside ``rebatch`` of the batch-1 conversion (what the conversion phase now writes). Per op: are
    the files byte-equal (or is rebatch refused), and are their times equal within CI, timed in the
    same measure() calls (two interpreters of equal files: this host's own spread)."""
    from edgenas.ops.registry import is_zero_cost
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.protocol import measure
    from edgenas.profiling.runner import REFERENCE_OP, nchw, op_module, prepare_op, space_specs
    from edgenas.profiling.tflite import export_tflite
    from edgenas.profiling.tflite_batch import rebatch

    be = create_backend("tflite")
    seen = {}
    for s in space_specs(["darts", "proxyless"], "small"):
        if not is_zero_cost(s):
            seen.setdefault((s.op, s.kernel, s.stride, min(s.expand, 2), s.dilation, s.idskip), s)
    specs, rows = list(seen.values()), []
    with tempfile.TemporaryDirectory() as d:
        for i in range(0, len(specs), 6):
            timers, checks = {}, {}
            for s in specs[i:i + 6]:
                module, one, many = op_module(s), Path(d) / f"{s.key}.b1.tflite", Path(d) / f"{s.key}.b{batch}.tflite"
                t = time.perf_counter()
                export_tflite(module, nchw(s, 1), one)
                t1 = time.perf_counter()
                export_tflite(module, nchw(s, batch), many)
                t_b = time.perf_counter()
                made = rebatch(one, batch)
                t_r = time.perf_counter()
                checks[s.key] = {"op_key": s.key, "rebatched": made is not None,
                                 "byte_equal": made == many.read_bytes() if made is not None else None,
                                 "convert_b1_s": round(t1 - t, 2), f"convert_b{batch}_s": round(t_b - t1, 2),
                                 "rebatch_s": round(t_r - t_b, 4)}
                if made is not None:
                    (Path(d) / f"{s.key}.rebatched.tflite").write_bytes(made)
                    timers[f"{s.key}|rebatched"] = be.load(Path(d) / f"{s.key}.rebatched.tflite", nchw(s, batch))
                    timers[f"{s.key}|converted"] = be.load(many, nchw(s, batch))
            rep = measure(timers, settings, reference=prepare_op(be, REFERENCE_OP, batch, Path(d) / "cache"))
            for key, row in checks.items():
                if row["rebatched"]:
                    a, b = rep.stats[f"{key}|rebatched"], rep.stats[f"{key}|converted"]
                    diff = abs(a.ref_ratio - b.ref_ratio)
                    row.update({"ratio_rebatched": round(a.ref_ratio, 4), "ratio_converted": round(b.ref_ratio, 4),
                                "ci_rebatched": round(a.rel_ci, 4), "ci_converted": round(b.rel_ci, 4),
                                "rel_diff": round(diff / b.ref_ratio, 4),
                                "agree": bool(diff <= a.rel_ci * a.ref_ratio + b.rel_ci * b.ref_ratio)})
                rows.append(row)
                print(json.dumps(row), flush=True)
    made = [r for r in rows if r["rebatched"]]
    return {"ops": len(rows), "batch": batch, "rebatched": f"{len(made)}/{len(rows)}",
            "byte_equal": f"{sum(r['byte_equal'] for r in made)}/{len(made)}",
            "agree_within_ci": f"{sum(r['agree'] for r in made)}/{len(made)}",
            "median_rel_diff": float(pd.Series([r["rel_diff"] for r in made]).median()) if made else None,
            "rows": rows}


def main():
    from edgenas.ops.registry import is_zero_cost
    from edgenas.profiling.protocol import ProtocolSettings
    from edgenas.profiling.runner import space_specs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="onnxruntime,tflite,torch-cpu")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--limit", type=int, default=0, help="only the first N op instances (0: all)")
    ap.add_argument("--workers", type=int, default=None, help="conversion workers after (default: one per CPU)")
    ap.add_argument("--modes", default="before,after")
    ap.add_argument("--out", default="table_build")
    ap.add_argument("--quick", action="store_true", help="the quick protocol (a smoke run, not a table)")
    ap.add_argument("--rebatch-ab", action="store_true",
                    help="instead: TFLite batch 8, the batch-8 conversion vs the rebatched batch-1 one, side by side")
    ap.add_argument("--exporter-ab", type=int, default=0, metavar="N",
                    help="instead: N ops per legacy-routed op structure, dynamo vs legacy artifact timed side by side")
    args = ap.parse_args()
    settings = ProtocolSettings.quick() if args.quick else ProtocolSettings()
    if args.exporter_ab or args.rebatch_ab:
        load0 = round(os.getloadavg()[0], 1)
        ab = rebatch_ab(settings) if args.rebatch_ab else exporter_ab(args.exporter_ab, settings)
        result = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": load0,
                  **ab, "load_avg_end": round(os.getloadavg()[0], 1)}
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
        return
    specs = [s for s in space_specs(["darts", "proxyless"], "small") if not is_zero_cost(s)]
    specs = specs[:args.limit] if args.limit else specs
    batches = [int(b) for b in args.batches.split(",")]
    rows, agree = [], {}
    with tempfile.TemporaryDirectory() as d:
        for backend in args.backends.split(","):
            modes = args.modes.split(",") if backend != "torch-cpu" else ["after"]  # nothing to convert
            built = {}
            for mode in modes:
                built[mode] = build(backend, mode, specs, batches, Path(d) / backend, args.workers, settings)
                row = {k: v for k, v in built[mode].items() if k != "table"}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if len(built) == 2:
                agree[backend] = agreement(built["before"]["table"], built["after"]["table"], backend)
                print(backend, json.dumps(agree[backend]), flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "op_instances": len(specs),
              "batches": batches, "builds": rows, "before_after_agreement": agree}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
