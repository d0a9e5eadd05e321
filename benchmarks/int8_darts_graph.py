"""Why the op table misprices darts networks at int8: what the runtime really executes, measured.

Reads the per-network truth that ``benchmarks/int8.py --verify`` keeps
(``results/verify-int8-{backend}-darts-b1.networks.json``: each held-out network's plain timing,
fastest of 3 fresh processes, and its op-table sum), loads the same int8 files from the artifact
cache, and counts what each runtime runs: for onnxruntime the node types of the session's
*optimized* graph (``SessionOptions.optimized_model_filepath``: QLinear kernels, float ops left
between DequantizeLinear/QuantizeLinear, layout Transposes); for TFLite the XNNPACK partitions and
the int8 ops the delegate leaves to TFLite's own kernels. Then leave-one-out ridge regressions
(scikit-learn) of the truth on the op sum, on those counts, and on both: if the counts explain
what the op sum does not, the shortfall is the graph the runtime builds around single ops (fusion,
partitions, layout), not noise in the truth. The truth's own repeatability (spread of the 3
processes) is reported beside it.

    python benchmarks/int8.py --verify            # first: the truth (quiet machine)
    python benchmarks/int8_darts_graph.py         # then this (seconds; reads the cache)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results"


def ort_counts(path: Path, tmp: str) -> dict:
    """Node types of onnxruntime's optimized graph of ``path`` (what the CPU provider runs)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3  # the "hardware specific optimizations" warning of serializing NCHWc graphs
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = os.path.join(tmp, path.parent.name + ".onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return dict(Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node))


def tflite_counts(path: Path, tmp: str) -> dict:
    """XNNPACK partitions and the int8 ops its delegate does not take."""
    from edgenas.export.deployability import xnnpack_delegation

    r = xnnpack_delegation(path)
    return {"partitions": r.partitions, **{f"not_delegated_{k}": v for k, v in r.not_delegated.items()}}


def loo(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 25)))
    return cross_val_predict(model, features, y, cv=LeaveOneOut())


def analyse(backend: str) -> dict:
    from edgenas.latency.verify import score
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.networks import network_artifact
    from edgenas.spaces import create_space

    nets = json.loads((OUT / f"verify-int8-{backend}-darts-b1.networks.json").read_text())
    space = create_space("darts", "small")
    be = create_backend(backend, precision="int8")
    count = ort_counts if backend == "onnxruntime" else tflite_counts
    with tempfile.TemporaryDirectory() as tmp:
        rows = [count(Path(network_artifact(be, space, space.parse_arch(n["arch"]), 1)), tmp) for n in nets]
    keys = sorted({k for r in rows for k in r if len({q.get(k, 0) for q in rows}) > 1})
    x = np.array([[r.get(k, 0) for k in keys] for r in rows], float)
    y = np.array([n["measured_ms"] for n in nets])
    s = np.array([n["sum_ms"] for n in nets])
    p = np.array([n["predicted_ms"] for n in nets])
    per = np.array([n["plain_per_process_ms"] for n in nets])
    fits = {name: loo(f, y) for name, f in (("op sum", s[:, None]), ("graph counts", x), ("op sum + graph counts",
                                                                                        np.c_[s, x]))}
    return {"backend": backend, "n": len(nets), "truth_ms": [float(y.min()), float(y.max())],
            "truth_repeat_p90": float(np.percentile(per.max(1) / per.min(1), 90)),
            "corr_op_sum_truth": float(np.corrcoef(s, y)[0, 1]),
            "calibrated_table_within_10pct": score(p, y)["within_10pct"],
            "loo": {k: {m: score(v, y)[m] for m in ("within_10pct", "mape")} for k, v in fits.items()},
            "counts": {k: {"range": [int(c.min()), int(c.max())], "corr_truth": float(np.corrcoef(c, y)[0, 1])}
                       for k, c in zip(keys, x.T)}}


def markdown(res: list[dict], date: str) -> str:
    lines = [f"# Darts at int8: the op table against the graph the runtime runs ({date}, x86-64-host)", "",
             "Truth: `benchmarks/int8.py --verify` (50 held-out darts/small networks, batch 1, 1 thread, the int8 file "
             "timed plainly, fastest of 3 fresh processes; `verify-int8-*-darts-b1.networks.json`). Counts: "
             "onnxruntime's optimized graph (node types after its graph optimizations, as the CPU provider runs it); "
             "TFLite's XNNPACK partitions and the int8 ops its delegate leaves out. Fits: leave-one-out ridge "
             "(scikit-learn, standardised features), each network predicted by a model fitted on the other 49.", "",
             "| backend | truth ms | truth: 3-process spread p90 | corr(op sum, truth) | calibrated table ±10% | "
             "LOO op sum ±10% | LOO graph counts ±10% | LOO op sum + counts ±10% (MAPE) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res:
        lo = r["loo"]
        lines.append(f"| {r['backend']} | {r['truth_ms'][0]:.3f}-{r['truth_ms'][1]:.3f} | {r['truth_repeat_p90']:.3f}x | "
                     f"{r['corr_op_sum_truth']:+.2f} | {100 * r['calibrated_table_within_10pct']:.0f}% | "
                     f"{100 * lo['op sum']['within_10pct']:.0f}% | {100 * lo['graph counts']['within_10pct']:.0f}% | "
                     f"{100 * lo['op sum + graph counts']['within_10pct']:.0f}% "
                     f"({100 * lo['op sum + graph counts']['mape']:.1f}%) |")
    for r in res:
        lines += ["", f"## {r['backend']}: counts that vary between networks", "", "| count | range | corr(truth) |",
                  "|---|---|---|"]
        lines += [f"| {k} | {v['range'][0]}-{v['range'][1]} | {v['corr_truth']:+.2f} |" for k, v in r["counts"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="onnxruntime,tflite")
    a = ap.parse_args(argv)
    res = [analyse(b) for b in a.backends.split(",")]
    date = time.strftime("%Y-%m-%d", time.gmtime())
    (OUT / "int8_darts_graph.json").write_text(json.dumps({"date": date, "results": res}, indent=1) + "\n")
    (OUT / "int8_darts_graph.md").write_text(markdown(res, date))
    print(markdown(res, date))


if __name__ == "__main__":
    main()
