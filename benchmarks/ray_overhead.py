"""Benchmark: a 6-trial sweep run locally vs on Ray, and Ray's overhead per task, on this machine.

Two measurements, each in fresh processes:

1. ``edgenas sweep`` of 6 trials (1 target x 3 seeds x 2 strategies, tiny synthetic-data budget,
   each chosen network measured on this machine) with ``--executor local`` and ``--executor ray``
   (a one-machine Ray started by the command: one worker per core, measurements one at a time
   through the ``device:x86-64-host`` resource). Wall time of the whole command.
2. Measurement under Ray: one network's paired ratio to the reference op (what measured ms is made
   of) timed in this process and in a Ray task holding the device, alternately, ``--pairs`` times:
   the two sets should overlap (the protocol's noise), not sit apart.
3. Per-task overhead: N empty tasks through ``RayExecutor.run`` vs ``LocalExecutor.run`` (after a
   warm-up batch, so worker start-up is not counted), and one 8 MB payload (a bundle's size) sent
   to a task and back.

    python benchmarks/ray_overhead.py [--tasks 200]

Writes benchmarks/results/ray.{json,md}. The machine's load average is recorded beside the numbers:
other processes sharing the cores change both wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
SWEEP = ["--targets", "0.6", "--seeds", "0,1,2", "--strategies", "spos,random", "--data", "synthetic",
         "--budget", "16", "--batch-size", "16", "--top-k", "2", "--retrain-epochs", "0.1", "--population", "4",
         "--eval-examples", "64", "--train-size", "600", "--arch-size", "200", "--test-size", "200", "--json"]


def _noop(x):
    return x


def overhead(n: int) -> dict:
    """Seconds per task: empty tasks on Ray vs in this process; the 8 MB round trip."""
    from edgenas.executors import LocalExecutor
    from edgenas.executors.ray_executor import RayExecutor

    t = time.perf_counter()
    list(LocalExecutor().run(_noop, list(range(n))))
    local_s = time.perf_counter() - t
    ex = RayExecutor(None)
    try:
        list(ex.run(_noop, list(range(20))))  # warm-up: workers started, the function exported
        t = time.perf_counter()
        list(ex.run(_noop, list(range(n))))
        ray_s = time.perf_counter() - t
        blob = os.urandom(8 << 20)
        t = time.perf_counter()
        back = ex.map(_noop, [blob])[0]
        blob_s = time.perf_counter() - t
        assert back == blob
        nodes = ex.ray.cluster_resources()
    finally:
        ex.close()
    return {"tasks": n, "local_s": local_s, "ray_s": ray_s, "per_task_ms": 1000 * (ray_s - local_s) / n,
            "payload_8mb_round_trip_s": blob_s, "cluster": {k: v for k, v in nodes.items() if "memory" not in k}}


def _ref_ratio(seed: int) -> float:
    """One proxyless/small network (drawn with ``seed``) timed on onnxruntime: its ratio to the reference op."""
    import random

    from edgenas.profiling.base import create_backend
    from edgenas.profiling.networks import measure_networks
    from edgenas.spaces import create_space

    space = create_space("proxyless", "small")
    arch = space.sample(random.Random(seed))
    m = measure_networks(create_backend("onnxruntime", threads=1), space, [arch], 1, source="ray-bench")[0]
    return float(m.stats.ref_ratio)


def interleaved(pairs: int) -> dict:
    """The same network's ref ratio timed here and in a Ray device task, alternately."""
    from edgenas.executors import Resources
    from edgenas.executors.ray_executor import RayExecutor

    ex = RayExecutor(None)
    here, on_ray = [], []
    try:
        for _ in range(pairs):
            here.append(_ref_ratio(1))
            on_ray.append(ex.map(_ref_ratio, [1], Resources(num_cpus=1, device="x86-64-host"))[0])
    finally:
        ex.close()
    return {"pairs": pairs, "local": here, "ray": on_ray}


def sweep(executor: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    load0 = os.getloadavg()
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgenas", "sweep", *SWEEP, "--out", str(out), "--executor", executor],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"sweep --executor {executor} failed: {p.stderr[-1500:]}")
    rep = json.loads(p.stdout)
    return {"executor": executor, "wall_s": wall, "trials": rep["finished"], "load_before": load0,
            "load_after": os.getloadavg(),
            "results": [(r["trial"], round(r["test_acc"], 4), round(r["measured_ms"], 4)) for r in rep["trials"]]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=4, help="alternating local / Ray timings of one network")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite ray.md from ray.json, measuring nothing")
    args = ap.parse_args(argv)
    if args.markdown_only:
        (OUT / "ray.md").write_text(markdown(json.loads((OUT / "ray.json").read_text())))
        return 0
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="edgenas-raybench-") as tmp:
        runs = [sweep("local", Path(tmp) / "local"), sweep("ray", Path(tmp) / "ray")]
    ov = overhead(args.tasks)
    inter = interleaved(args.pairs)
    same = [r[:2] for r in runs[0]["results"]] == [r[:2] for r in runs[1]["results"]]
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(), "sweeps": runs,
           "same_trials_and_accuracies": same, "overhead": ov, "interleaved": inter,
           "sweep_flags": SWEEP}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ray.json").write_text(json.dumps(res, indent=2) + "\n")
    (OUT / "ray.md").write_text(markdown(res))
    print(markdown(res))
    return 0


