"""Plain runtime timing of an exported model: the truth ``edgenas verify --truth plain`` scores against.

What a user's own benchmark tool shows (TFLite's ``benchmark_model``, ``onnxruntime_perf_test``):
load the file with the runtime's default options and a thread count, warm up, time runs, report a
median. No reference op, no drift correction, nothing of edgenas's protocol, so an error in
edgenas's millisecond scale shows up as an error instead of cancelling out. Each timing runs in a
fresh process, and the fastest of a few processes is the device's quiet-state figure.

Why blocks over seconds and their 10th percentile, not one median of 250 runs: on this VM kind
the speed alternates between a fast and a slow phase (1.4-1.5x apart) lasting 0.1-1 s each, also
within one process and with nothing else running (measured 2026-12-02: one 0.17 ms network's
50-run block medians over 6 s moved 0.167 <-> 0.25 ms, on either vCPU, with ASLR off too). 250
runs of a small network last 50 ms, inside one phase, so "the fastest of 3 processes" still landed
in the slow phase for a network in eight. Timing blocks for ``SECONDS`` and taking their 10th
percentile is the fastest steady phase, the same estimator as the reference op's quiet-state
anchor (``latency/anchor.py``); on a prepared device with no such phases it equals the median
within a percent or two. The median of all blocks is reported alongside (``median_ms``).

Runs standalone: ``python -m edgenas.profiling.plain MODEL.onnx|MODEL.tflite --threads 1`` prints
one JSON line; it imports only numpy, the runtime and edgenas's light profiling modules (no torch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: the timing recipe: warm-up runs, then blocks of up to ``RUNS`` runs (about ``BLOCK_S`` each) for at
#: least ``SECONDS`` and ``BLOCKS`` blocks; the figure is the 10th percentile of the block medians
WARMUP, BLOCKS, RUNS = 30, 10, 50
SECONDS, BLOCK_S, QUIET_PERCENTILE = 2.0, 0.01, 10


@dataclass
class PlainTiming:
    ms: float  # the fastest process's quiet-state figure (10th percentile of its block medians)
    per_process_ms: list  # each fresh process's quiet-state figure
    runtime: str
    threads: int
    recipe: str
    per_process_median_ms: list = field(default_factory=list)  # each process's median over all its blocks

    @property
    def median_ms(self) -> float:
        """The raw figure: the median of the processes' all-block medians (slow phases included)."""
        return float(np.median(self.per_process_median_ms)) if self.per_process_median_ms else float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def _onnx_runner(path: str, threads: int):
    import onnxruntime as ort

    from edgenas.profiling.onnxruntime_backend import ort_session  # numpy + onnxruntime only

    sess = ort_session(path, threads)
    feeds = {i.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in i.shape])
             .astype(np.float32) for i in sess.get_inputs()}
    return lambda: sess.run(None, feeds), f"onnxruntime-{ort.__version__}"


