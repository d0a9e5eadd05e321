"""Steps of benchmarks/gpu_check.sh (issue 18, part 4): CUDA tables, their verification, search-step speed.

Each subcommand is one step, run in its own process under its own ``timeout`` by the shell script,
and writes ``<work>/step_<name>.json`` (status, numbers, notes); ``summarize`` merges whatever steps
finished into ``$OUT/gpu_check.{json,md}``. Imports are kept to what a step needs: pandas (tables),
PyYAML (device profiles) may be missing on a bare GPU image, so
- without PyYAML a stub module stands in and the device profile is built from a dict here;
- without pandas, tables are measured with the same protocol into a plain CSV (``<backend>.raw.csv``),
  verification uses a pandas-free op-sum predictor with a scale+offset fit, and the search-step
  timing a pandas-free predictor read from the repository's x86-64-host onnxruntime table.

Without CUDA (or with GPU_CHECK_DRY=1) every step runs on ``torch-cpu`` with tiny settings: a dry
run of the plumbing, not a measurement.

    python benchmarks/gpu_check.py {env,tables,verify,throughput,summarize} --work DIR --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STEPS = ("env", "tables", "verify", "throughput")
GPU_PROFILE = {  # device_profiles/nvidia-h200.yaml, for when PyYAML is missing
    "name": "nvidia-h200", "description": "NVIDIA H200 (141 GB HBM3e server GPU), x86-64 host", "kind": "gpu-server",
    "arch": "x86_64", "os": "Linux, CUDA 12/13", "reach": ["local", "ssh"],
    "backends": {"cuda": {"threads": 1, "precisions": ["fp32", "fp16"]},
                 "cuda-eager": {"threads": 1, "precisions": ["fp32", "fp16"]}},
    "detect": {"machine": "x86_64", "gpu_name": "H200"}}
HOST_PROFILE = {"name": "x86-64-host", "description": "x86-64 CPU host", "kind": "host", "arch": "x86_64",
                "os": "Linux", "reach": ["local"], "backends": {"torch-cpu": {"threads": 1}},
                "detect": {"machine": "x86_64"}}


# ---- mode and settings ------------------------------------------------------------------------

def has_module(name: str) -> bool:
    try:
        __import__(name)
        return True
    except Exception:
        return False


def cuda_ok() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def is_dry() -> bool:
    return os.environ.get("GPU_CHECK_DRY") == "1" or not cuda_ok()


def plan(dry: bool) -> dict:
    """Everything the steps measure; the GPU settings are 'quick-ish', the dry ones tiny."""
    if dry:
        return {"backends": ["torch-cpu"], "batches": [1], "spaces": ["darts"], "verify_space": "darts",
                "calibration_n": 4, "verify_n": 6,
                "protocol": dict(warmup_calls=1, warmup_s=0.0, block_ms=1.0, max_block_calls=20, min_rounds=3,
                                 max_rounds=3, target_rel_ci=0.05, time_cap_s=10.0),
                "throughput": {"pairs": [["darts", "darts"]], "steps": 2, "batch_size": 8}}
    return {"backends": ["cuda", "cuda-eager"], "batches": [1, 8], "spaces": ["darts", "proxyless"],
            "verify_space": "darts", "calibration_n": 10, "verify_n": 20,
            "protocol": dict(warmup_calls=5, warmup_s=0.05, block_ms=5.0, max_block_calls=200, min_rounds=3,
                             max_rounds=10, target_rel_ci=0.03, time_cap_s=20.0),
            "throughput": {"pairs": [["darts", "darts"], ["proxyless", "proxyless"], ["darts", "proxyless"],
                                     ["proxyless", "darts"]], "steps": 10, "batch_size": 64}}


def settings(p: dict):
    from edgenas.profiling.protocol import ProtocolSettings

    return ProtocolSettings(**p["protocol"])


# ---- imports that may be missing ---------------------------------------------------------------

def ensure_yaml() -> bool:
    """True if the real PyYAML is importable; else install a stub so edgenas.devices imports."""
    if has_module("yaml"):
        return True
    stub = types.ModuleType("yaml")

    class YAMLError(Exception):
        pass

    def safe_load(_text):
        raise YAMLError("PyYAML is not installed (gpu_check stub)")

    class SafeLoader:  # edgenas.schemas subclasses it at import; never used to load here
        pass

    stub.YAMLError, stub.safe_load, stub.SafeLoader = YAMLError, safe_load, SafeLoader
    sys.modules["yaml"] = stub
    return False


def device_profile(dry: bool):
    """(profile, notes): the local profile that matches this machine, else the H200 one flagged."""
    real_yaml = ensure_yaml()
    from edgenas.devices import parse_profile

    notes = []
    if real_yaml:
        from edgenas.devices import get_profile, host_profile_name

        name = host_profile_name()
        want = "x86-64-host" if dry else "nvidia-h200"
        if name is None or (dry and name != want) or (not dry and not name.startswith("nvidia-")):
            notes.append(f"no local device profile matches this machine (host_profile_name: {name}); "
                         f"using {want} anyway: the table's device name may be wrong")
            name = want
        prof = get_profile(name)
    else:
        d = HOST_PROFILE if dry else GPU_PROFILE
        prof = parse_profile(d, ROOT / "device_profiles" / f"{d['name']}.yaml")
        notes.append("PyYAML missing: device profile built from the dict in benchmarks/gpu_check.py")
    ok, why = prof.matches_this_machine()
    if not ok:
        notes.append(f"profile {prof.name} does not match this machine: {why}")
    return prof, notes


# ---- step plumbing -----------------------------------------------------------------------------

def write_step(work: Path, name: str, doc: dict) -> None:
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f".step_{name}.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(work / f"step_{name}.json")


def run_step(name: str, fn, args) -> int:
    """Run one step; its result (or its failure) is written either way, partial results included."""
    doc = {"step": name, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "notes": []}
    start = time.perf_counter()
    write_step(args.work, name, doc)
    rc = 0
    try:
        fn(args, doc, lambda: write_step(args.work, name, doc))
        doc["status"] = "ok" if not doc.get("failures") else "partial"
    except Exception as e:  # recorded, reported, and the script goes on
        doc["status"] = "failed"
        doc["error"] = f"{type(e).__name__}: {e}"
        doc["traceback"] = traceback.format_exc()[-3000:]
        print(doc["traceback"], file=sys.stderr)
        rc = 1
    doc["wall_s"] = round(time.perf_counter() - start, 1)
    write_step(args.work, name, doc)
    print(f"[gpu_check] step {name}: {doc['status']} in {doc['wall_s']} s"
          + (f" ({doc['error']})" if doc.get("error") else ""), flush=True)
    return rc


# ---- step: env ---------------------------------------------------------------------------------

def step_env(args, doc, save):
    import importlib.metadata
    import importlib.util

    mods = {}
    doc["modules"] = mods
    heavy = {"matplotlib": "matplotlib", "scipy": "scipy", "pyarrow": "pyarrow"}  # found, not imported (slow)
    for m in ("torch", "numpy", "pandas", "typer", "rich", "yaml", "onnx", "onnxruntime", "safetensors",
              "matplotlib", "pyarrow", "scipy"):
        try:
            if m in heavy:
                if importlib.util.find_spec(m) is None:
                    raise ImportError(f"no module named {m}")
                mods[m] = importlib.metadata.version(heavy[m]) + " (found, not imported)"
            else:
                mod = __import__(m)
                mods[m] = getattr(mod, "__version__", "present")
        except Exception as e:
            mods[m] = f"MISSING ({type(e).__name__}: {str(e)[:80]})"
        print(f"  {m:12s} {mods[m]}", flush=True)
        save()
    doc["python"] = sys.version.split()[0]
    doc["platform"] = platform.platform()
    doc["cpu_count"] = os.cpu_count()
    try:
        import torch

        doc["torch_cuda"] = torch.version.cuda
        doc["cuda_available"] = bool(torch.cuda.is_available())
        if doc["cuda_available"]:
            doc["gpu"] = torch.cuda.get_device_name(0)
            free, total = torch.cuda.mem_get_info()
            doc["gpu_memory_gb"] = round(total / 2 ** 30, 1)
    except Exception as e:
        doc["cuda_available"] = False
        doc["notes"].append(f"torch/cuda check failed: {e}")
    edg = {}
    for m in ("edgenas.latency.table", "edgenas.devices", "edgenas.profiling.runner", "edgenas.latency.verify",
              "edgenas.search.base", "edgenas.cli.main"):
        try:
            __import__(m)
            edg[m] = "ok"
        except Exception as e:
            edg[m] = f"FAILS ({type(e).__name__}: {str(e)[:80]})"
        print(f"  {m:28s} {edg[m]}", flush=True)
    doc["edgenas_imports"] = edg
    doc["dry"] = is_dry()
    print(f"  python {doc['python']}, cuda_available={doc.get('cuda_available')}, gpu={doc.get('gpu')}, "
          f"dry={doc['dry']}", flush=True)


# ---- step: tables ------------------------------------------------------------------------------

def step_tables(args, doc, save):
    dry = is_dry()
    p = plan(dry)
    prof, notes = device_profile(dry)
    doc.update(dry=dry, device=prof.name, plan=p, units=[], failures=[])
    doc["notes"] += notes
    from edgenas.profiling.base import create_backend

    st = settings(p)
    lib = has_module("pandas")
    if not lib:
        doc["notes"].append("pandas missing: measured into plain CSVs (<backend>.raw.csv), not edgenas tables")
    deadline = time.perf_counter() + args.budget
    store_root = args.work / "tables"
    for batch in p["batches"]:
        for bname in p["backends"]:
            for space in p["spaces"]:
                unit = {"backend": bname, "batch": batch, "space": space}
                if time.perf_counter() > deadline:
                    unit["status"] = "skipped (step budget spent)"
                    doc["units"].append(unit)
                    continue
                t0 = time.perf_counter()
                try:
                    be = create_backend(bname, threads=prof.threads_for(bname))
                    unit["runtime_version"] = be.runtime_version()
                    if lib:
                        unit.update(_profile_lib(prof, be, space, batch, st, store_root))
                    else:
                        unit.update(_profile_raw(prof, be, space, batch, st, store_root))
                    unit["status"] = "ok"
                except Exception as e:
                    unit["status"] = f"failed: {type(e).__name__}: {str(e)[:300]}"
                    doc["failures"].append(unit)
                unit["wall_s"] = round(time.perf_counter() - t0, 1)
                doc["units"].append(unit)
                print(f"  table {prof.name}/{bname} b{batch} {space}: {unit['status']} "
                      f"({unit.get('entries', 0)} entries, {unit['wall_s']} s)", flush=True)
                save()
    doc["store"] = str(store_root)
    doc["files"] = sorted(str(f.relative_to(store_root)) for f in store_root.glob("*/*") if f.is_file())


def _profile_lib(prof, be, space, batch, st, store_root) -> dict:
    from edgenas.latency.store import TableStore
    from edgenas.latency.table import TableSelection
    from edgenas.profiling.runner import profile_ops, space_specs

    store = TableStore(store_root)
    specs = space_specs([space], "small")
    r = profile_ops(prof, be, specs, [batch], store, resume=True, settings=st,
                    command=f"benchmarks/gpu_check.py tables ({space} small, batch {batch})")
    sel = TableSelection(prof.name, be.name, be.precision, be.threads, batch, be.runtime_version())
    rows = store.load(prof.name, be.name).for_selection(sel).df
    rows = rows[rows["op_key"].isin({s.key for s in specs})]
    return {"entries": int(r.measured), "existing": int(r.skipped_existing), "measure_s": round(r.elapsed_s, 1),
            "drift": [round(d, 4) for d in r.drift], **_ci_summary(rows["rel_ci"].tolist(),
                                                                    rows["median_ms"].tolist())}


def _ci_summary(rel_ci, median_ms) -> dict:
    ci = [float(x) for x in rel_ci if x == x]
    med = sorted(float(x) for x in median_ms if x == x)
    return {"rows": len(med), "ci_under_10pct": (sum(c <= 0.10 for c in ci) / len(ci)) if ci else float("nan"),
            "median_ms_min_med_max": [med[0], med[len(med) // 2], med[-1]] if med else []}


def _reference():
    from edgenas.ops.spec import OpSpec

    return OpSpec.make("sep_conv_3x3", (14, 14, 32), (14, 14, 32), stride=1)  # = runner.REFERENCE_OP


def _specs(space, preset="small"):
    from edgenas.ops.registry import is_zero_cost
    from edgenas.spaces import create_space

    return [s for s in dict.fromkeys(create_space(space, preset).all_op_specs()) if not is_zero_cost(s)]


def _prep(be, module, shape):
    return be.prepare(module.eval(), shape)  # no artifact cache: cuda / torch-cpu have no artifacts


def _profile_raw(prof, be, space, batch, st, store_root) -> dict:
    """pandas-free: the same protocol (interleaved, paired with the reference op), into a plain CSV."""
    from edgenas.ops.registry import build_op
    from edgenas.profiling.protocol import measure

    specs = _specs(space)
    path = store_root / prof.name / f"{be.name}.raw.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["device", "backend", "runtime_version", "precision", "threads", "batch", "op_key", "median_ms",
              "p10_ms", "p90_ms", "rel_ci", "rounds", "stable", "ref_ms", "ref_ratio"]
    new = not path.exists()
    t0, drift, rel, med = time.perf_counter(), [], [], []
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fields)
        if new:
            w.writeheader()
        for i in range(0, len(specs), 12):
            chunk = specs[i:i + 12]
            timers = {s.key: _prep(be, build_op(s), (batch, s.in_shape[2], s.in_shape[0], s.in_shape[1]))
                      for s in chunk}
            r = _reference()
            ref = _prep(be, build_op(r), (batch, r.in_shape[2], r.in_shape[0], r.in_shape[1]))
            rep = measure(timers, st, reference=ref)
            drift.append(round(rep.drift, 4))
            for s in chunk:
                x = rep.stats[s.key]
                w.writerow({"device": prof.name, "backend": be.name, "runtime_version": be.runtime_version(),
                            "precision": be.precision, "threads": be.threads, "batch": batch, "op_key": s.key,
                            "median_ms": x.median_ms, "p10_ms": x.p10_ms, "p90_ms": x.p90_ms, "rel_ci": x.rel_ci,
                            "rounds": x.rounds, "stable": x.stable, "ref_ms": x.ref_ms, "ref_ratio": x.ref_ratio})
                rel.append(x.rel_ci)
                med.append(x.median_ms)
            f.flush()
    return {"entries": len(specs), "measure_s": round(time.perf_counter() - t0, 1), "drift": drift,
            "raw_csv": str(path), **_ci_summary(rel, med)}


# ---- step: verify ------------------------------------------------------------------------------

def step_verify(args, doc, save):
    dry = is_dry()
    p = plan(dry)
    prof, notes = device_profile(dry)
    doc.update(dry=dry, device=prof.name, space=p["verify_space"], preset="small", batch=1,
               calibration_n=p["calibration_n"], verify_n=p["verify_n"], protocol=p["protocol"])
    doc["notes"] += notes
    from edgenas.profiling.base import create_backend
    from edgenas.spaces import create_space

    space = create_space(p["verify_space"], "small")
    lib = has_module("pandas")
    store_root = args.work / "tables"
    if not lib:
        doc["notes"].append("pandas missing: pandas-free op-sum predictor, scale+offset fit on the calibration nets")
    st = settings(p)
    tried = []
    for bname in p["backends"]:  # cuda first; cuda-eager if cuda has no table or cannot run the networks
        if not (store_root / prof.name / (f"{bname}.csv" if lib else f"{bname}.raw.csv")).exists():
            tried.append(f"{bname}: no table from the tables step")
            continue
        try:
            be = create_backend(bname, threads=prof.threads_for(bname))
            doc["backend"], doc["runtime_version"] = bname, be.runtime_version()
            doc.update(_verify_lib(prof, be, space, st, store_root, p) if lib else
                       _verify_raw(prof, be, space, st, store_root, p))
            break
        except Exception as e:
            tried.append(f"{bname}: {type(e).__name__}: {str(e)[:300]}")
            print(f"  verify on {bname} failed ({tried[-1]}); trying the next backend", flush=True)
    doc["notes"] += [f"verify: {t}" for t in tried]
    if "metrics" not in doc:
        raise RuntimeError(f"no backend could be verified under {store_root}/{prof.name}: {'; '.join(tried)}")
    m = doc["metrics"]
    print(f"  verify {bname} {space.name} small b1: {100 * m['within_10pct']:.0f}% of {m['n']} within ±10%, "
          f"MAPE {100 * m['mape']:.1f}%, tau {m['kendall_tau']:.2f}", flush=True)


def _verify_lib(prof, be, space, st, store_root, p) -> dict:
    from edgenas.latency.predictor import LatencyPredictor
    from edgenas.latency.store import TableStore
    from edgenas.latency.verify import calibrate, verify

    store = TableStore(store_root)
    pred = LatencyPredictor.load(prof.name, be.name, space, 1, threads=be.threads, store=store, auto_anchor=False)
    t0 = time.perf_counter()
    cal, _, cal_nets = calibrate(be, space, pred, store, n=p["calibration_n"], seed=0, settings=st)
    t1 = time.perf_counter()
    rep = verify(be, space, pred, n=p["verify_n"], seed=0, settings=st)
    return {"calibration": rep.calibration, "metrics": rep.metrics, "raw_op_sum": rep.raw_sum_metrics,
            "networks": rep.networks, "calibration_networks": cal_nets, "calibrate_s": round(t1 - t0, 1),
            "verify_s": round(time.perf_counter() - t1, 1), "path": "library (edgenas.latency.verify)"}


def _verify_raw(prof, be, space, st, store_root, p) -> dict:
    import numpy as np

    from edgenas.ops.registry import build_op, is_zero_cost
    from edgenas.profiling.protocol import measure

    rows = [r for r in csv.DictReader((store_root / prof.name / f"{be.name}.raw.csv").open())
            if int(r["batch"]) == 1]
    anchor = float(np.median([float(r["ref_ms"]) for r in rows]))
    ms = {r["op_key"]: float(r["ref_ratio"]) * anchor for r in rows}

    def feats(arch):
        specs = space.op_specs(arch)
        return sum(0.0 if is_zero_cost(s) else ms[s.key] for s in specs), sum(not is_zero_cost(s) for s in specs)

    rng, seen, archs = random.Random(0), set(), []
    while len(archs) < p["calibration_n"] + p["verify_n"]:
        a = space.sample(rng)
        k = json.dumps(space.arch_to_json(a), sort_keys=True)
        if k not in seen:
            seen.add(k)
            archs.append(a)
    r = _reference()
    ref = _prep(be, build_op(r), (1, r.in_shape[2], r.in_shape[0], r.in_shape[1]))
    c, h, w = space.input_shape
    measured = []
    for i in range(0, len(archs), 10):
        timers = {str(j): _prep(be, space.build(a), (1, c, h, w)) for j, a in enumerate(archs[i:i + 10], i)}
        rep = measure(timers, st, reference=ref)
        measured += [rep.stats[str(j)].ref_ratio * anchor for j in range(i, i + len(timers))]
    f = [feats(a) for a in archs]
    s = np.array([x[0] for x in f])
    y = np.array(measured)
    n = p["calibration_n"]
    x = np.column_stack([s, np.ones_like(s)])
    wt = 1 / y[:n]
    coef, *_ = np.linalg.lstsq(x[:n] * wt[:, None], y[:n] * wt, rcond=None)
    pred = x[n:] @ coef
    return {"calibration": {"model": "scale+offset (pandas-free)", "a": float(coef[0]), "b": float(coef[1]),
                            "n_networks": n, "anchor_ms": anchor},
            "metrics": _score(pred, y[n:]), "raw_op_sum": _score(s[n:], y[n:]),
            "networks": [{"predicted_ms": float(a), "sum_ms": float(b), "measured_ms": float(m)}
                         for a, b, m in zip(pred, s[n:], y[n:])], "path": "pandas-free fallback"}


def _score(pred, meas) -> dict:
    import numpy as np

    p, m = np.asarray(pred, float), np.asarray(meas, float)
    rel = (p - m) / m
    n = len(m)
    conc = sum(np.sign(p[i] - p[j]) * np.sign(m[i] - m[j]) for i in range(n) for j in range(i + 1, n))
    return {"n": n, "within_5pct": float((abs(rel) <= 0.05).mean()), "within_10pct": float((abs(rel) <= 0.10).mean()),
            "mape": float(abs(rel).mean()), "bias": float(rel.mean()),
            "kendall_tau": float(conc / (n * (n - 1) / 2)) if n > 1 else float("nan"),
            "rmse_ms": float(np.sqrt(((p - m) ** 2).mean())), "max_abs_rel_error": float(abs(rel).max())}


# ---- step: throughput --------------------------------------------------------------------------

class CsvPredictor:
    """pandas-free stand-in for LatencyPredictor in the search-step timing (op_ms / features / calibration)."""

    calibration_scale = 1.0  # table values as the CSV holds them: no anchor moved since a fit

    @classmethod
    def from_csv(cls, path: Path, batch: int = 1) -> "CsvPredictor":
        import statistics

        rows = [r for r in csv.DictReader(path.open()) if r.get("batch") == str(batch)
                and r.get("threads") in ("1", "") and r.get("precision") in ("fp32", "")]
        refs = [float(r["ref_ms"]) for r in rows if r.get("ref_ms") not in ("", "nan", None)]
        anchor = statistics.median(refs) if refs else float("nan")
        ms = {}
        for r in rows:
            v = r.get("ref_ratio") or ""
            ms[r["op_key"]] = float(v) * anchor if v not in ("", "nan") and anchor == anchor else float(r["median_ms"])
        obj = cls()
        obj._ms = ms
        # uncalibrated: Calibration.apply's identity (ExpectedLatency calls apply, as predict does)
        obj.calibration = types.SimpleNamespace(a=1.0, b=0.0, c=0.0, calibrated=False,
                                                apply=lambda s, k, scale=1.0: s, weight=lambda spec: 1.0)
        return obj

    def op_ms(self, specs):
        from edgenas.ops.registry import is_zero_cost

        return {s.key: 0.0 if is_zero_cost(s) else self._ms[s.key] for s in specs}

    def features(self, specs):
        from edgenas.ops.registry import is_zero_cost

        ms = self.op_ms(specs)
        return sum(ms[s.key] for s in specs), sum(1 for s in specs if not is_zero_cost(s))


def step_throughput(args, doc, save):
    dry = is_dry()
    p = plan(dry)["throughput"]
    doc.update(dry=dry, steps=p["steps"], batch_size=p["batch_size"], rows=[], failures=[])
    doc["notes"].append("images/s over timed steps after one warm-up step; naive = every candidate op computed "
                        "(edgenas.spaces.mixed.naive_mode); each (strategy, impl) in its own process")
    deadline = time.perf_counter() + args.budget
    for space, strategy in p["pairs"]:
        row = {"space": space, "strategy": strategy}
        for impl in ("naive", "edgenas"):
            left = deadline - time.perf_counter()
            if left < 15:
                row[impl] = {"error": "skipped (step budget spent)"}
                continue
            cmd = [sys.executable, __file__, "tp-worker", "--space", space, "--strategy", strategy, "--impl", impl,
                   "--steps", str(p["steps"]), "--batch-size", str(p["batch_size"])]
            try:
                pr = subprocess.run(cmd, capture_output=True, text=True, timeout=min(left, args.worker_timeout))
                if pr.returncode != 0:
                    row[impl] = {"error": f"rc {pr.returncode}: {pr.stderr.strip()[-400:]}"}
                else:
                    row[impl] = json.loads(pr.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                row[impl] = {"error": f"timed out after {min(left, args.worker_timeout):.0f} s"}
            print(f"  {space}/{strategy} {impl}: {row[impl]}", flush=True)
        if "images_per_s" in row.get("naive", {}) and "images_per_s" in row.get("edgenas", {}):
            row["speedup"] = row["edgenas"]["images_per_s"] / row["naive"]["images_per_s"]
            mem = "cuda_peak_mb" if "cuda_peak_mb" in row["edgenas"] else "peak_rss_over_start_mb"
            row["memory_ratio"] = row["edgenas"][mem] / max(row["naive"][mem], 1e-9)
            row["memory_metric"] = mem
        else:
            doc["failures"].append(row)
        doc["rows"].append(row)
        save()


def tp_worker(args) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import search_throughput

    from edgenas.spaces import create_space

    table = ROOT / "latency_tables" / "x86-64-host" / "onnxruntime.csv"
    pred, which = None, "x86-64-host onnxruntime b1 table (LatencyPredictor)"
    if not has_module("pandas"):
        pred, which = CsvPredictor.from_csv(table), "x86-64-host onnxruntime b1 table (pandas-free CsvPredictor)"
    elif not has_module("yaml"):
        ensure_yaml()
        from edgenas.latency.predictor import LatencyPredictor

        pred = LatencyPredictor.load("x86-64-host", "onnxruntime", create_space(args.space, "small"), 1, threads=1, auto_anchor=False)
    r = search_throughput.worker(args.strategy, args.impl == "naive", args.space, args.steps, args.batch_size, {},
                                 predictor=pred)
    r["predictor"] = which
    print(json.dumps(r))


# ---- summarize ---------------------------------------------------------------------------------

def load_steps(work: Path) -> dict:
    out = {}
    for name in STEPS:
        f = work / f"step_{name}.json"
        if f.exists():
            try:
                out[name] = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                out[name] = {"status": f"unreadable ({e})"}
    return out


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.0f}%"


def _f(x, fmt=".1f") -> str:
    try:
        return format(float(x), fmt)
    except (TypeError, ValueError):
        return "n/a"


def render_markdown(steps: dict, shell: dict | None = None) -> str:
    """The self-describing summary: works on any subset of steps (failed or missing ones say so)."""
    shell = shell or {}
    env = steps.get("env", {})
    dry = any(s.get("dry") for s in steps.values())
    gpu = env.get("gpu") or ("none (CPU dry run)" if dry else "unknown")
    L = [f"# edgenas GPU check ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", ""]
    if dry:
        L += ["**DRY RUN on CPU (torch-cpu, tiny settings): tests the plumbing only; no number here is a GPU "
              "measurement.**", ""]
    L += [f"- GPU: {gpu}" + (f" ({env['gpu_memory_gb']} GB)" if env.get("gpu_memory_gb") else ""),
          f"- torch {env.get('modules', {}).get('torch', '?')} (CUDA {env.get('torch_cuda')}), python "
          f"{env.get('python', '?')}, {env.get('cpu_count', '?')} CPUs",
          f"- produced by `PYTHONPATH=. bash benchmarks/gpu_check.sh` (issue 18, part 4); full log: gpu_check.log,"
          " all numbers: gpu_check.json", ""]
    missing = [m for m, v in env.get("modules", {}).items() if str(v).startswith("MISSING")]
    if env:
        L.append(f"Missing Python modules: {', '.join(missing) if missing else 'none'}.")
        bad = [m for m, v in env.get("edgenas_imports", {}).items() if v != "ok"]
        if bad:
            L.append(f"edgenas modules that fail to import: {', '.join(bad)}.")
        L.append("")
    L += ["## Steps", "", "| step | status | wall s | timeout s |", "|---|---|---|---|"]
    for name in STEPS:
        s = steps.get(name)
        rc = shell.get(name, {}).get("rc")
        status = s.get("status", "?") if s else "did not run"
        if rc in (124, 137):
            status += " (killed by timeout)"
        elif rc not in (None, 0) and s and s.get("status") == "running":
            status = f"died (rc {rc})"
        L.append(f"| {name} | {status} | {_f(s.get('wall_s') if s else None, '.0f')} | "
                 f"{shell.get(name, {}).get('timeout', '')} |")
    L.append("")
    for section in (_md_tables, _md_verify, _md_throughput):
        try:
            L += section(steps)
        except Exception as e:  # a malformed step result must not cost the rest of the summary
            L += [f"({section.__name__}: could not render: {type(e).__name__}: {e})", ""]
    notes = [f"{k}: {n}" for k, s in steps.items() for n in s.get("notes", [])]
    errors = [f"{k}: {s['error']}" for k, s in steps.items() if s.get("error")]
    if notes or errors:
        L += ["## Notes and errors", ""] + [f"- {x}" for x in errors + notes] + [""]
    return "\n".join(L)


def _md_tables(steps) -> list:
    L = []
    t = steps.get("tables")
    if t:
        pr = (t.get("plan") or {}).get("protocol", {})
        L += ["## 1. Latency tables (small presets)", "",
              f"Device profile `{t.get('device')}`; protocol (quick-ish, not the default): "
              f"{', '.join(f'{k}={v}' for k, v in pr.items())}. Values: each op's median latency in ms (CUDA events "
              "per call for cuda/cuda-eager); 'CI<10%' = share of entries whose 95% CI half-width of the median "
              "ratio to the paired reference op is under 10%. `cuda` replays a CUDA graph per op, `cuda-eager` "
              "launches from Python.", "",
              "| backend | batch | space | status | entries | CI<10% | min / median / max op ms | wall s |",
              "|---|---|---|---|---|---|---|---|"]
        for u in t.get("units", []):
            mm = u.get("median_ms_min_med_max") or []
            L.append(f"| {u.get('backend')} | {u.get('batch')} | {u.get('space')} | {str(u.get('status', '?'))[:80]} | "
                     f"{u.get('rows', u.get('entries', ''))} | {_pct(u.get('ci_under_10pct'))} | "
                     f"{' / '.join(_f(x, '.4f') for x in mm) or 'n/a'} | {_f(u.get('wall_s'), '.0f')} |")
        L.append("")
    return L


def _md_verify(steps) -> list:
    L = []
    v = steps.get("verify")
    if v:
        L += ["## 2. Predictor verification", ""]
        m = v.get("metrics")
        if m:
            cal = v.get("calibration") or {}
            raw = v.get("raw_op_sum") or {}
            L += [f"{v.get('space')} small, batch 1, `{v.get('backend')}` ({v.get('runtime_version')}): calibrated "
                  f"on {v.get('calibration_n')} random networks, scored on {m.get('n')} other (held-out) random "
                  f"networks; predicted vs measured whole-network latency. Path: {v.get('path')}.", "",
                  "| within ±10% | within ±5% | MAPE | Kendall τ | bias | plain op sum: within ±10% / bias | "
                  "calibration |", "|---|---|---|---|---|---|---|",
                  f"| {_pct(m.get('within_10pct'))} | {_pct(m.get('within_5pct'))} | {_f(100 * m['mape'])}% | "
                  f"{_f(m.get('kendall_tau'), '.2f')} | {_f(100 * m.get('bias', float('nan')), '+.1f')}% | "
                  f"{_pct(raw.get('within_10pct'))} / {_f(100 * raw.get('bias', float('nan')), '+.0f')}% | "
                  f"{cal.get('model')} a={_f(cal.get('a'), '.3f')} b={_f(cal.get('b'), '.4f')} |", ""]
        else:
            L += [f"No result: {v.get('status')} {v.get('error', '')}".strip(), ""]
    return L


def _md_throughput(steps) -> list:
    L = []
    tp = steps.get("throughput")
    if tp:
        L += ["## 3. Search-step throughput vs the naive supernet", "",
              f"batch {tp.get('batch_size')}, {tp.get('steps')} timed steps after a warm-up step, on "
              f"{'CPU' if tp.get('dry') else 'CUDA'}; naive = plain DARTS MixedOp (every candidate op computed); "
              "speed-up = edgenas img/s / naive img/s; memory = peak CUDA memory allocated (CPU: RSS growth).", "",
              "| space | strategy | naive img/s | edgenas img/s | speed-up | naive peak MB | edgenas peak MB | "
              "memory ratio |", "|---|---|---|---|---|---|---|---|"]
        for r in tp.get("rows", []):
            n, e = r.get("naive", {}), r.get("edgenas", {})
            mem = r.get("memory_metric", "cuda_peak_mb")
            if "speedup" in r:
                L.append(f"| {r['space']} | {r['strategy']} | {_f(n['images_per_s'])} | {_f(e['images_per_s'])} | "
                         f"{_f(r['speedup'], '.2f')}x | {_f(n.get(mem), '.0f')} | {_f(e.get(mem), '.0f')} | "
                         f"{_f(r['memory_ratio'], '.2f')} |")
            else:
                err = (n.get("error") or e.get("error") or "?").replace("|", "/").replace("\n", " ")[:120]
                L.append(f"| {r['space']} | {r['strategy']} | failed: {err} | | | | | |")
        L.append("")
    return L


def summarize(args) -> None:
    steps = load_steps(args.work)
    shell = {}
    f = args.work / "shell_steps.json"
    if f.exists():
        for line in f.read_text().splitlines():
            try:
                d = json.loads(line)
                shell[d["step"]] = d
            except (json.JSONDecodeError, KeyError):
                pass
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"format": "edgenas.gpu_check", "version": 1, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "shell": shell, "steps": steps}
    meta = {}
    for g in sorted((args.work / "tables").glob("*/*.json")):  # .meta.json / .calibration.json: kept in here
        try:
            meta[f"{g.parent.name}/{g.name}"] = json.loads(g.read_text())
        except (OSError, json.JSONDecodeError):
            pass
    doc["table_sidecars"] = meta
    (args.out / "gpu_check.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    try:
        md = render_markdown(steps, shell)
    except Exception as e:  # never leave the run without a summary
        md = (f"# edgenas GPU check\n\nThe summary could not be rendered ({type(e).__name__}: {e}); "
              f"the numbers are in gpu_check.json, the run in gpu_check.log.\n")
    (args.out / "gpu_check.md").write_text(md)
    for c in sorted((args.work / "tables").glob("*/*.csv")):  # the tables themselves
        dst = args.out / c.parent.name / c.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(c.read_bytes())


def extract(args) -> None:
    """Write the table sidecars kept in gpu_check.json back as files next to the fetched CSVs.

    python benchmarks/gpu_check.py extract --out FETCHED_DIR   (then copy FETCHED_DIR/<device>/ into
    latency_tables/<device>/ to commit the tables with their .meta.json and .calibration.json)
    """
    doc = json.loads((args.out / "gpu_check.json").read_text())
    for rel, content in doc.get("table_sidecars", {}).items():
        dst = args.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(json.dumps(content, indent=2) + "\n")
        print(dst)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=STEPS + ("summarize", "tp-worker", "extract"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/gpu_check_work"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu")
    ap.add_argument("--budget", type=float, default=150.0, help="seconds after which a step starts nothing new")
    ap.add_argument("--worker-timeout", type=float, default=60.0)
    ap.add_argument("--space", default="darts")
    ap.add_argument("--strategy", default="darts")
    ap.add_argument("--impl", default="edgenas")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    os.environ.setdefault("EDGENAS_CACHE", str(args.work / "cache"))
    if args.cmd == "summarize":
        summarize(args)
        return 0
    if args.cmd == "extract":
        extract(args)
        return 0
    if args.cmd == "tp-worker":
        tp_worker(args)
        return 0
    return run_step(args.cmd, {"env": step_env, "tables": step_tables, "verify": step_verify,
                               "throughput": step_throughput}[args.cmd], args)


if __name__ == "__main__":
    sys.exit(main())
