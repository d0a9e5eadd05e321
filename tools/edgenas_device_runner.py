#!/usr/bin/env python3
"""edgenas on-device runner: time the models of an edgenas bundle with edgenas's protocol.

Runs where edgenas cannot: a board or a phone (Termux) with Python 3.8+, numpy and one
runtime -- ai_edge_litert or tflite_runtime for a .tflite bundle, onnxruntime for an .onnx
bundle. No torch, no edgenas. It checks every model's SHA-256 against the bundle manifest,
measures with the same protocol as ``edgenas profile`` (warm-up by count and time, blocks of
~block_ms, interleaved rounds in random order, a reference block right before every entry
block, ``ref_ratio``, adaptive stop on the CI of that ratio), records what it can read about
the device (CPU, governor, temperatures, throttling) and writes ``results.json`` after every
chunk, so an interrupted run keeps what it finished (continue it with --resume).

  python3 edgenas_device_runner.py run BUNDLE.zip [--out results.json] [--resume]
  python3 edgenas_device_runner.py check BUNDLE.zip
  python3 edgenas_device_runner.py probe tflite|onnxruntime
  python3 edgenas_device_runner.py benchmark-model BUNDLE.zip LOG [--out results.json]

``benchmark-model`` turns the log of tools/android_benchmark.sh (TFLite's benchmark_model run
per model over adb) into the same results.json; it needs neither numpy nor a runtime.
Then, where edgenas is installed: ``edgenas tables import results.json``.

Exit codes: 0 ok, 2 bad bundle or arguments, 3 numpy or the runtime missing, 5 a model failed.
This file keeps to Python 3.8 syntax and standard library; the protocol below mirrors
``edgenas/profiling/protocol.py`` (a test checks that both give the same statistics).
"""

import argparse
import hashlib
import hmac
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

try:
    import numpy as np
except ImportError:  # reported by the commands that need it; benchmark-model does not
    np = None

RUNNER_VERSION = "1"
BUNDLE_FORMAT = "edgenas.bundle"
RESULTS_FORMAT = "edgenas.results"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class RunnerError(Exception):
    """One line for the user and an exit code."""

    def __init__(self, message, code=2):
        Exception.__init__(self, message)
        self.code = code


