"""Benchmark: search-step throughput (images/s) and peak memory per strategy, ours vs the naive loop.

The naive implementation is the plain DARTS MixedOp: every candidate op on every edge is computed
and weighted, whatever the weights (``edgenas.spaces.mixed.naive_mode``). Ours skips candidates
whose weight is zero, so single-path strategies (SPOS, ENAS, ProxylessNAS weight steps) compute
one path. Each (strategy, implementation) runs in its own process so peak memory is its own;
both run in one invocation, side by side, and the ratios are what to read (this VM is noisy).
Peak memory is the process's ``ru_maxrss`` at the end minus its RSS after setup (CUDA: also
``torch.cuda.max_memory_allocated``).

``--partial-channels K`` adds a third variant to the ``darts`` strategy: PC-DARTS (ops on 1/K of
each edge's channels, edge normalisation), timed in the same run against the same naive loop:

    python benchmarks/search_throughput.py [--space proxyless] [--steps 10] [--batch-size 64]
    python benchmarks/search_throughput.py --space darts --strategies darts --partial-channels 4

Writes benchmarks/results/search_throughput_<space>_<device>.{json,md}. Uses CUDA when present.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(strategy: str, naive: bool, space_name: str, steps: int, batch_size: int, overrides: dict,
           predictor=None, partial_channels: int = 1) -> dict:
    """One (strategy, implementation) timing; ``predictor`` defaults to the x86-64-host onnxruntime
    batch-1 table (benchmarks/gpu_check.py passes a pandas-free stand-in where pandas is missing);
    ``partial_channels`` > 1 times PC-DARTS (``darts`` only)."""
    import torch

    from edgenas.latency.expected import ExpectedLatency
    from edgenas.search.base import Budget, SearchContext, create_strategy, strategy_class
    from edgenas.search.data import load_data
    from edgenas.spaces import create_space
    from edgenas.spaces.mixed import naive_mode

    space = create_space(space_name, "small")
    search_space = create_space(space_name, "small", **overrides) if overrides else space
    if predictor is None:
        from edgenas.latency.predictor import LatencyPredictor

        predictor = LatencyPredictor.load("x86-64-host", "onnxruntime", space, 1, auto_anchor=False)
    pred = predictor
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mode = strategy_class(strategy).expected_latency  # as edgenas.search.pipeline picks it
    ctx = SearchContext(space=space, data=load_data("synthetic", 2000, 1000, 100), predictor=pred,
                        expected=ExpectedLatency(space, pred, mode), target_ms=10.0,
                        budget=Budget(steps=10 ** 6, batch_size=batch_size), search_space=search_space,
                        device=device)
    s = create_strategy(strategy, warmup_fraction=0.0,
                        **({"partial_channels": partial_channels} if partial_channels > 1 else {}))
    s.setup(ctx)
    base = rss_mb()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with naive_mode() if naive else _null():
        s.step(ctx)  # warm-up step (allocations, first-call costs)
        start = time.perf_counter()
        for _ in range(steps):
            s.step(ctx)
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    impl = "naive" if naive else f"pc{partial_channels}" if partial_channels > 1 else "edgenas"
    out = {"strategy": strategy, "impl": impl, "device": device,
           "images_per_s": steps * batch_size / elapsed, "s_per_step": elapsed / steps,
           "peak_rss_over_start_mb": peak - base}
    if device == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="proxyless")
    ap.add_argument("--strategies", default="proxyless,darts,enas,spos")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--search-channels", type=int, default=None, help="darts proxy supernet channels")
    ap.add_argument("--partial-channels", type=int, default=1, help="darts: also time PC-DARTS with this K")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads per worker (default: torch's). On a loaded VM use 1: with every core "
                         "busy, a 2-thread op waits for its second thread (a tiny DARTS step measured 100x slower)")
    ap.add_argument("--worker", nargs=2, metavar=("STRATEGY", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    overrides = {"channels": args.search_channels} if args.search_channels else {}
    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        impl = args.worker[1]
        k = int(impl[2:]) if impl.startswith("pc") else 1
        r = worker(args.worker[0], impl == "naive", args.space, args.steps, args.batch_size, overrides,
                   partial_channels=k)
        print(json.dumps(r))
        return
    rows = []
    for strategy in args.strategies.split(","):
        pair = {}
        impls = ["naive", "edgenas"]
        if strategy == "darts" and args.partial_channels > 1:
            impls.append(f"pc{args.partial_channels}")
        for impl in impls:
            cmd = [sys.executable, __file__, "--space", args.space, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--worker", strategy, impl]
            if args.search_channels:
                cmd += ["--search-channels", str(args.search_channels)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{strategy} {impl} failed: {p.stderr[-400:]}")
                continue
            pair[impl] = json.loads(p.stdout.strip().splitlines()[-1])
            print(pair[impl], flush=True)
        if "naive" not in pair:
            continue
        for impl in impls[1:]:
            if impl in pair:
                label = strategy if impl == "edgenas" else f"{strategy} --partial-channels {impl[2:]}"
                rows.append({"strategy": label, "device": pair[impl]["device"], "naive": pair["naive"],
                             "edgenas": pair[impl],
                             "speedup": pair[impl]["images_per_s"] / pair["naive"]["images_per_s"],
                             "memory_ratio": pair[impl]["peak_rss_over_start_mb"] /
                             max(pair["naive"]["peak_rss_over_start_mb"], 1e-9)})
    OUT.mkdir(parents=True, exist_ok=True)
    dev = rows[0]["device"] if rows else "cpu"
    suffix = f"_pc{args.partial_channels}" if args.partial_channels > 1 else ""
    stem = f"search_throughput_{args.space}_{dev}{suffix}"
    doc = {"date": time.strftime("%Y-%m-%d"), "space": args.space, "batch_size": args.batch_size,
           "steps": args.steps, "overrides": overrides, "threads": args.threads, "load_average": os.getloadavg(),
           "memory": "ru_maxrss at the end minus RSS after setup, one fresh process per variant", "rows": rows}
    (OUT / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"# Search-step throughput, {args.space}/small {overrides or ''} ({doc['date']}, {dev}, "
             f"batch {args.batch_size}, {args.threads or 'default'} threads, load average "
             f"{doc['load_average'][0]:.1f} on {os.cpu_count()} CPUs)", "",
             "Each row's variant and the naive every-op loop ran in the same invocation, one fresh process each; "
             "peak MB = ru_maxrss minus RSS after setup.", "",
             "| strategy | naive img/s | edgenas img/s | speed-up | naive peak MB | edgenas peak MB | memory ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['naive']['images_per_s']:.1f} | {r['edgenas']['images_per_s']:.1f} | "
                     f"{r['speedup']:.2f}x | {r['naive']['peak_rss_over_start_mb']:.0f} | "
                     f"{r['edgenas']['peak_rss_over_start_mb']:.0f} | {r['memory_ratio']:.2f} |")
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
