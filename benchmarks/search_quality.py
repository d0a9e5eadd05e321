"""Search quality on NAS-Bench-201 with real device latency (HW-NAS-Bench-360).

For each of the four device/runtime rows and targets at the 10th/25th/50th latency percentile,
every black-box strategy runs SEEDS times for 1,000 queries; the regret after 100 / 300 / 1,000
queries is read off the same runs. Latency modes: exact (the search sees the true latency) and
realistic (``edgenas.bench.fitted``): ``fit100``, the model ``edgenas tables fit`` fits on 100 measured
networks with the conformal 95% margin learned from their held-out error; ``fit100-verify10``, the
same model exploring further and at most 10 candidates measured before the pick. The realistic
settings were chosen on seeds 0-19; ``--seed0 1000`` reruns them on a fresh block of seeds.
Results are cached per (row, target, mode, strategy, seed block) in results/search_quality.json,
so an interrupted run resumes; results/search_quality.md is rewritten from the cache each time.

    python benchmarks/search_quality.py --hwnasbench PATH/TO/dataset.parquet [--seeds 20]
        [--strategies random,evolution,local,gp-ei,reinforce] [--modes exact,fit100,fit100-verify10]
        [--seed0 1000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    # one BLAS thread: the GP's small solves are 10x slower when threads fight over shared cores
    os.environ.setdefault(_var, "1")
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
# mode -> (fit_n, verify_k, margin_quantile, active, local_n)
MODES = {"exact": (0, 0, 0.95, 0, 0), "fit100": (100, 0, 0.95, 0, 0), "fit100-verify10": (100, 10, 0.95, 0, 0),
         "fit100-active": (100, 10, 0.95, 10, 0)}
# realistic entries computed before this method (the additive stand-in model) are recomputed
METHOD = "tables-fit+conformal"
# an active-mode entry computed by an older version of the active learner is recomputed
METHODS = {"fit100-active": "tables-fit+conformal+active-v2"}
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
    ap.add_argument("--seed0", type=int, default=0, help="first seed (0: the block the settings were tuned on)")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cache_path = RESULTS / "search_quality.json"
    cache = load_cache(cache_path)
    if not a.report_only:
        acc = sources.load_accuracy("hwnas:cifar100", a.hwnasbench)
        for row in a.rows.split(","):
            src = f"hwnas:{row}"
            table = nb201.Table(acc, sources.load_latency(src, a.hwnasbench),
                                sources.load_representatives(src, a.hwnasbench))
            for q in QUANTILES:
                target = table.target_for_quantile(q)
                for mode in a.modes.split(","):
                    for s in a.strategies.split(","):
                        key = f"{row}|{q}|{mode}|{s}" + (f"|{a.seed0}" if a.seed0 else "")
                        old = cache["runs"].get(key)
                        if old and old["seeds"] >= a.seeds and old["queries"] >= a.queries \
                                and (mode == "exact" or old.get("method") == METHODS.get(mode, METHOD)):
                            continue
                        t0 = time.time()
                        fit_n, verify_k, mq, active, local_n = MODES[mode]
                        res = nb201.run_bench(table, target, [s], a.queries, a.seeds, fit_n=fit_n,
                                              margin_quantile=mq, verify_k=verify_k, seed0=a.seed0,
                                              active=active, local_n=local_n)
                        curve = res.curves[s]
                        pts = CURVE_POINTS[CURVE_POINTS <= a.queries]
                        mean = np.nanmean(curve, axis=0)
                        half = 1.96 * np.nanstd(curve, axis=0) / np.sqrt(np.isfinite(curve).sum(0).clip(1))
                        entry = {
                            "row": row, "quantile": q, "mode": mode, "strategy": s, "target_ms": target,
                            "seed0": a.seed0, **({"method": METHODS.get(mode, METHOD)} if fit_n else {}),
                            "optimum": res.optimum, "optimum_arch": res.optimum_arch, "seeds": a.seeds,
                            "queries": a.queries, "summary": res.strategies[s], "seconds": round(time.time() - t0, 1),
                            "curve_q": pts.tolist(),
                            "curve_mean": [float(mean[i - 1]) for i in pts],
                            "curve_ci": [float(half[i - 1]) for i in pts]}
                        meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                "machine": f"{platform.machine()} {platform.node()}, {os.cpu_count()} cores (shared)",
                                "python": sys.version.split()[0]}
                        cache = save_run(cache_path, key, entry, meta)
                        print(f"{key}: {cache['runs'][key]['summary']['at']['300']} "
                              f"({cache['runs'][key]['seconds']} s)", flush=True)
    write_report(load_cache(cache_path))


def load_cache(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}


def save_run(path: Path, key: str, entry: dict, meta: dict) -> dict:
    """Merge one result into the cache file under a lock, re-reading it first: several runs of this script
    (e.g. one per seed block) may share the file."""
    import fcntl
    import tempfile

    path.parent.mkdir(exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "edgenas-search_quality.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = load_cache(path)
        cache["runs"][key] = entry
        cache["meta"] = meta
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(nb201_clean(cache), indent=1))
        tmp.replace(path)
    return cache


def nb201_clean(obj):
    from edgenas.io import json_safe

    return json_safe(obj)


def _fmt(v, std=None):
    if v is None:
        return "n/a"
    return f"{v:.2f}" if std is None else f"{v:.2f} ± {std:.2f}"


def _sections(runs):
    """(mode, seed0) pairs present, exact first, tuning block before the fresh one."""
    have = {(r["mode"], r.get("seed0", 0)) for r in runs.values()}
    return [(m, s0) for m in MODES for s0 in sorted({s0 for mm, s0 in have if mm == m})]


def _get(runs, row, q, mode, s, seed0):
    return runs.get(f"{row}|{q}|{mode}|{s}" + (f"|{seed0}" if seed0 else ""))


def _seeds(seed0, n):
    return f"seeds {seed0}-{seed0 + n - 1}"


TITLES = {"exact": "Exact latency",
          "fit100": "Realistic: `--fit-n 100`, margin = conformal 95% quantile of held-out ratios, no check",
          "fit100-verify10": "Realistic + check: `--fit-n 100 --verify-k 10` (at most 10 candidates measured "
                             "before the pick)",
          "fit100-active": "Realistic + active learning: `--fit-n 100 --verify-k 10 --active 10` (up to 10 "
                           "measurements during the search, each refitting the model; then at most 10 checks)"}

METHOD_TEXT = (
    "*Realistic modes* (`edgenas.bench.fitted`). Per seed, 100 random distinct networks are measured (their "
    "table latency) and the model `edgenas tables fit` fits is fitted on them (`fit_wholenet` defaults: at 100 "
    "networks the additive model over executed edges, dead-edge pruning chosen by CV); the search sees only its "
    "predictions. **Margin**: each of the 100 networks is predicted by a model fitted without it (5-fold, same "
    "level and pruning); the 100 held-out ratios measured/predicted are a split-conformal calibration set, and "
    "nothing else is looked at. *fit100* divides the target by their conformal 95% quantile (the 96th smallest "
    "of 100; `margin` column, mean over seeds). *fit100-verify10* lets the search explore up to target / their "
    "conformal {explore:.0%} quantile (the 5th smallest: every network with at least a {explore:.0%} chance of "
    "being feasible; see *Tuning* below), then measures at most 10 queried "
    "candidates, each time the one with the largest P(feasible) x (accuracy - best verified accuracy), where "
    "P(feasible) = #{{ratios <= target / predicted}} / 101, and picks the most accurate one whose measurement "
    "meets the target. `meas` = extra measurements at 300 queries, mean (max); `verified` = share of picks that "
    "met the target on their own measurement (the others fall back to the most accurate candidate with "
    "P(feasible) >= 95%). HW-NAS-Bench-360 measured one network per NAS-Bench-201 isomorphism class and gives "
    "that latency to all 15,625 members (`rep_arch_idx`), even where a member runs other ops; the model "
    "therefore predicts each architecture as its representative, and one measurement settles every candidate "
    "of a class.")

TUNING_TEXT = (
    "*Tuning* (the only setting chosen by looking at results): the verify mode's exploration quantile, among "
    "1%, 5% and 25%, on seeds 0-9 (300 queries, k = 10, 12 cells, before two refinements of the check's "
    "fallback). Mean regret@300 over the 12 cells / worst cell / cells ≤ 0.5: gp-ei 0.92 / 7.69 / 9, "
    "**0.16 / 0.81 / 11**, 0.25 / 0.60 / 10; evolution 0.36 / 0.67 / 9, 0.46 / 1.06 / 7, 0.58 / 1.00 / 5; "
    "random 0.85, 0.87, 0.86. 1% lets the search fill the top of its list with networks the model "
    "under-predicts (gp-ei's worst cell, Pixel 10th, averages one seed far off); 25% cuts the "
    "optimum off more often. The 95% coverage of the no-check margin and k = 10 were fixed beforehand. "
    "The tables below rerun everything on seeds 0-19 and on the fresh block 1000-1019.")

ACTIVE_TEXT = (
    "*fit100-active* (`--active 10`, `nb201.ActiveLearner`): the same model, margin and final check, but the "
    "team also measures during the search: after every {every} queries (until 10 are spent) the queried "
    "candidate of largest P(feasible) x (accuracy - best measured-feasible accuracy so far, else the lowest "
    "queried), i.e. first the likeliest pick, then more accurate networks whose feasibility is uncertain. Each "
    "measurement goes back into the fit: the model is refitted on the 100 + m measured networks (same level and "
    "pruning as the first fit), its held-out ratios (5-fold) recomputed from them alone, and the search "
    "continues against the new predictions and search target. A measured network settles its whole "
    "isomorphism class for the search (it sees the measurement, not a prediction, so a class measured over the "
    "target drops out even where the margin would let it in); the 100 fitted networks settle theirs from the "
    "start, and the final check (at most 10 more) needs no measurement for a settled candidate. `meas` counts "
    "every extra measurement behind the pick (search + check), `active` those made during the search.")

ACTIVE_TUNING_TEXT = (
    "*Tuning of the active mode* (seeds 0-9 only, gp-ei, 300 queries; the budget of 10 and one measurement "
    "every 20 queries were set beforehand to match the check's k = 10): mean regret@300 with the plain learner "
    "above vs variants. A first version that refitted without settling measured classes: Pixel 10th 0.71 "
    "(check only: 0.81), Pi 5 ONNX 10th 0.00 (check only: 0.15). With classes settled: Pixel 10th 0.73, "
    "Pi 5 LiteRT 50th 0.23. Tried and dropped: expected improvement weighted by P(feasible) (constrained EI; "
    "Pixel 10th 0.86, LiteRT 50th 0.30), 20 measurements one every 10 queries (0.65, 0.40), exploring to the "
    "1% quantile (Pixel 10th 0.99), a margin from only the 40 measured networks predicted nearest the target "
    "(`--local-margin 40`, first version: Pixel 10th 1.18 vs 0.71). Caveat: every run of this paragraph with "
    "classes settled had a bug since fixed (a measured class was shown to the search at measurement x margin "
    "instead of / margin, so classes measured up to ~1.2-1.4x the target stayed in it); the variants were not "
    "rerun after the fix, the tables below are all with it. Nothing was tuned on seeds 10-19 or "
    "2000-2019; the tables below run seeds 0-19 and the fresh block 2000-2019 (never used before), 300 "
    "queries only (1,000-query runs did not fit the time on the shared machine).")


def write_report(cache):
    # entries of an older method (a run interrupted before recomputing them) are not reported
    runs = {k: r for k, r in cache["runs"].items()
            if r["mode"] == "exact" or r.get("method") == METHODS.get(r["mode"], METHOD)}
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
             "(share of seeds that got there).", "", METHOD_TEXT.format(explore=nb201.EXPLORE), "", TUNING_TEXT, "",
             ACTIVE_TEXT.format(every=nb201.ACTIVE_EVERY), "", ACTIVE_TUNING_TEXT, ""]
    for mode, seed0 in _sections(runs):
        sec = [r for r in runs.values() if r["mode"] == mode and r.get("seed0", 0) == seed0]
        n = max(r["seeds"] for r in sec)
        block = "" if mode == "exact" else (f", {_seeds(seed0, n)}" +
                                            (" (tuned on)" if seed0 == 0 else " (fresh, not tuned on)"))
        check, active = MODES[mode][1] > 0, MODES[mode][3] > 0
        lines += [f"## {TITLES[mode]}{block}", "",
                  "| row | target ms (pct) | optimum % | strategy | seeds | regret@100 | regret@300 | regret@1000 | "
                  "feas@300 | q≤0.5 | margin |" + (" meas@300 | verified@300 |" if check else "")
                  + (" active@300 | meas@1000 | active@1000 |" if active else ""),
                  "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if check else "")
                  + ("---|---|---|" if active else "")]
        for row in ROWS:
            for q in QUANTILES:
                for s in strategies:
                    r = _get(runs, row, q, mode, s, seed0)
                    if not r:
                        continue
                    at = r["summary"]["at"]
                    cells = [_fmt(at[str(c)]["regret_mean"], at[str(c)]["regret_std"]) if str(c) in at else "n/a"
                             for c in CHECK]
                    med = r["summary"]["within_0.5_median_queries"]
                    within = f"{med:.0f} ({100 * r['summary']['within_0.5_share']:.0f}%)" if med else \
                        f"never ({100 * r['summary']['within_0.5_share']:.0f}%)"
                    a300 = at.get("300", {})
                    extra = (f" {a300.get('measurements_mean', 0):.1f} ({a300.get('measurements_max', 0)}) | "
                             f"{100 * a300.get('verified_share', 0):.0f}% |") if check else ""
                    a1k = at.get("1000", {})
                    if active:
                        extra += f" {a300.get('active_mean', 0):.1f} |" + (
                            f" {a1k['measurements_mean']:.1f} ({a1k['measurements_max']}) | {a1k['active_mean']:.1f} |"
                            if "active_mean" in a1k else " n/a | n/a |")
                    lines.append(f"| {row} | {r['target_ms']:.3f} ({int(100 * q)}th) | {r['optimum']:.2f} | {s} | "
                                 f"{r['seeds']} | {' | '.join(cells)} | {100 * a300['feasible_share']:.0f}% | "
                                 f"{within} | {r['summary']['margin_mean']:.3f} |{extra}")
        lines.append("")
    lines += verdict(runs, strategies)
    lines += active_vs_check(runs, strategies)
    lines += beats_random(runs, strategies)
    (RESULTS / "search_quality.md").write_text("\n".join(lines) + "\n")
    plot(runs, strategies)


def verdict(runs, strategies):
    out = ["## Against the issue's bar", "",
           "Exact: best mean regret at 300 ≤ 0.3 and beats random by more than the spread. Realistic: the best "
           "strategy at 300 (lowest mean regret among those with ≥ 95% feasible picks) has regret ≤ 0.5.", ""]
    tally = []
    for mode, seed0 in _sections(runs):
        met_cells = cells = firm = 0
        for row in ROWS:
            for q in QUANTILES:
                rs = {s: _get(runs, row, q, mode, s, seed0) for s in strategies}
                rs = {s: r for s, r in rs.items() if r and r["summary"]["at"]["300"]["regret_mean"] is not None}
                if not rs:
                    continue
                ok = {s: r for s, r in rs.items() if r["summary"]["at"]["300"]["feasible_share"] >= 0.95}
                pool = ok if mode != "exact" and ok else rs
                best = min(pool, key=lambda s: pool[s]["summary"]["at"]["300"]["regret_mean"])
                b = rs[best]["summary"]["at"]["300"]
                tag = mode + (f" (seeds from {seed0})" if seed0 else "")
                text = f"- {tag} {row} {int(100 * q)}th: best@300 **{best}** {b['regret_mean']:.2f}"
                if "random" in rs and best != "random":
                    rnd = rs["random"]["summary"]["at"]["300"]
                    gap = rnd["regret_mean"] - b["regret_mean"]
                    spread = max(b["regret_std"], rnd["regret_std"])
                    text += f" vs random {rnd['regret_mean']:.2f} (gap {gap:.2f}, larger std {spread:.2f}: " \
                            f"{'beats by more than the spread' if gap > spread else 'NOT beyond the spread'})"
                text += f"; feasible {100 * b['feasible_share']:.0f}%"
                if mode != "exact":
                    met = b["feasible_share"] >= 0.95 and b["regret_mean"] <= 0.5
                    text += f": {'met' if met else 'NOT met'}"
                    met_cells, cells = met_cells + met, cells + 1
                    firm += met and b["regret_mean"] <= 0.35
                out.append(text)
        if cells:
            tally.append(f"- **{mode}, {_seeds(seed0, max(r['seeds'] for r in runs.values() if r['mode'] == mode))}"
                         f": met on {met_cells} of {cells} cells** (with regret ≤ 0.35: {firm})")
    return out[:4] + tally + [""] + out[4:] + [""]


def _best(runs, strategies, row, q, mode, seed0):
    """(strategy, its regret@300 summary) of lowest mean regret among those with >= 95% feasible picks."""
    rs = {s: _get(runs, row, q, mode, s, seed0) for s in strategies}
    rs = {s: r["summary"]["at"]["300"] for s, r in rs.items() if r}
    rs = {s: a for s, a in rs.items() if a["regret_mean"] is not None}
    ok = {s: a for s, a in rs.items() if a["feasible_share"] >= 0.95} or rs
    if not ok:
        return None
    best = min(ok, key=lambda s: ok[s]["regret_mean"])
    return best, ok[best]


ACTIVE_FINDINGS = (
    "Reading (2026-12-01, loaded shared 2-core VM; regret is deterministic per seed, only the seconds are noisy): "
    "active learning meets the bar on 12 of 12 cells on seeds 0-19 and on the fresh block 2000-2019. It "
    "helps most where the model's error near the target decided the pick (Pi 5 ONNX 10th: 0.27 / 0.49 -> 0.06 "
    "/ 0.05; Pixel 10th: 0.54 / 0.34 -> 0.25 / 0.46), elsewhere it matches the check alone within the spread, "
    "and it costs more measurements (2.4-17.6 on average per run instead of 1.0-8.8, at most 20). Pixel 10th "
    "is still the weak cell and not within 0.35 on the fresh block: there the first model over-predicts the "
    "optimum's class (true 0.88 x target) by about 10%, so it starts outside the search on 12 of the 40 seeds, "
    "and the refits move it in on some seeds and out on others (a 100-network additive model cannot separate "
    "it from the classes just over the target). Evolution and local search ran after gp-ei and random; the "
    "1,000-query column was not run for this mode (time).")


def active_vs_check(runs, strategies):
    """Side by side, the best strategy at 300 queries with the check alone and with active learning."""
    blocks = [("fit100-verify10", 0), ("fit100-verify10", 1000), ("fit100-active", 0), ("fit100-active", 2000)]
    blocks = [b for b in blocks if any(r["mode"] == b[0] and r.get("seed0", 0) == b[1] for r in runs.values())]
    if not any(m == "fit100-active" for m, _ in blocks):
        return []
    out = ["## Check alone vs active learning (best strategy at 300 queries, ≥ 95% feasible)", "",
           "Regret mean ± std, then extra measurements behind the pick, mean (max). Strategies run per block "
           "are listed under each section above (a block without local/evolution compares fewer strategies).", "",
           "| row | target | " + " | ".join(f"{m}, {_seeds(s0, 20)}" for m, s0 in blocks) + " |",
           "|---|---|" + "---|" * len(blocks)]
    for row in ROWS:
        for q in QUANTILES:
            cells = []
            for m, s0 in blocks:
                b = _best(runs, strategies, row, q, m, s0)
                cells.append("n/a" if b is None else
                             f"{b[0]} {_fmt(b[1]['regret_mean'], b[1]['regret_std'])}, "
                             f"{b[1].get('measurements_mean', 0):.1f} ({b[1].get('measurements_max', 0)})")
            out.append(f"| {row} | {int(100 * q)}th | " + " | ".join(cells) + " |")
    return out + ["", ACTIVE_FINDINGS, ""]


def beats_random(runs, strategies):
    """The issue's "beats random at equal queries on every row, by more than the seeds' spread", on the exact
    table: at each of 100 / 300 / 1,000 queries, the best strategy (lowest mean regret) beats random when
    random's mean regret minus its mean regret exceeds the larger of the two standard deviations over seeds."""
    out = ["## Exact latency: does the best strategy beat random by more than the seeds' spread?", "",
           "Definition: at q queries, best = the strategy of lowest mean regret; it beats random when "
           "mean(random) − mean(best) > max(std(best), std(random)) (std over the seeds, so stricter than a "
           "pooled std). A row holds when that is so at all three targets.", "",
           "| row | target | " + " | ".join(f"@{q}: best, gap vs larger std" for q in CHECK) + " |",
           "|---|---|" + "---|" * len(CHECK)]
    summary = []
    for row in ROWS:
        held = {q: 0 for q in CHECK}
        for pct in QUANTILES:
            rs = {s: _get(runs, row, pct, "exact", s, 0) for s in strategies}
            rs = {s: r for s, r in rs.items() if r}
            if "random" not in rs:
                continue
            cells = []
            for q in CHECK:
                at = {s: r["summary"]["at"].get(str(q)) for s, r in rs.items()}
                at = {s: a for s, a in at.items() if a and a["regret_mean"] is not None}
                best = min(at, key=lambda s: at[s]["regret_mean"])
                gap = at["random"]["regret_mean"] - at[best]["regret_mean"]
                spread = max(at[best]["regret_std"], at["random"]["regret_std"])
                held[q] += gap > spread
                cells.append(f"{best} {at[best]['regret_mean']:.2f}, {gap:.2f} vs {spread:.2f} "
                             f"{'**yes**' if gap > spread else 'no'}")
            out.append(f"| {row} | {int(100 * pct)}th | " + " | ".join(cells) + " |")
        summary.append(f"- **{row}**: " + ", ".join(f"@{q}: {'holds' if held[q] == len(QUANTILES) else 'does not hold'}"
                                                     f" ({held[q]}/{len(QUANTILES)} targets)" for q in CHECK))
    return out + [""] + summary + [""]


def plot(runs, strategies):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for mode, seed0 in _sections(runs):
        fig, axes = plt.subplots(len(ROWS), len(QUANTILES), figsize=(12, 12), sharex=True)
        for i, row in enumerate(ROWS):
            for j, q in enumerate(QUANTILES):
                ax = axes[i][j]
                for s in strategies:
                    r = _get(runs, row, q, mode, s, seed0)
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
        fig.savefig(RESULTS / f"search_quality_{mode}{f'-s{seed0}' if seed0 else ''}.png", dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    main()