# ---- bundle and results integrity (same functions as edgenas/profiling/bundle.py) ---------------
def canonical(obj):
    """The bytes hashed for ids and checksums: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def manifest_id(manifest):
    body = dict((k, v) for k, v in manifest.items() if k != "bundle_id")
    return hashlib.sha256(canonical(body)).hexdigest()[:16]


def results_checksum(results, nonce):
    """HMAC-SHA256 of the results under the bundle's nonce: catches edits and mix-ups (not a signature)."""
    body = dict((k, v) for k, v in results.items() if k != "checksum")
    return hmac.new(nonce.encode(), canonical(body), hashlib.sha256).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_bundle(path):
    """(directory, manifest, temporary dir or None) of a bundle zip or an unpacked bundle directory."""
    tmp = None
    if os.path.isdir(path):
        root = path
    elif zipfile.is_zipfile(path):
        tmp = tempfile.mkdtemp(prefix="edgenas-bundle-")
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.startswith("/") or ".." in name.split("/"):
                    raise RunnerError("bundle %s holds an unsafe path %r; rebuild it with edgenas profile --bundle"
                                      % (path, name))
            z.extractall(tmp)
        root = tmp
    elif os.path.exists(path):
        raise RunnerError("%s is neither a bundle zip nor a bundle directory" % path)
    else:
        raise RunnerError("no such bundle: %s" % path)
    try:
        with open(os.path.join(root, MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise RunnerError("%s has no readable %s (%s); is it an edgenas bundle?" % (path, MANIFEST, e))
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise RunnerError("%s is not an edgenas bundle (manifest format %r)" % (path, manifest.get("format")))
    if manifest.get("version") != FORMAT_VERSION:
        raise RunnerError("bundle format version %r; this runner reads version %d (use the runner inside the bundle)"
                          % (manifest.get("version"), FORMAT_VERSION))
    if manifest_id(manifest) != manifest.get("bundle_id"):
        raise RunnerError("the manifest of %s was modified (its content does not hash to bundle_id %s); rebuild it"
                          % (path, manifest.get("bundle_id")))
    return root, manifest, tmp


def verified_model(root, item):
    """Path of a manifest item's model after checking its SHA-256 (the runner never runs a changed model)."""
    path = os.path.join(root, item["file"])
    if not os.path.isfile(path):
        raise RunnerError("bundle lacks %s (listed in its manifest); copy the whole bundle again" % item["file"])
    digest = sha256_file(path)
    if digest != item["sha256"]:
        raise RunnerError("model %s has SHA-256 %s but the manifest says %s: the bundle was modified or "
                          "damaged in transfer; copy it again" % (item["file"], digest[:16], item["sha256"][:16]))
    return path, digest


# ---- runtimes -------------------------------------------------------------------------------------
def example_input(shape, seed=0):
    """Standard-normal float32 input, the same values edgenas feeds (numpy's default_rng)."""
    shape = tuple(int(d) for d in shape)
    if hasattr(np.random, "default_rng"):
        return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.random.RandomState(seed).standard_normal(shape).astype(np.float32)


#: onnxruntime's input type names -> numpy dtype names (what an int8 or fp16 artifact may declare);
#: names, not numpy types: the runner starts (and says what is missing) without numpy
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
              "tensor(int32)": "int32", "tensor(int64)": "int64"}


def typed_input(shape, dtype, seed=0, quantization=None):
    """The example input in the dtype the artifact declares (read from its runtime, never assumed).

    Float inputs get the standard-normal values; an integer input with (scale, zero_point) gets
    those values quantized the way the model's own quantize step would; an integer input without
    them gets uniform values over the type's range.
    """
    dtype = np.dtype(dtype)
    x = example_input(shape, seed)
    if dtype.kind == "f":
        return x.astype(dtype)
    info = np.iinfo(dtype)
    scale, zero_point = quantization or (0.0, 0)
    if scale:
        return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)
    rng = np.random.RandomState(seed)
    return rng.randint(max(info.min, -128), min(info.max, 255) + 1, size=tuple(int(d) for d in shape)).astype(dtype)


class Timer(object):
    """Runs one inference per call; ``time_block`` returns per-call seconds (as in edgenas)."""

    def __call__(self):
        raise NotImplementedError

    def time_block(self, calls):
        out = np.empty(calls)
        clock = time.perf_counter_ns
        for i in range(calls):
            t0 = clock()
            self()
            out[i] = clock() - t0
        return out * 1e-9

    def close(self):
        pass


class TFLiteTimer(Timer):
    def __init__(self, interpreter_cls, path, threads, want_shape):
        self.it = interpreter_cls(model_path=path, num_threads=threads)  # XNNPACK: the default delegate
        self.it.allocate_tensors()
        details = self.it.get_input_details()
        if want_shape is not None and [int(d) for d in details[0]["shape"]] != list(want_shape):
            raise RunnerError("model %s takes input %s, the manifest says %s; rebuild the bundle"
                              % (path, list(details[0]["shape"]), list(want_shape)))
        for i, d in enumerate(details):
            q = d.get("quantization") or (0.0, 0)
            self.it.set_tensor(d["index"], typed_input(d["shape"], d["dtype"], seed=i, quantization=q))

    def __call__(self):
        self.it.invoke()

    def close(self):
        self.it = None


class OrtTimer(Timer):
    def __init__(self, ort, path, threads, want_shape):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        if want_shape is not None and list(inp.shape) != list(want_shape):
            raise RunnerError("model %s takes input %s, the manifest says %s; rebuild the bundle"
                              % (path, list(inp.shape), list(want_shape)))
        if inp.type not in ORT_DTYPES:
            raise RunnerError("model %s takes input type %s, which this runner cannot feed" % (path, inp.type))
        self.feed = {inp.name: typed_input(inp.shape, ORT_DTYPES[inp.type])}

    def __call__(self):
        self.session.run(None, self.feed)

    def close(self):
        self.session = None


def _dist_version(dist, module):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - metadata missing on some device installs
        return getattr(module, "__version__", "unknown")


def bundle_runtime(manifest):
    """The runtime a bundle's models need: its ``runner_runtime`` (edgenas's backend says which), else
    its backend's name (bundles built before the manifest carried it)."""
    return manifest.get("runner_runtime") or manifest["backend"]