def markdown(r: dict) -> str:
    lo, ra = r["sweeps"]
    ov = r["overhead"]
    la = lambda x: "/".join(f"{v:.1f}" for v in x)  # noqa: E731
    lines = [
        "# Ray overhead on this machine", "",
        f"{r['date']}, {r['cores']} cores, `python benchmarks/ray_overhead.py`. Load averages (1/5/15 min) are "
        "recorded beside each run (on 2 cores, anything above about 1 means other processes shared them, and "
        "wall times are noisy).", "",
        "## A 6-trial sweep (1 target x 3 seeds x spos, random; each chosen network measured)", "",
        "Both with the default `--trial-threads 1` (every trial one torch thread wherever it runs): local runs "
        "the trials one after another, Ray two at a time on the two cores; measurements one at a time on both.", "",
        "| executor | wall s | trials | load before | load after |", "|---|---|---|---|---|",
        f"| local | {lo['wall_s']:.1f} | {lo['trials']} | {la(lo['load_before'])} | {la(lo['load_after'])} |",
        f"| ray (one-machine, started by the command) | {ra['wall_s']:.1f} | {ra['trials']} | "
        f"{la(ra['load_before'])} | {la(ra['load_after'])} |", "",
        f"Ray / local: {ra['wall_s'] / lo['wall_s']:.2f}x (Ray's time includes starting a one-machine Ray inside the "
        "command, and on 2 cores the second trial competes with Ray's own processes). "
        f"Same trials and test accuracies on both: "
        f"{'yes' if r['same_trials_and_accuracies'] else 'NO'} (measured latencies differ by the protocol's noise: "
        "the measurements are separate runs).", "",
        "| trial | test acc local | measured ms local | test acc ray | measured ms ray |", "|---|---|---|---|---|"]
    for a, b in zip(lo["results"], ra["results"]):
        lines.append(f"| {a[0]} | {100 * a[1]:.2f}% | {a[2]:.3f} | {100 * b[1]:.2f}% | {b[2]:.3f} |")
    diffs = sorted(abs(b[2] / a[2] - 1) for a, b in zip(lo["results"], ra["results"]))
    lines += ["", f"The same networks timed under Ray and locally differ by {100 * diffs[len(diffs) // 2]:.0f}% "
              f"(median; at most {100 * diffs[-1]:.0f}%), each network timed once per executor, in "
              "separate runs minutes apart."]
    it = r.get("interleaved")
    if it:
        import statistics as st

        lo_m, ra_m = st.median(it["local"]), st.median(it["ray"])
        fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        lines += ["", "## Measurement under Ray vs in-process (interleaved)", "",
                  f"One proxyless/small network's ratio to the reference op on onnxruntime (the quantity measured ms "
                  f"is made of), timed {it['pairs']} times in this process and {it['pairs']} times in a Ray task "
                  "holding `device:x86-64-host`, alternately:", "",
                  f"- in-process: {fmt(it['local'])} (median {lo_m:.2f})",
                  f"- Ray task: {fmt(it['ray'])} (median {ra_m:.2f})", "",
                  f"Ray / in-process medians: {ra_m / lo_m:.3f}; spread of one executor's own timings: "
                  f"{100 * (max(it['local']) / min(it['local']) - 1):.0f}% in-process, "
                  f"{100 * (max(it['ray']) / min(it['ray']) - 1):.0f}% on Ray."]
    lines += ["", "## Per-task overhead", "",
              f"{ov['tasks']} empty tasks after a warm-up: {ov['ray_s']:.2f} s on Ray vs {ov['local_s'] * 1000:.2f} ms "
              f"in-process: **{ov['per_task_ms']:.2f} ms per task** (submit, schedule, run on a warm worker, return). "
              f"An 8 MB payload (a bundle's size) to a task and back: {ov['payload_8mb_round_trip_s'] * 1000:.0f} ms.",
              "", f"Cluster: {json.dumps(ov['cluster'])}", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
