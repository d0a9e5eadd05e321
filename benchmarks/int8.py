"""Benchmark: int8 against fp32 for the same random networks, per backend and space.

For each backend (onnxruntime, tflite) and space (small presets), the same ``--n`` random networks
(a fixed seed) go through the export code path twice, ``Backend.ship`` at fp32 and at int8, int8
calibrated as ``edgenas export --precision int8`` does (``int8_checks.calibration_images``: 256
Fashion-MNIST training images). Per network:

- **latency**: fp32 and int8 timed side by side in one process, plainly with the runtime (as
  ``benchmark_model``/``onnxruntime_perf_test`` would), alternating blocks, same thread count
  (``profiling.plain.time_side_by_side``); the ratio is the median of the per-block ratios, so a
  busy host's slow spells hit both sides of a pair alike;
- **size**: int8 bytes over fp32 bytes of the shipped files;
- **outputs**: on real Fashion-MNIST test images, the int8 file's top-1 agreement with the fp32
  network and its output error (RMS of int8 - fp32 over RMS of fp32 logits). These networks are
  untrained (trained-like BatchNorm statistics, as in ``export_parity``), so their accuracy means
  nothing; the first ``--trained`` networks per space are therefore also trained briefly on
  Fashion-MNIST (``search.pipeline.retrain``) and exported again, and their accuracy change
  (int8 file against the fp32 network, whole test set) is reported.

The predictor's held-out accuracy at int8 comes from ``edgenas verify --precision int8`` (``--verify``
runs it; otherwise the rows of an earlier run of this benchmark are kept). Shipped files and trained
weights are cached under ``$EDGENAS_CACHE/int8-bench``, so a second run only times.

    python benchmarks/int8.py                                 # everything, 20 networks, 4 trained per space
    python benchmarks/int8.py --quick --out /tmp/int8         # smoke: 2 networks, 1 tiny training
    python benchmarks/int8.py --backends tflite --spaces proxyless --verify
    python benchmarks/int8.py --prepare-only                  # convert and train only (a busy host), time later
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results"
#: bump when what is cached (shipped pair, trained weights) changes meaning
CACHE_VERSION = "1"


# ---- pure helpers (tests/test_int8_bench.py) ---------------------------------------------------

def paired_ratio(fp32_blocks, int8_blocks) -> dict:
    """int8/fp32 from side-by-side block medians: the median of per-block ratios, and both medians."""
    if len(fp32_blocks) != len(int8_blocks) or not fp32_blocks:
        raise ValueError("paired_ratio needs the same, non-zero number of fp32 and int8 blocks")
    ratios = [b / a for a, b in zip(fp32_blocks, int8_blocks)]
    return {"fp32_ms": round(statistics.median(fp32_blocks), 5), "int8_ms": round(statistics.median(int8_blocks), 5),
            "ratio": round(statistics.median(ratios), 4), "ratio_min": round(min(ratios), 4),
            "ratio_max": round(max(ratios), 4)}


def output_error(reference, got) -> dict:
    """Top-1 agreement of ``got`` with ``reference`` (N x classes) and the relative RMS output error."""
    import numpy as np

    reference, got = np.asarray(reference, float), np.asarray(got, float)
    rms = float(np.sqrt((reference ** 2).mean()))
    return {"top1_agreement": float((reference.argmax(1) == got.argmax(1)).mean()),
            "rel_rms_error": float(np.sqrt(((got - reference) ** 2).mean()) / rms) if rms else float("nan")}


def _q(values, q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summarise(rows: list[dict], trained: list[dict]) -> dict:
    """Per "backend/space": latency and size ratios, agreement, and the trained networks' accuracy change."""
    out: dict = {}
    for key in dict.fromkeys(f"{r['backend']}/{r['space']}" for r in rows + trained):
        rs = [r for r in rows if f"{r['backend']}/{r['space']}" == key and "error" not in r]
        ts = [t for t in trained if f"{t['backend']}/{t['space']}" == key and "error" not in t]
        errors = sum(f"{r['backend']}/{r['space']}" == key and "error" in r for r in rows + trained)
        s: dict = {"networks": len(rs), "errors": errors}
        if rs:
            ratios = [r["latency"]["ratio"] for r in rs]
            s.update({"median_latency_ratio": round(statistics.median(ratios), 3),
                      "latency_ratio_p10": round(_q(ratios, 0.1), 3), "latency_ratio_p90": round(_q(ratios, 0.9), 3),
                      "int8_faster": sum(x < 1 for x in ratios),
                      "median_fp32_ms": round(statistics.median(r["latency"]["fp32_ms"] for r in rs), 4),
                      "median_int8_ms": round(statistics.median(r["latency"]["int8_ms"] for r in rs), 4),
                      "median_size_ratio": round(statistics.median(r["size_ratio"] for r in rs), 3),
                      "mean_top1_agreement": round(statistics.mean(r["top1_agreement"] for r in rs), 4),
                      "min_top1_agreement": round(min(r["top1_agreement"] for r in rs), 4),
                      "median_rel_rms_error": round(statistics.median(r["rel_rms_error"] for r in rs), 4)})
        if ts:
            changes = [t["accuracy_change_points"] for t in ts]
            s.update({"trained_networks": len(ts),
                      "mean_fp32_accuracy": round(statistics.mean(t["fp32_accuracy"] for t in ts), 4),
                      "mean_accuracy_change_points": round(statistics.mean(changes), 3),
                      "worst_accuracy_change_points": round(min(changes), 3),
                      "trained_min_top1_agreement": round(min(t["top1_agreement"] for t in ts), 4)})
        out[key] = s
    return out