def find_runtime(backend):
    """(name, version, make_timer) for a bundle's runtime: ai_edge_litert, then tflite_runtime, or onnxruntime.

    ``version`` is written exactly as edgenas names the runtime, so imported rows line up with local ones.
    """
    if np is None:
        raise RunnerError("numpy is not installed for %s: pip install numpy" % sys.executable, 3)
    if backend == "tflite":
        try:
            import ai_edge_litert
            from ai_edge_litert import interpreter as lite

            name, v, cls = "ai_edge_litert", _dist_version("ai-edge-litert", ai_edge_litert), lite.Interpreter
        except ImportError:
            try:
                import tflite_runtime
                from tflite_runtime import interpreter as lite

                name, v, cls = "tflite_runtime", getattr(tflite_runtime, "__version__", "unknown"), lite.Interpreter
            except ImportError:
                have_ort = _importable("onnxruntime")
                raise RunnerError("no TFLite interpreter for %s: pip install ai-edge-litert (or tflite-runtime on "
                                  "older boards)%s" % (sys.executable, "; onnxruntime is here: build an onnxruntime "
                                  "bundle instead (edgenas profile --backend onnxruntime --bundle ...)"
                                  if have_ort else ""), 3)
        return name, "%s-%s" % (name, v), lambda path, threads, shape: TFLiteTimer(cls, path, threads, shape)
    if backend == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            raise RunnerError("onnxruntime is not installed for %s: pip install onnxruntime" % sys.executable, 3)
        return "onnxruntime", ort.__version__, lambda path, threads, shape: OrtTimer(ort, path, threads, shape)
    raise RunnerError("this runner runs tflite and onnxruntime bundles, not %r" % backend)


