"""Search quality on NAS-Bench-201 with real device latency (HW-NAS-Bench-360).

For each of the four device/runtime rows and targets at the 10th/25th/50th latency percentile,
every black-box strategy runs SEEDS times for 1,000 queries; the regret after 100 / 300 / 1,000
queries is read off the same runs. Two latency modes: exact (the search sees the true latency)
and realistic (--fit-n 100: an additive model fitted on 100 measured networks, with the safety
margin of ``edgenas.bench.nb201``). Results are cached per (row, target, mode, strategy) in
results/search_quality.json, so an interrupted run resumes; results/search_quality.md is
rewritten from the cache each time.

    python benchmarks/search_quality.py --hwnasbench PATH/TO/dataset.parquet [--seeds 20]
        [--strategies random,evolution,local,gp-ei,reinforce] [--modes exact,fit100,fit100-verify10]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgenas.bench import nb201, sources
from edgenas.process import prefer_passive_openmp

prefer_passive_openmp()  # before torch is imported (the REINFORCE controller), as the edgenas command does

ROWS = ["pi5-litert", "pi5-onnx", "pi5-torchmobile", "pixel-litert"]
QUANTILES = [0.1, 0.25, 0.5]
# mode -> (fit_n, verify_k, margin_quantile)
MODES = {"exact": (0, 0, 0.95), "fit100": (100, 0, 0.95), "fit100-verify10": (100, 10, 0.5)}
CHECK = [100, 300, 1000]
RESULTS = Path(__file__).resolve().parent / "results"
CURVE_POINTS = np.unique(np.round(np.logspace(0, 3, 31)).astype(int))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hwnasbench", default=os.environ.get(sources.ENV))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--strategies", default="random,evolution,local,gp-ei,reinforce")
    ap.add_argument("--modes", default="exact,fit100")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cache_path = RESULTS / "search_quality.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {"runs": {}}
    if not a.report_only:
        acc = sources.load_accuracy("hwnas:cifar100", a.hwnasbench)
        for row in a.rows.split(","):
            table = nb201.Table(acc, sources.load_latency(f"hwnas:{row}", a.hwnasbench))
            for q in QUANTILES:
                target = table.target_for_quantile(q)
                for mode in a.modes.split(","):
                    for s in a.strategies.split(","):
                        key = f"{row}|{q}|{mode}|{s}"
                        old = cache["runs"].get(key)
                        if old and old["seeds"] >= a.seeds and old["queries"] >= a.queries:
                            continue
                        t0 = time.time()
                        fit_n, verify_k, mq = MODES[mode]
                        res = nb201.run_bench(table, target, [s], a.queries, a.seeds, fit_n=fit_n,
                                              margin_quantile=mq, verify_k=verify_k)
                        curve = res.curves[s]
                        pts = CURVE_POINTS[CURVE_POINTS <= a.queries]
                        mean = np.nanmean(curve, axis=0)
                        half = 1.96 * np.nanstd(curve, axis=0) / np.sqrt(np.isfinite(curve).sum(0).clip(1))
                        cache["runs"][key] = {
                            "row": row, "quantile": q, "mode": mode, "strategy": s, "target_ms": target,
                            "optimum": res.optimum, "optimum_arch": res.optimum_arch, "seeds": a.seeds,
                            "queries": a.queries, "summary": res.strategies[s], "seconds": round(time.time() - t0, 1),
                            "curve_q": pts.tolist(),
                            "curve_mean": [float(mean[i - 1]) for i in pts],
                            "curve_ci": [float(half[i - 1]) for i in pts]}
                        cache["meta"] = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                         "machine": f"{platform.machine()} {platform.node()}, "
                                                    f"{os.cpu_count()} cores (shared)", "python": sys.version.split()[0]}
                        RESULTS.mkdir(exist_ok=True)
                        cache_path.write_text(json.dumps(nb201_clean(cache), indent=1))
                        print(f"{key}: {cache['runs'][key]['summary']['at']['300']} "
                              f"({cache['runs'][key]['seconds']} s)", flush=True)
    write_report(cache)


def nb201_clean(obj):
    from edgenas.io import json_safe

    return json_safe(obj)


def _fmt(v, std=None):
    if v is None:
        return "n/a"
    return f"{v:.2f}" if std is None else f"{v:.2f} ± {std:.2f}"


def write_report(cache):
    runs = cache["runs"]
    strategies = sorted({r["strategy"] for r in runs.values()}, key=lambda s: (s != "random", s))
    meta = cache.get("meta", {})
    lines = ["# Search quality on NAS-Bench-201 with real device latency", "",
             f"Generated by `benchmarks/search_quality.py` ({meta.get('date', '?')}, {meta.get('machine', '?')}). "
             "Data: HW-NAS-Bench-360 (CIFAR-100 test accuracy of NAS-Bench-201, median batch-1 latency), "
             "read from the user's copy; nothing of it is shipped.", "",
             "Regret = constrained optimum − true accuracy of the pick (points), mean ± std over seeds; the pick "
             "after q queries is the most accurate architecture queried so far. Targets are the 10/25/50th "
             "percentiles of true latency over connected architectures. `feas` = share of picks whose *true* "
             "latency meets the target. `q≤0.5` = median queries until a feasible pick within 0.5 points "
             "(share of seeds that got there). *fit100*: the search sees only an additive latency model fitted "
             "on 100 random measured networks and a target tightened by the 95th percentile of the model's "
             "5-fold CV ratio true/predicted (`margin`).", ""]
    titles = {"exact": "Exact latency",
              "fit100": "Realistic: latency model fitted on 100 nets (--fit-n 100), margin = CV 95th pct",
              "fit100-verify10": "Realistic + check: --fit-n 100 --verify-k 10 (top 10 measured before the pick), "
                                 "margin = median CV ratio"}
    for mode in MODES:
        mode_runs = [r for r in runs.values() if r["mode"] == mode]
        if not mode_runs:
            continue
        lines += [f"## {titles[mode]}", "",
                  "| row | target ms (pct) | optimum % | strategy | seeds | regret@100 | regret@300 | regret@1000 | feas@300 | q≤0.5 | margin |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in ROWS:
            for q in QUANTILES:
                for s in strategies:
                    r = runs.get(f"{row}|{q}|{mode}|{s}")
                    if not r:
                        continue
                    at = r["summary"]["at"]
                    cells = [_fmt(at[str(c)]["regret_mean"], at[str(c)]["regret_std"]) if str(c) in at else "n/a"
                             for c in CHECK]
                    med = r["summary"]["within_0.5_median_queries"]
                    within = f"{med:.0f} ({100 * r['summary']['within_0.5_share']:.0f}%)" if med else \
                        f"never ({100 * r['summary']['within_0.5_share']:.0f}%)"
                    feas = at.get("300", {}).get("feasible_share")
                    lines.append(f"| {row} | {r['target_ms']:.3f} ({int(100 * q)}th) | {r['optimum']:.2f} | {s} | "
                                 f"{r['seeds']} | {' | '.join(cells)} | {100 * feas:.0f}% | {within} | "
                                 f"{r['summary']['margin_mean']:.2f} |")
        lines.append("")
    lines += verdict(runs, strategies)
    (RESULTS / "search_quality.md").write_text("\n".join(lines) + "\n")
    plot(runs, strategies)


def verdict(runs, strategies):
    out = ["## Against the issue's bar", ""]
    for mode in MODES:
        for row in ROWS:
            for q in QUANTILES:
                rs = {s: runs.get(f"{row}|{q}|{mode}|{s}") for s in strategies}
                rs = {s: r for s, r in rs.items() if r and r["summary"]["at"]["300"]["regret_mean"] is not None}
                if not rs:
                    continue
                best = min(rs, key=lambda s: rs[s]["summary"]["at"]["300"]["regret_mean"])
                b = rs[best]["summary"]["at"]["300"]
                text = f"- {mode} {row} {int(100 * q)}th: best@300 **{best}** {b['regret_mean']:.2f}"
                if "random" in rs and best != "random":
                    rnd = rs["random"]["summary"]["at"]["300"]
                    gap = rnd["regret_mean"] - b["regret_mean"]
                    spread = max(b["regret_std"], rnd["regret_std"])
                    text += f" vs random {rnd['regret_mean']:.2f} (gap {gap:.2f}, larger std {spread:.2f}: " \
                            f"{'beats by more than the spread' if gap > spread else 'NOT beyond the spread'})"
                text += f"; feasible {100 * b['feasible_share']:.0f}%"
                out.append(text)
    return out + [""]


def plot(runs, strategies):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for mode in MODES:
        if not any(r["mode"] == mode for r in runs.values()):
            continue
        fig, axes = plt.subplots(len(ROWS), len(QUANTILES), figsize=(12, 12), sharex=True)
        for i, row in enumerate(ROWS):
            for j, q in enumerate(QUANTILES):
                ax = axes[i][j]
                for s in strategies:
                    r = runs.get(f"{row}|{q}|{mode}|{s}")
                    if not r:
                        continue
                    x, m, h = np.array(r["curve_q"]), np.array(r["curve_mean"], float), np.array(r["curve_ci"], float)
                    ax.plot(x, m, label=s)
                    ax.fill_between(x, m - h, m + h, alpha=0.2)
                ax.axhline(0.5, color="grey", lw=0.8, ls="--")
                ax.set_xscale("log")
                ax.set_yscale("symlog", linthresh=0.1)
                ax.set_title(f"{row}, {int(100 * q)}th pct", fontsize=9)
                if i == len(ROWS) - 1:
                    ax.set_xlabel("queries")
                if j == 0:
                    ax.set_ylabel("regret (points)")
        axes[0][0].legend(fontsize=7, title="mean, 95% CI", title_fontsize=7)
        fig.tight_layout()
        fig.savefig(RESULTS / f"search_quality_{mode}.png", dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    main()