# ---- measuring ---------------------------------------------------------------------------------

def _cache_root() -> Path:
    from edgenas.paths import cache_dir

    return cache_dir() / "int8-bench"


def ship_pair(backend: str, module, shape, tag: str, calibration, threads: int) -> dict:
    """fp32 and int8 files of ``module`` through ``Backend.ship`` (cached under ``tag``), with ship info.

    ``tag`` must name the module's weights: the cache trusts it.
    """
    from edgenas.profiling.base import create_backend

    fp32 = create_backend(backend, threads=threads)
    int8 = create_backend(backend, threads=threads, precision="int8")
    int8.calibration = calibration
    key = "|".join([CACHE_VERSION, backend, int8.converter_version(), fp32.converter_version(), tag,
                    "x".join(map(str, shape)), calibration.fingerprint()])
    d = _cache_root() / backend / hashlib.sha256(key.encode()).hexdigest()[:24]
    meta = d / "pair.json"
    if meta.exists():
        return json.loads(meta.read_text())
    d.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    a = fp32.ship(module, shape, d / f"model{fp32.suffix}")
    fp32_s = time.perf_counter() - t
    b = int8.ship(module, shape, d / f"model_int8{int8.suffix}")
    pair = {"fp32": str(a.path), "int8": str(b.path), "fp32_bytes": a.path.stat().st_size,
            "int8_bytes": b.path.stat().st_size, "fp32_export_s": round(fp32_s, 1),
            "int8_export_s": round(time.perf_counter() - t - fp32_s, 1),
            "int8_info": {k: b.info.get(k) for k in ("op_counts", "xnnpack", "added_ops", "int8_unfused_qdq")
                          if b.info.get(k) is not None},
            "quantization": {k: v for k, v in (b.info.get("quantization") or {}).items()
                             if k in ("added_ops", "more_nodes_than_float", "float_nodes", "int8_nodes",
                                      "int8_unfused_qdq", "flow", "quantizer", "io")}}
    meta.write_text(json.dumps(pair, indent=1, default=str))
    return pair


def _outputs(backend: str, path: str, x, threads: int):
    """Float outputs of a shipped file (either precision: the backend reads the I/O types from the file)."""
    from edgenas.profiling.base import create_backend

    return create_backend(backend, threads=threads).outputs(path, x, 1)