def _importable(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# ---- the protocol (mirrors edgenas/profiling/protocol.py) ---------------------------------------
DEFAULT_SETTINGS = {"warmup_calls": 10, "warmup_s": 0.2, "block_ms": 20.0, "max_block_calls": 200, "min_rounds": 5,
                    "max_rounds": 25, "target_rel_ci": 0.03, "time_cap_s": 120.0, "seed": 0, "wide_rel_ci": 0.10,
                    "max_rounds_wide": 60}


def median_rel_ci(values):
    """Half-width of the distribution-free 95% CI of the median, relative to the median."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if n < 3:
        return float("inf")
    half = 1.96 * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)) - 1)
    med = float(np.median(v))
    return float((v[hi] - v[lo]) / 2 / med) if med > 0 else float("inf")


def summarize(samples_s, block_medians_s, rounds, target, ref_block_medians_s=None):
    ms = np.asarray(samples_s, dtype=float) * 1e3
    med = float(np.median(ms))
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    ref_ms = ratio = float("nan")
    if ref_block_medians_s:
        refs = np.asarray(ref_block_medians_s, dtype=float)
        ratios = np.asarray(block_medians_s, dtype=float) / refs
        ref_ms, ratio = float(np.median(refs) * 1e3), float(np.median(ratios))
        rel = median_rel_ci(ratios)
    else:
        rel = median_rel_ci(np.asarray(block_medians_s) * 1e3)
    return {"median_ms": med, "mean_ms": mean, "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)), "std_ms": std, "cv": std / mean if mean > 0 else float("nan"),
            "n": int(len(ms)), "rel_ci": rel, "rounds": rounds, "stable": bool(rel <= target), "ref_ms": ref_ms,
            "ref_ratio": ratio}


def warm_up(timer, s):
    start = time.perf_counter()
    calls = 0
    while calls < s["warmup_calls"] or time.perf_counter() - start < s["warmup_s"]:
        timer()
        calls += 1
        if calls > 100000:
            break
    return (time.perf_counter() - start) / max(calls, 1)


def block_size(seconds_per_call, s):
    return int(min(s["max_block_calls"], max(1, round(s["block_ms"] / 1e3 / max(seconds_per_call, 1e-7)))))


def _rel_ci(medians, refs):
    if refs:
        return median_rel_ci(np.asarray(medians) / np.asarray(refs))
    return median_rel_ci(np.asarray(medians))


def measure(timers, settings, reference=None, on_round=None):
    """(stats per key, rounds, elapsed s, reference block medians in ms): edgenas's ``measure``."""
    s = dict(DEFAULT_SETTINGS)
    s.update(settings or {})
    rng = random.Random(s["seed"])
    start = time.perf_counter()
    keys = list(timers)
    blocks = dict((k, block_size(warm_up(timers[k], s), s)) for k in keys)
    ref_block = block_size(warm_up(reference, s), s) if reference is not None else 0
    samples = dict((k, []) for k in keys)
    medians = dict((k, []) for k in keys)
    paired = dict((k, []) for k in keys)
    all_refs = []
    pending = set(keys)
    rounds = 0
    while pending and rounds < max(s["max_rounds"], s["max_rounds_wide"]):
        if rounds >= s["min_rounds"] and time.perf_counter() - start > s["time_cap_s"]:
            break
        if rounds >= s["max_rounds"]:  # only the still-wide entries go on
            pending = set(k for k in pending if _rel_ci(medians[k], paired[k]) > s["wide_rel_ci"])
            if not pending:
                break
        order = sorted(pending)
        rng.shuffle(order)
        for k in order:
            if reference is not None:
                r = float(np.median(reference.time_block(ref_block)))
                paired[k].append(r)
                all_refs.append(r * 1e3)
            t = timers[k].time_block(blocks[k])
            samples[k].append(t)
            medians[k].append(float(np.median(t)))
        rounds += 1
        if rounds >= s["min_rounds"]:
            pending = set(k for k in pending if _rel_ci(medians[k], paired[k]) > s["target_rel_ci"])
        if on_round:
            on_round(rounds, len(pending))
    stats = dict((k, summarize(np.concatenate(samples[k]), medians[k], len(medians[k]), s["target_rel_ci"],
                               paired[k] or None)) for k in keys)
    return stats, rounds, time.perf_counter() - start, all_refs


def drift(reference_ms):
    r = np.array([x for x in reference_ms if x > 0])
    if len(r) < 3:
        return 0.0
    return float((np.percentile(r, 90) - np.percentile(r, 10)) / np.median(r))


# ---- device facts ---------------------------------------------------------------------------------
def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().strip("\x00\n ")
    except OSError:
        return None


def _run(cmd):
    if not shutil.which(cmd[0]):
        return None
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, timeout=10)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _cpu_dirs():
    root = "/sys/devices/system/cpu"
    try:
        names = sorted((n for n in os.listdir(root) if re.match(r"^cpu\d+$", n)), key=lambda n: int(n[3:]))
    except OSError:
        return []
    return [os.path.join(root, n) for n in names]


def thermal_facts():
    """What changes while measuring: temperatures, clocks and throttling flags that can be read."""
    temps = []
    zones = "/sys/class/thermal"
    try:
        names = sorted(n for n in os.listdir(zones) if n.startswith("thermal_zone"))
    except OSError:
        names = []
    for n in names:
        t = _read(os.path.join(zones, n, "temp"))
        if t and t.lstrip("-").isdigit():
            temps.append({"zone": _read(os.path.join(zones, n, "type")) or n, "c": int(t) / 1000.0})
    cur = [_read(os.path.join(d, "cpufreq", "scaling_cur_freq")) for d in _cpu_dirs()]
    out = {"temperatures_c": temps, "cpu_cur_khz": [int(c) for c in cur if c and c.isdigit()]}
    throttled = _run(["vcgencmd", "get_throttled"])  # Raspberry Pi: throttled=0x0 means never throttled
    if throttled:
        out["rpi_throttled"] = throttled.split("=")[-1]
    counts = [_read(os.path.join(d, "thermal_throttle", "core_throttle_count")) for d in _cpu_dirs()]
    counts = [int(c) for c in counts if c and c.isdigit()]
    if counts:
        out["core_throttle_count"] = sum(counts)
    return out


