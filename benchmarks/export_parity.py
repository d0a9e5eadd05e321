"""Benchmark: export success, XNNPACK delegation and parity over random genotypes of both spaces.

Not a test (it converts ~100 networks, ~20-40 min on 2 cores); writes
benchmarks/results/export_parity.{json,md}. Each network gets trained-like BatchNorm statistics
(``parity.trained_like``) and goes through the same ``check_network`` as ``edgenas export``:
ONNX (dynamo, legacy fallback) + checker, TFLite via litert-torch, XNNPACK delegation read from
the interpreter, the static tflite_runtime 2.14 check, and onnxruntime / ai_edge_litert outputs
against PyTorch on Fashion-MNIST test images.

    python benchmarks/export_parity.py                      # 50 per space, small presets
    python benchmarks/export_parity.py --n 3 --out /tmp/b   # smoke
    python benchmarks/export_parity.py --tflite-runtime-python V/bin/python  # + real 2.14 load test
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgenas.process import prefer_passive_openmp  # noqa: E402 - before torch, as the edgenas command does

prefer_passive_openmp()

OUT = ROOT / "benchmarks" / "results"


def run(spaces, n: int, preset: str = "small", samples: int = 32, seed: int = 0, legacy_python=None,
        on_row=None) -> dict:
    from edgenas.errors import EdgeNASError
    from edgenas.export.parity import parity_inputs, trained_like
    from edgenas.export.pipeline import ExportOptions, check_network
    from edgenas.latency.verify import sample_archs
    from edgenas.profiling.networks import arch_id
    from edgenas.spaces import create_space

    opts = ExportOptions(parity_samples=samples, legacy_python=legacy_python)
    rows = []
    for name in spaces:
        space = create_space(name, preset)
        inputs = parity_inputs(space.input_shape, samples, 1)
        for i, arch in enumerate(sample_archs(space, n, seed)):
            module = trained_like(space.build(arch), seed=i)
            row = {"space": name, "preset": preset, "i": i, "arch_id": arch_id(space, arch)}
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="edgenas-bench-") as tmp:
                try:
                    net = check_network(module, space, 1, Path(tmp), opts, inputs=inputs)
                except EdgeNASError as e:  # a conversion failure is a result here, not a crash
                    row.update(error=str(e), onnx_exported=False, tflite_exported=False)
                else:
                    o, t_ = net.info.get("onnx", {}), net.info.get("tflite", {})
                    p = net.parity["runtimes"]
                    row.update(
                        onnx_exported="onnx" in net.artifacts, tflite_exported="tflite" in net.artifacts,
                        exporter=o.get("exporter"), fallback_reason=o.get("exporter_fallback_reason"),
                        onnx_s=o.get("export_s"), tflite_s=t_.get("export_s"),
                        fully_delegated=t_.get("xnnpack", {}).get("fully_delegated"),
                        partitions=t_.get("xnnpack", {}).get("partitions"),
                        not_delegated=t_.get("xnnpack", {}).get("not_delegated"),
                        tflite_ops=sorted(t_.get("op_counts", {})),
                        legacy_static_ok=t_.get("tflite_runtime_2_14", {}).get("loadable"),
                        legacy_loaded=(t_.get("tflite_runtime_2_14", {}).get("load_test") or {}).get("loaded"),
                        onnx_max_abs_diff=p.get("onnxruntime", {}).get("max_abs_diff"),
                        tflite_max_abs_diff=p.get("tflite", {}).get("max_abs_diff"),
                        legacy_max_abs_diff=p.get("tflite_runtime_legacy", {}).get("max_abs_diff"),
                        onnx_top1=p.get("onnxruntime", {}).get("top1_agreement"),
                        tflite_top1=p.get("tflite", {}).get("top1_agreement"),
                        passed=not net.failures, failures=[f.message for f in net.failures])
            row["total_s"] = round(time.perf_counter() - t, 2)
            rows.append(row)
            if on_row:
                on_row(row)
    return summarise(rows, spaces, n, preset, samples, inputs.source, legacy_python is not None)


def summarise(rows, spaces, n, preset, samples, inputs_source, legacy) -> dict:
    def share(rs, key):
        return round(sum(bool(r.get(key)) for r in rs) / len(rs), 3) if rs else None

    def worst(rs, key):
        v = [r[key] for r in rs if r.get(key) is not None]
        return max(v) if v else None

    def lowest(rs, key):
        v = [r[key] for r in rs if r.get(key) is not None]
        return min(v) if v else None

    def med(rs, key):
        v = [r[key] for r in rs if r.get(key) is not None]
        return round(statistics.median(v), 2) if v else None

    per = {}
    for name in spaces:
        rs = [r for r in rows if r["space"] == name]
        per[name] = {
            "networks": len(rs), "onnx_exported": share(rs, "onnx_exported"), "tflite_exported": share(rs, "tflite_exported"),
            "fully_delegated": share(rs, "fully_delegated"), "single_partition": round(
                sum(r.get("partitions") == 1 for r in rs) / len(rs), 3) if rs else None,
            "tflite_runtime_2_14_static_ok": share(rs, "legacy_static_ok"),
            "tflite_runtime_2_14_loaded": share(rs, "legacy_loaded") if legacy else None,
            "worst_onnx_max_abs_diff": worst(rs, "onnx_max_abs_diff"),
            "worst_tflite_max_abs_diff": worst(rs, "tflite_max_abs_diff"),
            "worst_tflite_runtime_2_14_max_abs_diff": worst(rs, "legacy_max_abs_diff") if legacy else None,
            "min_onnx_top1_agreement": lowest(rs, "onnx_top1"), "min_tflite_top1_agreement": lowest(rs, "tflite_top1"),
            "passed": share(rs, "passed"),
            "exporter": {e: sum(r.get("exporter") == e for r in rs) for e in ("dynamo", "legacy")},
            "median_onnx_export_s": med(rs, "onnx_s"), "median_tflite_export_s": med(rs, "tflite_s"),
            "median_total_s": med(rs, "total_s"),
            "tflite_ops_seen": sorted({op for r in rs for op in r.get("tflite_ops", [])}),
        }
    import onnxruntime
    import torch
    from importlib.metadata import version

    from edgenas.export.parity import DEFAULT_ATOL

    return {"benchmark": "export_parity", "n_per_space": n, "preset": preset, "parity_inputs": inputs_source,
            "parity_samples": samples, "atol": DEFAULT_ATOL, "per_space": per,
            "environment": {"python": platform.python_version(), "torch": torch.__version__,
                            "onnxruntime": onnxruntime.__version__, "litert_torch": version("litert-torch"),
                            "ai_edge_litert": version("ai-edge-litert"), "cpu": platform.processor() or platform.machine()},
            "rows": rows}


def markdown(res: dict) -> str:
    lines = [f"# Export and parity over random genotypes ({res['n_per_space']} per space, preset {res['preset']})", "",
             f"Parity inputs: {res['parity_inputs']}; tolerance max abs diff <= {res['atol']:g}. "
             f"Environment: torch {res['environment']['torch']}, onnxruntime {res['environment']['onnxruntime']}, "
             f"litert-torch {res['environment']['litert_torch']}, ai-edge-litert {res['environment']['ai_edge_litert']}.",
             "", "| | " + " | ".join(res["per_space"]) + " |", "|---|" + "---|" * len(res["per_space"])]
    keys = [("networks", "networks"), ("onnx_exported", "exported to ONNX"), ("tflite_exported", "exported to TFLite"),
            ("fully_delegated", "every TFLite op delegated to XNNPACK"), ("single_partition", "one XNNPACK partition"),
            ("tflite_runtime_2_14_static_ok", "tflite_runtime 2.14 loadable (static)"),
            ("tflite_runtime_2_14_loaded", "tflite_runtime 2.14 loaded (real)"),
            ("worst_onnx_max_abs_diff", "worst max abs diff, onnxruntime"),
            ("worst_tflite_max_abs_diff", "worst max abs diff, TFLite (ai_edge_litert)"),
            ("worst_tflite_runtime_2_14_max_abs_diff", "worst max abs diff, tflite_runtime 2.14"),
            ("min_onnx_top1_agreement", "lowest top-1 agreement, onnxruntime"),
            ("min_tflite_top1_agreement", "lowest top-1 agreement, TFLite"),
            ("passed", "passed every check"), ("exporter", "ONNX exporter used"),
            ("median_onnx_export_s", "median ONNX export (s)"), ("median_tflite_export_s", "median TFLite conversion (s)"),
            ("median_total_s", "median total per network (s)"), ("tflite_ops_seen", "TFLite ops seen")]

    shares = {"onnx_exported", "tflite_exported", "fully_delegated", "single_partition", "tflite_runtime_2_14_static_ok",
              "tflite_runtime_2_14_loaded", "min_onnx_top1_agreement", "min_tflite_top1_agreement", "passed"}

    def fmt(v, key=""):
        if key in shares and isinstance(v, (int, float)):
            return f"{100 * v:.0f}%"
        if isinstance(v, float):
            return f"{v:.2e}" if v < 0.01 and v != 0 else f"{v:g}"
        if isinstance(v, dict):
            return ", ".join(f"{k} {x}" for k, x in v.items())
        if isinstance(v, list):
            return ", ".join(v)
        return "-" if v is None else str(v)

    for k, label in keys:
        lines.append(f"| {label} | " + " | ".join(fmt(p.get(k), k) for p in res["per_space"].values()) + " |")
    fails = [r for r in res["rows"] if not r.get("passed")]
    lines += ["", f"Networks that failed a check: {len(fails)}."]
    for r in fails[:10]:
        lines.append(f"- {r['space']} #{r['i']} {r['arch_id']}: {r.get('error') or '; '.join(r.get('failures', []))}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="random genotypes per space")
    ap.add_argument("--spaces", default="darts,proxyless")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--samples", type=int, default=32, help="parity images per network")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tflite-runtime-python", default=None, help="a Python with tflite_runtime 2.14 (real load test)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--render", type=Path, default=None, help="only rewrite the .md from an existing results .json")
    a = ap.parse_args(argv)
    from edgenas.io import atomic_write_text

    if a.render:
        atomic_write_text(a.out / "export_parity.md", markdown(json.loads(a.render.read_text())))
        return

    t0 = time.perf_counter()

    def progress(r):
        print(f"[{time.perf_counter() - t0:7.0f}s] {r['space']} #{r['i']}: passed={r.get('passed')} "
              f"onnx={r.get('onnx_max_abs_diff')} tflite={r.get('tflite_max_abs_diff')} "
              f"delegated={r.get('fully_delegated')} {r['total_s']}s", flush=True)

    res = run(a.spaces.split(","), a.n, a.preset, a.samples, a.seed, a.tflite_runtime_python, on_row=progress)
    res["elapsed_s"] = round(time.perf_counter() - t0, 1)
    atomic_write_text(a.out / "export_parity.json", json.dumps(res, indent=2, default=str) + "\n")
    atomic_write_text(a.out / "export_parity.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