def one(backend: str, space, arch, i: int, inputs, calibration, a) -> dict:
    """One untrained network: ship both, compare outputs on real images, time side by side."""
    import torch

    from edgenas.export.parity import torch_outputs, trained_like
    from edgenas.profiling.networks import arch_id
    from edgenas.profiling.plain import time_side_by_side

    torch.manual_seed(a.seed + i)
    module = trained_like(space.build(arch), seed=a.seed + i).eval()
    aid = arch_id(space, arch)
    shape = (a.batch, *space.input_shape)
    pair = ship_pair(backend, module, shape, f"{aid}|untrained:torch-seed{a.seed + i}|trained_like{a.seed + i}",
                     calibration, a.threads)
    if a.prepare_only:
        return {"backend": backend, "space": space.name, "i": i, "prepared": [pair["fp32"], pair["int8"]]}
    ref = torch_outputs(module, inputs.x)
    got8 = _outputs(backend, pair["int8"], inputs.x, a.threads)
    blocks = time_side_by_side([pair["fp32"], pair["int8"]], a.threads, a.blocks, a.runs)
    return {"backend": backend, "space": space.name, "i": i, "arch_id": aid,
            "latency": paired_ratio(*blocks), "size_ratio": round(pair["int8_bytes"] / pair["fp32_bytes"], 4),
            **output_error(ref, got8), "fp32_bytes": pair["fp32_bytes"], "int8_bytes": pair["int8_bytes"],
            "export_s": [pair["fp32_export_s"], pair["int8_export_s"]], "int8_info": pair["int8_info"],
            "quantization": pair["quantization"]}