def pin_malloc():
    """Pin glibc's mmap/trim thresholds, as edgenas does (edgenas/profiling/allocator.py): glibc's
    adaptive threshold otherwise makes a timing depend on what the process freed before it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, 32 * 1024 * 1024)) and bool(libc.mallopt(-1, 1 << 30))
    except (OSError, AttributeError):
        return False


def device_facts():
    """The device record stored with the table (keys as edgenas's environment() where they overlap)."""
    cpuinfo = _read("/proc/cpuinfo") or ""
    m = re.search(r"^(model name|Hardware|Model)\s*:\s*(.+)$", cpuinfo, re.M)
    parts = sorted(set(re.findall(r"^CPU part\s*:\s*(\S+)", cpuinfo, re.M)))
    governors = [_read(os.path.join(d, "cpufreq", "scaling_governor")) for d in _cpu_dirs()]
    governors = sorted(set(g for g in governors if g))
    max_khz = [_read(os.path.join(d, "cpufreq", "scaling_max_freq")) for d in _cpu_dirs()]
    facts = {
        "machine": platform.machine(),
        "cpu_model": m.group(2).strip() if m else (platform.processor() or None),
        "cpu_parts": parts,
        "cpu_count": os.cpu_count(),
        "governor": governors[0] if len(governors) == 1 else ("mixed: " + ", ".join(governors) if governors
                                                               else "unreadable"),
        "cpu_max_khz": sorted(set(int(c) for c in max_khz if c and c.isdigit())),
        "device_tree_model": _read("/proc/device-tree/model"),
        "android": "ANDROID_ROOT" in os.environ,
        "android_model": _run(["getprop", "ro.product.model"]),
        "nvpmodel": _run(["nvpmodel", "-q"]),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__ if np is not None else None,
    }
    facts.update(thermal_facts())
    return dict((k, v) for k, v in facts.items() if v not in (None, [], ""))


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def _clean(obj):
    """JSON without NaN / inf (they become null), numpy scalars as Python numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return dict((str(k), _clean(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj


def write_results(path, results, nonce):
    results = _clean(results)
    results["checksum"] = results_checksum(results, nonce)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: an interrupted run leaves the previous chunk's file intact


def _progress(quiet, text):
    if not quiet:
        sys.stderr.write("edgenas-runner: %s\n" % text)
        sys.stderr.flush()


# ---- run ----------------------------------------------------------------------------------------------
def run_bundle(bundle, out, resume=False, quiet=False, max_entries=None):
    """Measure every entry of the bundle (or those ``out`` lacks, with ``resume``); returns the results."""
    root, manifest, tmp = open_bundle(bundle)
    try:
        return _run_bundle(root, manifest, out, resume, quiet, max_entries)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _run_bundle(root, manifest, out, resume, quiet, max_entries):
    malloc_pinned = pin_malloc()
    runtime, runtime_version, make_timer = find_runtime(bundle_runtime(manifest))
    threads = int(manifest["threads"])
    settings = dict(DEFAULT_SETTINGS)
    settings.update(manifest.get("protocol") or {})
    results = None
    if os.path.exists(out):
        if not resume:
            raise RunnerError("%s exists; pass --resume to continue it, or --out another file" % out)
        try:
            with open(out) as f:
                results = json.load(f)
        except (OSError, ValueError) as e:
            raise RunnerError("cannot read %s to resume (%s); move it away and start again" % (out, e))
        if results.get("bundle_id") != manifest["bundle_id"]:
            raise RunnerError("%s belongs to bundle %s, not %s; pass --out another file"
                              % (out, results.get("bundle_id"), manifest["bundle_id"]))
        if results.get("runtime_version") != runtime_version:
            raise RunnerError("%s was measured with %s, this is %s; start a new file with --out"
                              % (out, results.get("runtime_version"), runtime_version))
    if results is None:
        results = {"format": RESULTS_FORMAT, "version": FORMAT_VERSION, "bundle_id": manifest["bundle_id"],
                   "device": manifest["device"], "backend": manifest["backend"], "precision": manifest["precision"],
                   "threads": threads, "measured_by": "edgenas_device_runner", "runner_version": RUNNER_VERSION,
                   "runtime": runtime, "runtime_version": runtime_version, "protocol": settings,
                   "started_at": _now(), "device_facts": dict(device_facts(), malloc_pinned=malloc_pinned), "references": {}, "chunks": [],
                   "entries": [], "complete": False}
    done = set(e["id"] for e in results["entries"])
    todo = [e for e in manifest["entries"] if e["id"] not in done]
    if max_entries is not None:
        todo = todo[:max_entries]
    chunk_size = int(manifest.get("chunk_size", 12))
    plan = []
    for batch in sorted(set(e["batch"] for e in todo)):
        items = [e for e in todo if e["batch"] == batch]
        plan += [(batch, items[i:i + chunk_size]) for i in range(0, len(items), chunk_size)]
    total, finished = len(manifest["entries"]), len(done)
    _progress(quiet, "progress %d/%d %s %s, %d thread(s)" % (finished, total, runtime, runtime_version, threads))
    for batch, chunk in plan:
        ref_item = manifest["references"][str(batch)]
        ref_path, ref_digest = verified_model(root, ref_item)
        timers, digests, reference = {}, {}, None
        try:
            for item in chunk:
                path, digests[item["id"]] = verified_model(root, item)
                timers[item["id"]] = _load(make_timer, path, threads, item)
            reference = _load(make_timer, ref_path, threads, ref_item)
            _progress(quiet, "progress %d/%d measuring batch %d, %d ops" % (finished, total, batch, len(chunk)))
            stats, rounds, elapsed, refs = measure(timers, settings, reference)
        finally:
            for t in list(timers.values()) + ([reference] if reference is not None else []):
                t.close()
        results["references"][str(batch)] = {"op_key": ref_item["op_key"], "sha256": ref_digest}
        for item in chunk:
            results["entries"].append({"id": item["id"], "op_key": item["op_key"], "batch": batch,
                                       "sha256": digests[item["id"]], "stats": stats[item["id"]]})
        results["chunks"].append({"batch": batch, "entries": len(chunk), "rounds": rounds,
                                  "elapsed_s": round(elapsed, 3), "drift": round(drift(refs), 4),
                                  "reference_ms_p10_p50_p90": [round(float(x), 5) for x in
                                                               np.percentile(refs, [10, 50, 90])] if refs else [],
                                  "finished_at": _now(), "thermal": thermal_facts()})
        finished += len(chunk)
        results["complete"] = finished == total
        results["finished_at"] = _now()
        results["modules"] = {"torch": "torch" in sys.modules, "edgenas": "edgenas" in sys.modules}
        write_results(out, results, manifest["nonce"])
        _progress(quiet, "progress %d/%d saved %s" % (finished, total, out))
    if not plan:
        results["complete"] = finished == total
        write_results(out, results, manifest["nonce"])
    return results


def _load(make_timer, path, threads, item):
    try:
        return make_timer(path, threads, item.get("input_shape"))
    except RunnerError:
        raise
    except Exception as e:  # noqa: BLE001 - runtimes raise many kinds; one line names the model
        raise RunnerError("cannot load %s (%s): %s: %s" % (item["file"], item["op_key"], type(e).__name__,
                                                           str(e).splitlines()[0][:200] if str(e) else ""), 5)


def check(bundle):
    """Exit 0 when this Python can run the bundle; print what it found."""
    root, manifest, tmp = open_bundle(bundle)
    try:
        runtime, version, _ = find_runtime(bundle_runtime(manifest))
        for item in list(manifest["references"].values()) + manifest["entries"]:
            verified_model(root, item)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"bundle_id": manifest["bundle_id"], "backend": manifest["backend"], "runtime": runtime,
            "runtime_version": version, "python": platform.python_version(), "numpy": np.__version__,
            "entries": len(manifest["entries"])}


# ---- TFLite benchmark_model (tools/android_benchmark.sh) ------------------------------------------------
_COUNT_RE = re.compile(r"count=(\d+)\s+first=(\d+)\s+curr=(\d+)\s+min=(\d+)\s+max=(\d+)\s+avg=([\d.eE+-]+)\s+"
                       r"std=([\d.eE+-]+)")
_TIMINGS_RE = re.compile(r"Inference timings in us:\s*Init:\s*([\d.]+),\s*First inference:\s*([\d.]+),\s*"
                         r"Warmup \(avg\):\s*([\d.eE+-]+),\s*Inference \(avg\):\s*([\d.eE+-]+)")


def parse_benchmark_model(text):
    """benchmark_model's output -> microsecond numbers of its measured runs (pure text to numbers).

    ``count=.. first=.. curr=.. min=.. max=.. avg=.. std=..`` appears twice, warm-up first, then the
    timed runs; the last one is taken and checked against ``Inference (avg)`` where printed.
    """
    counts = _COUNT_RE.findall(text)
    if not counts:
        raise RunnerError("no 'count=.. avg=.. std=..' line in benchmark_model output (did it fail? last line: %r)"
                          % (text.strip().splitlines()[-1][:200] if text.strip() else ""))
    c = counts[-1]
    out = {"count": int(c[0]), "first_us": float(c[1]), "curr_us": float(c[2]), "min_us": float(c[3]),
           "max_us": float(c[4]), "avg_us": float(c[5]), "std_us": float(c[6])}
    if len(counts) > 1:
        out["warmup_count"] = int(counts[0][0])
    m = _TIMINGS_RE.search(text)
    if m:
        out.update({"init_us": float(m.group(1)), "first_inference_us": float(m.group(2)),
                    "warmup_avg_us": float(m.group(3)), "inference_avg_us": float(m.group(4))})
        if abs(out["inference_avg_us"] - out["avg_us"]) > 0.01 * out["avg_us"] + 1:
            raise RunnerError("benchmark_model output disagrees with itself: avg=%s but Inference (avg): %s"
                              % (out["avg_us"], out["inference_avg_us"]))
    return out


_BLOCK_RE = re.compile(r"^### edgenas-begin (.*)$")


def split_benchmark_log(text):
    """(facts, blocks) from android_benchmark.sh's log: '### fact k=v' lines and one block per model run."""
    facts, blocks, cur = {}, [], None
    for line in text.splitlines():
        if line.startswith("### fact "):
            k, _, v = line[len("### fact "):].partition("=")
            facts[k.strip()] = v.strip()
            continue
        m = _BLOCK_RE.match(line)
        if m:
            cur = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
            cur["lines"] = []
            blocks.append(cur)
        elif line.startswith("### sha256 ") and cur is not None:
            cur["sha256"] = line.split()[2].lower() if len(line.split()) > 2 else ""
        elif line.startswith("### edgenas-end") and cur is not None:
            cur.update(dict(kv.split("=", 1) for kv in line.split()[2:] if "=" in kv))
            cur = None
        elif cur is not None:
            cur["lines"].append(line)
    return facts, blocks


def results_from_benchmark_log(bundle, log_path, runtime_version=""):
    """results.json content from a benchmark_model log: avg/std/min/max per model, no per-call samples.

    Every entry block is paired with the reference block run right before it (ref_ratio = avg / ref avg).
    """
    root, manifest, tmp = open_bundle(bundle)
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise RunnerError("cannot read %s: %s" % (log_path, e))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if bundle_runtime(manifest) != "tflite":
        raise RunnerError("benchmark_model runs .tflite models; this bundle is %s" % manifest["backend"])
    facts, blocks = split_benchmark_log(text)
    if facts.get("bundle_id", manifest["bundle_id"]) != manifest["bundle_id"]:
        raise RunnerError("%s is a log of bundle %s, not of %s" % (log_path, facts["bundle_id"], manifest["bundle_id"]))
    by_id = dict((e["id"], e) for e in manifest["entries"])
    refs_by_file = dict((r["file"], (b, r)) for b, r in manifest["references"].items())
    entries, references, last_ref = [], {}, {}
    for b in blocks:
        where = "log block id=%s" % b.get("id")
        if b.get("rc", "0") != "0":
            raise RunnerError("%s: benchmark_model exited %s: %s" % (where, b.get("rc"),
                                                                    " | ".join(b["lines"][-3:])[:300]))
        numbers = parse_benchmark_model("\n".join(b["lines"]))
        if b.get("role") == "reference":
            if b.get("file") not in refs_by_file:
                raise RunnerError("%s: reference file %s is not in the bundle" % (where, b.get("file")))
            batch, ref = refs_by_file[b["file"]]
            references[batch] = {"op_key": ref["op_key"], "sha256": b.get("sha256", "")}
            last_ref[batch] = numbers
            continue
        item = by_id.get(b.get("id", ""))
        if item is None or item["file"] != b.get("file"):
            raise RunnerError("%s (%s) is not an entry of bundle %s" % (where, b.get("file"), manifest["bundle_id"]))
        ref = last_ref.pop(str(item["batch"]), None)
        avg, std = numbers["avg_us"] / 1e3, numbers["std_us"] / 1e3
        stats = {"median_ms": None, "mean_ms": avg, "p10_ms": None, "p90_ms": None, "std_ms": std,
                 "cv": std / avg if avg > 0 else None, "n": numbers["count"], "rel_ci": None, "rounds": 1,
                 "stable": None, "ref_ms": ref["avg_us"] / 1e3 if ref else None,
                 "ref_ratio": numbers["avg_us"] / ref["avg_us"] if ref and ref["avg_us"] > 0 else None}
        entries.append({"id": item["id"], "op_key": item["op_key"], "batch": item["batch"],
                        "sha256": b.get("sha256", ""), "stats": stats,
                        "benchmark_model": dict((k, v) for k, v in numbers.items())})
    if not entries:
        raise RunnerError("%s has no benchmark_model runs of bundle entries" % log_path)
    version = runtime_version or facts.get("benchmark_model_version", "")
    results = {"format": RESULTS_FORMAT, "version": FORMAT_VERSION, "bundle_id": manifest["bundle_id"],
               "device": manifest["device"], "backend": manifest["backend"], "precision": manifest["precision"],
               "threads": int(facts.get("threads", manifest["threads"])), "measured_by": "benchmark_model",
               "runner_version": RUNNER_VERSION, "runtime": "benchmark_model",
               "runtime_version": "benchmark_model" + ("-" + version if version else ""),
               "protocol": {"tool": "benchmark_model", "flags": facts.get("flags", "")},
               "started_at": facts.get("started_at", _now()), "finished_at": facts.get("finished_at", _now()),
               "device_facts": _log_facts(facts),
               "references": references, "chunks": [], "entries": entries,
               "complete": len(entries) == len(manifest["entries"])}
    return results, manifest


def _log_facts(facts):
    out = dict((k, v) for k, v in facts.items() if v and k not in ("flags", "threads", "bundle_id"))
    out["android"] = facts.get("android") == "true"
    if str(facts.get("battery_temp_decic", "")).isdigit():
        out["battery_temp_c"] = int(out.pop("battery_temp_decic")) / 10.0
    return out


# ---- command line -----------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(prog="edgenas_device_runner.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="measure a bundle and write results.json")
    r.add_argument("bundle", help="bundle .zip or unpacked directory")
    r.add_argument("--out", default="results.json")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    r.add_argument("--quiet", action="store_true")
    c = sub.add_parser("check", help="can this Python run the bundle? (numpy, runtime, model hashes)")
    c.add_argument("bundle")
    p = sub.add_parser("probe", help="can this Python run a backend's models? (numpy and the runtime)")
    p.add_argument("backend", choices=["tflite", "onnxruntime"])
    b = sub.add_parser("benchmark-model", help="results.json from tools/android_benchmark.sh's log")
    b.add_argument("bundle")
    b.add_argument("log")
    b.add_argument("--out", default="results.json")
    b.add_argument("--runtime-version", default="", help="TFLite version of the benchmark_model binary")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "run":
            res = run_bundle(args.bundle, args.out, resume=args.resume, quiet=args.quiet)
            n = len(res["entries"])
            stable = sum(1 for e in res["entries"] if e["stats"].get("stable"))
            print("measured %d entries (%d stable) with %s -> %s" % (n, stable, res["runtime_version"], args.out))
        elif args.cmd == "check":
            print(json.dumps(check(args.bundle), sort_keys=True))
        elif args.cmd == "probe":
            runtime, version, _ = find_runtime(args.backend)
            print(json.dumps({"runtime": runtime, "runtime_version": version, "python": platform.python_version(),
                              "numpy": np.__version__}, sort_keys=True))
        elif args.cmd == "benchmark-model":
            res, manifest = results_from_benchmark_log(args.bundle, args.log, args.runtime_version)
            write_results(args.out, res, manifest["nonce"])
            print("parsed %d benchmark_model runs -> %s" % (len(res["entries"]), args.out))
        else:
            ap.print_help()
            return 2
    except RunnerError as e:
        sys.stderr.write("error: %s\n" % e)
        return e.code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: finished chunks are in the results file; continue with --resume\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