def _tflite_runner(path: str, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
        name = "ai_edge_litert"
    except ImportError:  # boards: the last tflite_runtime
        from tflite_runtime.interpreter import Interpreter
        name = "tflite_runtime"
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    for d in it.get_input_details():
        x = np.random.default_rng(0).standard_normal(d["shape"])
        it.set_tensor(d["index"], x.astype(d["dtype"]) if np.issubdtype(d["dtype"], np.floating)
                      else np.clip(x * 32, -128, 127).astype(d["dtype"]))
    return it.invoke, name


RUNNERS = {".onnx": _onnx_runner, ".tflite": _tflite_runner}


def _runner(path, threads: int):
    suffix = Path(path).suffix
    if suffix not in RUNNERS:
        raise SystemExit(f"no plain runner for {suffix!r} files (known: {', '.join(RUNNERS)})")
    run, runtime = RUNNERS[suffix](str(path), threads)
    for _ in range(WARMUP):
        run()
    return run, runtime


def _block_ms(run, runs: int) -> float:
    """Median ms of ``runs`` back-to-back runs."""
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        run()
        t[i] = time.perf_counter_ns() - t0
    return float(np.median(t)) * 1e-6


def time_here(path: str, threads: int, seconds: float = SECONDS) -> dict:
    """Time ``path`` in this process: ``ms`` is the fastest steady phase (module docstring).

    After WARMUP runs, blocks of up to RUNS runs (about BLOCK_S each, at least 5 runs) until
    ``seconds`` have passed and at least BLOCKS blocks are in; ``ms`` is the QUIET_PERCENTILE-th
    percentile of the block medians, ``median_ms`` their median.
    """
    run, runtime = _runner(path, threads)
    t0 = time.perf_counter()
    run()
    one = max(time.perf_counter() - t0, 1e-6)
    calls = int(min(RUNS, max(5, BLOCK_S / one)))
    blocks, start = [], time.perf_counter()
    while len(blocks) < BLOCKS or time.perf_counter() - start < seconds:
        blocks.append(_block_ms(run, calls))
    return {"ms": float(np.percentile(blocks, QUIET_PERCENTILE)), "median_ms": float(np.median(blocks)),
            "blocks": len(blocks), "runs_per_block": calls, "runtime": runtime}


def time_side_by_side(paths, threads: int, blocks: int = 10, runs: int = RUNS) -> list[list[float]]:
    """Block medians (ms) of each model, timed in this process in alternating blocks of ``runs`` runs.

    For a *ratio* of two models (int8 over fp32 of one network): both loaded with the same thread
    count, warmed up, then block ``b`` of each model back to back (the order flipping every
    round), so a slow spell of a busy host hits both sides of a pair alike. Returns
    ``blocks`` block medians per model, in ``paths`` order; pair them by index.
    """
    runners = [_runner(p, threads)[0] for p in paths]
    out: list[list[float]] = [[] for _ in runners]
    for b in range(blocks):
        order = range(len(runners)) if b % 2 == 0 else reversed(range(len(runners)))
        for k in order:
            out[k].append(_block_ms(runners[k], runs))
    return out


def _time_in_fresh_process(path, threads: int, timeout_s: float, seconds: float) -> dict:
    """One plain timing of ``path`` in a new Python process (module ``main``'s JSON line)."""
    from edgenas.errors import MeasurementError

    p = subprocess.run([sys.executable, "-m", "edgenas.profiling.plain", str(path), "--threads", str(threads),
                        "--seconds", str(seconds)], capture_output=True, text=True, timeout=timeout_s)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise MeasurementError(f"plain timing of {path} failed: {tail[:300]}") from None


def time_fresh_many(paths, threads: int, processes: int = 3, timeout_s: float = 600,
                    seconds: float = SECONDS, on_progress=None) -> list[PlainTiming]:
    """The fastest of ``processes`` fresh-process plain timings of each file, timed in passes.

    Why passes, not each file's processes back to back: this VM has slow spells lasting tens of
    seconds (measured 2026-12-08: one darts b8 network's three back-to-back processes read
    6.27-6.47 ms, the next day 5.31-5.50 ms, quiet both times). Three processes of one file in a
    row (about 8 s) can all land in one spell, and "the fastest of 3" is then 15% slow. Pass ``k``
    times every file once, so a file's processes run a whole pass apart and one spell hits at most
    one of them. ``on_progress(done, total)`` after each process.
    """
    paths = [Path(p) for p in paths]
    passes = max(1, processes)
    runs = [[] for _ in paths]
    total = passes * len(paths)
    for k in range(passes):
        for i, path in enumerate(paths):
            runs[i].append(_time_in_fresh_process(path, threads, timeout_s, seconds))
            if on_progress:
                on_progress(k * len(paths) + i + 1, total)
    how = f"in {passes} passes over the {len(paths)} files" if len(paths) > 1 else "back to back"
    recipe = (f"fastest of {passes} fresh processes ({how}); each: {WARMUP} warm-up runs, then blocks of up to "
              f"{RUNS} runs for {seconds:g} s, the {QUIET_PERCENTILE}th percentile of the block medians "
              "(the fastest steady phase)")
    return [PlainTiming(min(d["ms"] for d in r), [d["ms"] for d in r], r[-1]["runtime"], threads, recipe,
                        [d.get("median_ms", d["ms"]) for d in r]) for r in runs]


def time_fresh(path: Path, threads: int, processes: int = 3, timeout_s: float = 600,
               seconds: float = SECONDS) -> PlainTiming:
    """The fastest of ``processes`` fresh-process plain timings of ``path`` (back to back)."""
    return time_fresh_many([path], threads, processes, timeout_s, seconds)[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=SECONDS, help="How long to time blocks for.")
    a = ap.parse_args(argv)
    print(json.dumps(time_here(a.model, a.threads, a.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