def train(space, arch, i: int, data, a):
    """The network of ``arch`` trained briefly on Fashion-MNIST (cached): (module, PyTorch test accuracy)."""
    import types

    import torch

    from edgenas.profiling.networks import arch_id
    from edgenas.search.pipeline import retrain

    tag = f"{arch_id(space, arch)}|trained:{a.train_epochs}ep-{a.train_images}img-seed{a.seed + i}"
    path = _cache_root() / "trained" / f"{hashlib.sha256((CACHE_VERSION + tag).encode()).hexdigest()[:24]}.pt"
    module = space.build(arch)
    if path.exists():
        module.load_state_dict(torch.load(path, weights_only=True))
        return module.eval(), tag
    ctx = types.SimpleNamespace(space=space, data=data, budget=types.SimpleNamespace(batch_size=64), device="cpu")
    model, *_ = retrain(ctx, arch, a.train_epochs, seed=a.seed + i, test=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval(), tag


def one_trained(backend: str, space, arch, i: int, data, test, calibration, a) -> dict:
    from edgenas.export.int8_checks import check
    from edgenas.export.parity import torch_outputs

    module, tag = train(space, arch, i, data, a)
    pair = ship_pair(backend, module, (a.batch, *space.input_shape), tag, calibration, a.threads)
    if a.prepare_only:
        return {"backend": backend, "space": space.name, "i": i, "prepared": [pair["fp32"], pair["int8"]]}
    ref = torch_outputs(module, test.x)
    entry, _ = check(ref, _outputs(backend, pair["int8"], test.x, a.threads), test.labels, pair["int8_bytes"],
                     pair["fp32_bytes"])
    fp32_file_acc = float((_outputs(backend, pair["fp32"], test.x, a.threads).argmax(1) == test.labels).mean())
    return {"backend": backend, "space": space.name, "i": i, "test_images": int(len(test.x)),
            "fp32_accuracy": entry["fp32_accuracy"], "fp32_file_accuracy": fp32_file_acc,
            "int8_accuracy": entry["int8_accuracy"], "accuracy_change_points": entry["accuracy_change_points"],
            "top1_agreement": entry["top1_agreement"], "passes_export_checks": entry["passed"]}


def verify_int8(backend: str, space: str, a) -> dict:
    """``edgenas verify --precision int8`` for one backend and space (a subprocess, as the user runs it)."""
    cmd = [sys.executable, "-m", "edgenas", "verify", "--device", "x86-64-host", "--backend", backend,
           "--precision", "int8", "--space", space, "--preset", a.preset, "--batch", "1", "--n", str(a.verify_n),
           "--seed", "0", "--recalibrate", "--plot", str(a.out / f"verify-int8-{backend}-{space}-b1.png"), "--json"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode != 0:
        return {"backend": backend, "space": space, "error": (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    r = json.loads(p.stdout)
    # per-network truth and prediction, for reading why a row falls short (as verify_predictor.py keeps them)
    (a.out / f"verify-int8-{backend}-{space}-b1.networks.json").write_text(json.dumps(r["networks"], indent=1) + "\n")
    return {"backend": backend, "space": space, "n": r["n"], "within_5pct": r["within_5pct"],
            "within_10pct": r["within_10pct"], "mape": r["mape"], "kendall_tau": r["kendall_tau"],
            "truth": r["truth"], "protocol_over_plain": r.get("protocol_over_plain"),
            "raw_op_sum_within_10pct": r["raw_op_sum"]["within_10pct"], "calibration": r["calibration"].get("model"), "wall_s": round(time.perf_counter() - t),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg()[0]}


def run(a) -> dict:
    from edgenas.export.int8_checks import calibration_images
    from edgenas.export.parity import parity_inputs
    from edgenas.latency.verify import sample_archs
    from edgenas.search.data import load_data
    from edgenas.spaces import create_space

    started = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": os.getloadavg()}
    previous = _previous(a.out)
    # verify rows of an earlier run are kept, but those this run redoes
    rows, trained, verifies = [], [], [v for v in previous.get("verify", [])
                                        if not (a.verify and v["backend"] in a.backends and v["space"] in a.spaces)]
    data = load_data("fashion-mnist", weights_size=a.train_images, arch_size=256, test_size=256, seed=a.seed)
    setups = {}
    for name in a.spaces:
        space = create_space(name, a.preset)
        setups[name] = (space, sample_archs(space, a.n, a.seed), calibration_images(None, space.input_shape, a.batch),
                        parity_inputs(space.input_shape, a.images, a.batch),
                        parity_inputs(space.input_shape, a.test_images, a.batch))
    for i in range(a.n):  # network by network over every backend and space, so a stopped run has them all
        for space, archs, calibration, inputs, test in setups.values():
            for backend in a.backends:
                rows.append(_guard(one, backend, space, archs[i], i, inputs, calibration, a))
                _log(rows[-1])
                if i < a.trained:
                    trained.append(_guard(one_trained, backend, space, archs[i], i, data, test, calibration, a))
                    _log(trained[-1])
                if not a.prepare_only:
                    _write(a, started, rows, trained, verifies)
    if a.prepare_only:
        return {"prepared": len(rows) + len(trained)}
    if a.verify:
        for name in a.spaces:
            for backend in a.backends:
                verifies.append(verify_int8(backend, name, a))
                _log(verifies[-1])
                _write(a, started, rows, trained, verifies)
    return _write(a, started, rows, trained, verifies)


def _guard(fn, backend, space, arch, i, *args):
    try:
        return fn(backend, space, arch, i, *args)
    except Exception as e:  # noqa: BLE001 - a failed network is a result here
        return {"backend": backend, "space": space.name, "i": i, "error": f"{type(e).__name__}: {e}"[:300]}


def _log(r: dict) -> None:
    keep = ("backend", "space", "i", "latency", "size_ratio", "top1_agreement", "rel_rms_error",
            "accuracy_change_points", "within_10pct", "mape", "prepared", "error")
    print(json.dumps({k: r[k] for k in keep if k in r}), flush=True)


def _previous(out: Path) -> dict:
    try:
        return json.loads((out / "int8.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write(a, started, rows, trained, verifies) -> dict:
    from edgenas.devices import machine_facts

    doc = {"benchmark": "int8", **started, "load_after": os.getloadavg(),
           "machine": f"x86-64-host ({machine_facts().get('cpu_model')}, {os.cpu_count()} vCPU)",
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
           "versions": _versions(), "summary": summarise(rows, trained), "verify": verifies,
           "rows": rows, "trained": trained}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "int8.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (a.out / "int8.md").write_text(markdown(doc))
    return doc


def _versions() -> dict:
    from edgenas.profiling.base import package_version

    return {p: package_version(p) for p in ("onnxruntime", "ai-edge-litert", "ai-edge-quantizer", "litert-torch", "torch")}


def markdown(doc: dict) -> str:
    st, summ = doc["settings"], doc["summary"]
    load = f"load average {doc['load_before'][0]:.1f} at the start, {doc['load_after'][0]:.1f} at the end"
    lines = [f"# int8 against fp32: the same random networks ({doc['date']}, {doc['machine']})", "",
             f"{st['n']} random networks per space ({st['preset']} presets, seed {st['seed']}), batch {st['batch']}, "
             f"{st['threads']} thread(s); {load}"
             + (" (**a loaded machine: latencies are indicative, ratios less so as both sides of a pair share "
                "the load**)." if doc["load_before"][0] > 1.5 or doc["load_after"][0] > 1.5 else "."),
             "Export: `Backend.ship` at fp32 and at int8 (as `edgenas export --precision int8`), int8 calibrated on "
             "256 Fashion-MNIST training images. Latency: each pair timed plainly in one process, alternating "
             f"blocks ({st['blocks']} blocks of {st['runs']} runs each, after 30 warm-up runs); ratio = int8 / fp32, "
             "the median of per-block ratios. Agreement and output error: the int8 file against the fp32 PyTorch "
             f"network on {st['images']} real Fashion-MNIST test images (untrained networks with trained-like "
             f"BatchNorm, so no accuracy). Accuracy change: the first {st['trained']} networks per space trained "
             f"{st['train_epochs']} epoch(s) on {st['train_images']} training images, int8 file against the fp32 "
             f"network on {st['test_images']} test images.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".", "",
             "| | " + " | ".join(summ) + " |", "|---|" + "---|" * len(summ)]
    keys = ["networks", "errors", "median_latency_ratio", "latency_ratio_p10", "latency_ratio_p90", "int8_faster",
            "median_fp32_ms", "median_int8_ms", "median_size_ratio", "mean_top1_agreement", "min_top1_agreement",
            "median_rel_rms_error", "trained_networks", "mean_fp32_accuracy", "mean_accuracy_change_points",
            "worst_accuracy_change_points", "trained_min_top1_agreement"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(str(v.get(k, "-")) for v in summ.values()) + " |")
    lines += ["", "## Predictor at int8 (`edgenas verify --precision int8`, batch 1, held-out networks)", ""]
    if doc["verify"]:
        lines += ["| backend | space | n | within ±5% | within ±10% | MAPE | Kendall τ | truth | calibration | when (load) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for v in doc["verify"]:
            if "error" in v:
                lines.append(f"| {v['backend']} | {v['space']} | failed: {v['error']} | | | | | | | |")
                continue
            lines.append(f"| {v['backend']} | {v['space']} | {v['n']} | {100 * v['within_5pct']:.0f}% | "
                         f"{100 * v['within_10pct']:.0f}% | {100 * v['mape']:.1f}% | {v['kendall_tau']:.3f} | "
                         f"{v['truth']} | {v['calibration']} | {v['date']} ({v['load']:.1f}) |")
    else:
        lines.append("Not run here yet (`python benchmarks/int8.py --verify`).")
    errors = [r for r in doc["rows"] + doc["trained"] if "error" in r]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {r['backend']} {r['space']} #{r['i']}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="onnxruntime,tflite")
    ap.add_argument("--spaces", default="darts,proxyless")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--n", type=int, default=20, help="random networks per space")
    ap.add_argument("--trained", type=int, default=4, help="of those, how many to train briefly (accuracy change)")
    ap.add_argument("--train-epochs", type=float, default=1.0)
    ap.add_argument("--train-images", type=int, default=10_000)
    ap.add_argument("--images", type=int, default=1000, help="test images for agreement of the untrained networks")
    ap.add_argument("--test-images", type=int, default=10_000, help="test images for the trained networks' accuracy")
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true", help="also run edgenas verify --precision int8 per backend/space")
    ap.add_argument("--verify-n", type=int, default=50)
    ap.add_argument("--prepare-only", action="store_true", help="only ship (and train) into the cache, time nothing: "
                    "convert on a busy host, then run without it on a quiet one; writes no results")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 networks, 1 tiny training, short timing")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    a.backends, a.spaces = a.backends.split(","), a.spaces.split(",")
    if a.quick:
        a.n, a.trained, a.train_epochs, a.train_images = 2, 1, 0.2, 640
        a.images, a.test_images, a.blocks, a.runs, a.verify_n = 64, 256, 4, 20, 5
    return a


def main(argv=None) -> None:
    from edgenas.process import prefer_passive_openmp  # before torch, as the edgenas command does

    prefer_passive_openmp()
    run(parse(argv))


if __name__ == "__main__":
    main()
