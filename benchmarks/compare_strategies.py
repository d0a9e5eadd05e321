"""Benchmark: every strategy under the same target, budget, data and seed; random search is the baseline.

Runs ``edgenas search`` once per strategy (each a resumable run directory under --runs) and writes
benchmarks/results/strategies_<space>.{json,md}: test accuracy after retraining from scratch,
predicted and measured latency of the chosen architecture, wall time.

    python benchmarks/compare_strategies.py --space proxyless --target-ms 0.33
    python benchmarks/compare_strategies.py --space darts --target-ms 1.0 --budget 150 --batch-size 32 \
        --extra "--search-channels 8 --retrain-epochs 1 --top-k 2"

A strategy entry may carry its own flags, so variants of one strategy compare side by side:
``--strategies "darts,darts --partial-channels 4"``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="proxyless")
    ap.add_argument("--target-ms", type=float, required=True)
    ap.add_argument("--strategies", default="random,proxyless,darts,spos,enas",
                    help="comma-separated; an entry may add flags of its own: 'darts --partial-channels 4'")
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "compare"))
    ap.add_argument("--extra", default="", help="more edgenas search flags, quoted")
    args = ap.parse_args()
    rows = _finished_rows(args)
    for entry in args.strategies.split(","):
        strategy, *own = shlex.split(entry)
        label = " ".join([strategy, *own])
        slug = "".join(c if c.isalnum() else "-" for c in label.replace("--", "")).strip("-")
        out = Path(args.runs) / f"{args.space}-{slug}-{args.target_ms:g}ms-s{args.seed}"
        if any(r["strategy"] == label and r["run"] == str(out) for r in rows):
            print(f"{label}: done earlier (kept; delete its row or run dir to redo)", flush=True)
            continue
        cmd = [sys.executable, "-m", "edgenas", "search", "--device", "x86-64-host", "--backend", args.backend,
               "--space", args.space, "--target-ms", str(args.target_ms), "--strategy", strategy,
               "--budget", str(args.budget), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
               "--out", str(out), "--json", *shlex.split(args.extra), *own]
        if (out / "config.json").exists():
            cmd.append("--resume")
        start = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{label}: FAILED {p.stderr.strip()[-400:]}", flush=True)
            continue
        s = json.loads(p.stdout)
        c = s["chosen"]
        rows.append({"strategy": label, "test_acc": c["test_acc"], "arch_acc": c["arch_acc"],
                     "predicted_ms": c["predicted_ms"], "measured_ms": c["measured_ms"],
                     "meets_target": c["meets_target"], "steps_run": s["steps_run"],
                     "stopped_early": s["stopped_early"], "candidates": s["candidates_evaluated"],
                     "wall_s": round(time.perf_counter() - start, 1), "resumed": "--resume" in cmd,
                     "run": str(out), "arch": c["arch"]})
        print(f"{label}: test {100 * c['test_acc']:.2f}%, predicted {c['predicted_ms']:.4f} ms, "
              f"measured {c['measured_ms']} ms, {rows[-1]['wall_s']} s", flush=True)
        _write(rows, args)
    _write(rows, args)


def _finished_rows(args):
    """Rows of strategies already compared under the same settings: a resumed benchmark keeps their wall time."""
    path = OUT / f"strategies_{args.space}.json"
    if not path.exists():
        return []
    doc = json.loads(path.read_text())
    same = all(doc.get(k) == getattr(args, k) for k in ("target_ms", "budget", "batch_size", "seed", "extra"))
    return doc.get("rows", []) if same else []


def _write(rows, args):
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"date": time.strftime("%Y-%m-%d"), "space": args.space, "target_ms": args.target_ms,
           "budget": args.budget, "batch_size": args.batch_size, "seed": args.seed, "extra": args.extra, "rows": rows}
    (OUT / f"strategies_{args.space}.json").write_text(json.dumps(doc, indent=2) + "\n")
    base = next((r for r in rows if r["strategy"] == "random"), None)
    lines = [f"# Strategies on {args.space}/small, Fashion-MNIST, target {args.target_ms} ms "
             f"(x86-64-host / {args.backend}, batch 1) — {doc['date']}", "",
             f"Same budget for all: {args.budget} weight steps x batch {args.batch_size}, seed {args.seed}, "
             "then the top candidates retrained from scratch with one protocol"
             f"{' (' + args.extra + ')' if args.extra else ''}. A measured latency up to 5% over the target "
             "counts as met (the protocol's between-process noise here; `--tolerance` in `edgenas search`).", "",
             "| strategy | test acc | vs random | predicted ms | measured ms | meets target | steps | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = f"{100 * (r['test_acc'] - base['test_acc']):+.2f} pt" if base else "-"
        m = f"{r['measured_ms']:.4f}" if r["measured_ms"] is not None else "-"
        lines.append(f"| {r['strategy']} | {100 * r['test_acc']:.2f}% | {d} | {r['predicted_ms']:.4f} | {m} | "
                     f"{'yes' if r['meets_target'] else 'NO'} | {r['steps_run']}{' (early stop)' if r['stopped_early'] else ''} "
                     f"| {r['wall_s']}{' (resumed)' if r.get('resumed') else ''} |")
    (OUT / f"strategies_{args.space}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
