"""``edgenas sweep``: targets x seeds x strategies as one resumable experiment, and its combined report.

A sweep directory holds:

    sweep.json          the sweep's settings (a restarted sweep must match them)
    runs/<trial>/       each trial's search run directory (resumable, ``edgenas.search.pipeline``)
    trials/<trial>.json one file per finished trial, written atomically once it is searched and measured
    report.json/.md     every finished trial, the accuracy vs measured latency front, per-strategy spread
    front.png           the plot of both

A trial is finished when its file exists; a restarted sweep runs only the others. Trials run as
executor tasks: the search and retraining on any CPU (``Resources(num_cpus=1)``), then the chosen
network's measurement on the node holding the device (``Resources(device=...)``), one at a time
per device. Ray Tune is not used: a trial here is one function call with a file as its result,
which the executor runs and these files resume, without Tune's own experiment state beside them.
Run directories are written where the task runs: a cluster of several hosts needs ``--out`` on a
shared filesystem for ``runs/`` to resume (the trial files and the report are written here).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from edgenas.errors import DeviceError, InputError
from edgenas.executors import Executor, LocalExecutor, Resources
from edgenas.io import atomic_write_text
from edgenas.search.pipeline import SearchConfig, pareto


@dataclass(frozen=True)
class Trial:
    target_ms: float
    seed: int
    strategy: str

    @property
    def id(self) -> str:
        return f"{self.strategy}-t{self.target_ms:g}ms-s{self.seed}"


@dataclass
class SweepPlan:
    """The grid and the search settings every trial shares (``base``: target, seed and strategy are replaced)."""

    base: SearchConfig
    targets: list[float]
    seeds: list[int]
    strategies: list[str]
    trial_threads: int = 1  # torch threads of every trial, wherever it runs: results do not depend on the node

    def trials(self) -> list[Trial]:
        return [Trial(t, s, g) for t in self.targets for g in self.strategies for s in self.seeds]

    def config(self, trial: Trial) -> SearchConfig:
        # the sweep measures the chosen network itself, as a device task: the search never measures
        return replace(self.base, target_ms=trial.target_ms, seed=trial.seed, strategy=trial.strategy, measure=False)

    def as_dict(self) -> dict:
        return json.loads(json.dumps({"base": asdict(self.base), "targets": self.targets, "seeds": self.seeds,
                                      "strategies": self.strategies, "trial_threads": self.trial_threads}))


@dataclass
class SearchTask:
    trial: Trial
    config: SearchConfig
    run_dir: str
    threads: int


@dataclass
class MeasureTask:
    trial: Trial
    config: SearchConfig
    arch: dict


def search_trial(task: SearchTask) -> dict:
    """Search and retrain one trial (resuming its run directory); the numbers the report needs."""
    import torch

    from edgenas.search.pipeline import run_search

    before = torch.get_num_threads()
    torch.set_num_threads(task.threads)  # a float sum over other thread counts can round differently
    try:
        s = run_search(task.config, Path(task.run_dir), resume=True)
    finally:
        torch.set_num_threads(before)
    c = s["chosen"]
    return {"arch": c["arch"], "predicted_ms": c["predicted_ms"], "test_acc": c["test_acc"],
            "arch_acc": c["arch_acc"], "proxy_acc": c["proxy_acc"], "search_elapsed_s": s["elapsed_s"],
            "run": task.run_dir, "threads": task.threads}


def measure_trial(task: MeasureTask) -> dict:
    """Time the trial's chosen network on this machine, which must be the device (the search's own measurement)."""
    from edgenas.devices import get_profile
    from edgenas.latency.wholenet_store import search_predictor
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.networks import measure_networks
    from edgenas.spaces import create_space

    cfg = task.config
    ok, why = get_profile(cfg.device).matches_this_machine()
    if not ok:
        raise DeviceError(f"cannot measure {cfg.device} here: {why}")
    space = create_space(cfg.space, cfg.preset)
    predictor = search_predictor(cfg.device, cfg.backend, space, cfg.strategy, cfg.batch, cfg.threads)
    be = create_backend(cfg.backend, threads=predictor.sel.threads)
    m = measure_networks(be, space, [space.parse_arch(task.arch)], cfg.batch, source="sweep")[0]
    return {"measured_ms": predictor.measured_ms(m.stats.ref_ratio, m.stats.median_ms),
            "measured_raw_ms": m.stats.median_ms, "measured_rel_ci": m.stats.rel_ci}


class Sweep:
    """One sweep directory: its plan, its finished trials, and running the rest."""

    def __init__(self, out: Path, plan: SweepPlan, measure: bool = True):
        self.out, self.plan, self.measure = Path(out), plan, measure

    def trial_file(self, trial: Trial) -> Path:
        return self.out / "trials" / f"{trial.id}.json"

    def finished(self) -> dict[str, dict]:
        from edgenas.schemas import load_json_file

        done = {}
        for t in self.plan.trials():
            p = self.trial_file(t)
            if p.exists():
                done[t.id] = load_json_file(p, "sweep trial", f"delete {p} to run that trial again")
        return done

    def _open(self) -> None:
        from edgenas.schemas import load_json_file

        cfg = {**self.plan.as_dict(), "measure": self.measure}
        p = self.out / "sweep.json"
        if p.exists():  # the grid may grow (trials are named by target, seed, strategy); the settings may not
            old = load_json_file(p, "sweep settings", "choose another --out")
            keep = ("base", "measure", "trial_threads")
            if not isinstance(old, dict) or [old.get(k) for k in keep] != [cfg[k] for k in keep]:
                raise InputError(f"{self.out} holds a sweep with other search settings; rerun with the same flags "
                                 f"(targets, seeds and strategies may change) or choose another --out")
        atomic_write_text(p, json.dumps(cfg, indent=2) + "\n")

    def run(self, executor: Executor | None = None, on_trial: Callable[[str, dict | None, str], None] | None = None
            ) -> dict:
        """Run every unfinished trial; returns the report (also written). ``on_trial(id, result, error)``."""
        executor = executor or LocalExecutor()
        self._open()
        done = self.finished()
        todo = [t for t in self.plan.trials() if t.id not in done]
        lost: dict[str, str] = {}
        searched: list[tuple[Trial, dict]] = []
        tasks = [SearchTask(t, self.plan.config(t), str(self.out / "runs" / t.id), self.plan.trial_threads)
                 for t in todo]
        for d in executor.run(search_trial, tasks, Resources(num_cpus=self.plan.trial_threads)):
            t = todo[d.index]
            if not d.ok:
                lost[t.id] = f"search: {d.error}"
                if on_trial:
                    on_trial(t.id, None, lost[t.id])
            elif self.measure:
                searched.append((t, d.value))
            else:
                self._finish(t, d.value, on_trial)
        mtasks = [MeasureTask(t, self.plan.config(t), r["arch"]) for t, r in searched]
        for d in executor.run(measure_trial, mtasks, Resources(num_cpus=1, device=self.plan.base.device)):
            t, r = searched[d.index]
            if d.ok:
                self._finish(t, {**r, **d.value}, on_trial)
            else:
                lost[t.id] = f"measurement: {d.error}"
                if on_trial:
                    on_trial(t.id, None, lost[t.id])
        return write_report(self.out, self.plan, self.finished(), lost, self.measure)

    def _finish(self, t: Trial, result: dict, on_trial) -> None:
        record = {"trial": t.id, "target_ms": t.target_ms, "seed": t.seed, "strategy": t.strategy, **result}
        atomic_write_text(self.trial_file(t), json.dumps(record, indent=2) + "\n")
        if on_trial:
            on_trial(t.id, record, "")


def _spread(values: list[float]) -> dict:
    return {"n": len(values), "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1
            else 0.0, "min": min(values), "max": max(values)}


def summarize(plan: SweepPlan, done: dict[str, dict], lost: dict[str, str], measured: bool) -> dict:
    """The combined numbers: trials, the front over every target, per (strategy, target) spread over seeds."""
    trials = [done[t.id] for t in plan.trials() if t.id in done]
    lat = "measured_ms" if measured else "predicted_ms"
    front = pareto([(r[lat], r["test_acc"]) for r in trials])
    spread = []
    for g in plan.strategies:
        for tgt in plan.targets:
            rs = [r for r in trials if r["strategy"] == g and r["target_ms"] == tgt]
            if rs:
                spread.append({"strategy": g, "target_ms": tgt, "test_acc": _spread([r["test_acc"] for r in rs]),
                               "latency_ms": _spread([r[lat] for r in rs])})
    missing = [t.id for t in plan.trials() if t.id not in done]
    return {"latency": lat, "trials": trials, "front": [trials[i]["trial"] for i in front], "spread": spread,
            "finished": len(trials), "total": len(plan.trials()), "missing": missing,
            "lost": {k: v for k, v in lost.items() if k in missing},
            "device": plan.base.device, "backend": plan.base.backend, "space": plan.base.space,
            "preset": plan.base.preset, "data": plan.base.data}


def write_report(out: Path, plan: SweepPlan, done: dict, lost: dict, measured: bool) -> dict:
    rep = summarize(plan, done, lost, measured)
    rep["files"] = {"json": str(out / "report.json"), "markdown": str(out / "report.md"),
                    "plot": str(_plot(rep, out / "front.png")) if rep["trials"] else None}
    atomic_write_text(out / "report.json", json.dumps(rep, indent=2) + "\n")
    atomic_write_text(out / "report.md", _markdown(rep))
    return rep


def _plot(rep: dict, path: Path) -> Path:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgenas.io import atomic_write_bytes

    lat = rep["latency"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    strategies = sorted({r["strategy"] for r in rep["trials"]})
    colors = {g: f"C{i}" for i, g in enumerate(strategies)}
    markers = "osD^v<>pPX*h"
    targets = sorted({r["target_ms"] for r in rep["trials"]})
    for r in rep["trials"]:
        ax.scatter(r[lat], 100 * r["test_acc"], color=colors[r["strategy"]],
                   marker=markers[targets.index(r["target_ms"]) % len(markers)], s=36, alpha=0.8)
    front = [r for r in rep["trials"] if r["trial"] in rep["front"]]
    front.sort(key=lambda r: r[lat])
    ax.step([r[lat] for r in front], [100 * r["test_acc"] for r in front], where="post", color="k", lw=1,
            label="front (all targets)")
    for t in targets:
        ax.axvline(t, color="grey", ls=":", lw=0.8)
    for g in strategies:
        ax.scatter([], [], color=colors[g], label=g)
    ax.set_xlabel(f"{'measured' if lat == 'measured_ms' else 'predicted'} latency (ms)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs latency, every trial (marker: target)")
    ax.legend(fontsize=8)
    for j, s in enumerate(rep["spread"]):
        a = s["test_acc"]
        bx.errorbar(j, 100 * a["mean"], yerr=100 * a["std"], fmt="o", color=colors[s["strategy"]], capsize=3)
        bx.scatter([j, j], [100 * a["min"], 100 * a["max"]], color=colors[s["strategy"]], marker="_", s=80)
    bx.set_xticks(range(len(rep["spread"])), [f"{s['strategy']}\n{s['target_ms']:g} ms" for s in rep["spread"]],
                  fontsize=8)
    bx.set_ylabel("test accuracy (%): mean ± std, min/max over seeds")
    bx.set_title("spread across seeds")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _markdown(rep: dict) -> str:
    lat = "measured" if rep["latency"] == "measured_ms" else "predicted"
    lines = [f"# Sweep: {rep['device']} / {rep['backend']}, {rep['space']} {rep['preset']}, data {rep['data']}", "",
             f"{rep['finished']} of {rep['total']} trials finished; latency is {lat}.", "",
             f"| trial | target ms | strategy | seed | test acc | predicted ms | {lat} ms | on front |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rep["trials"]:
        lines.append(f"| {r['trial']} | {r['target_ms']:g} | {r['strategy']} | {r['seed']} | "
                     f"{100 * r['test_acc']:.2f}% | {r['predicted_ms']:.3f} | {r[rep['latency']]:.3f} | "
                     f"{'yes' if r['trial'] in rep['front'] else ''} |")
    lines += ["", "## Spread across seeds", "", "| strategy | target ms | seeds | test acc mean ± std | min - max | "
              f"{lat} ms mean ± std |", "|---|---|---|---|---|---|"]
    for s in rep["spread"]:
        a, m = s["test_acc"], s["latency_ms"]
        lines.append(f"| {s['strategy']} | {s['target_ms']:g} | {a['n']} | {100 * a['mean']:.2f} ± {100 * a['std']:.2f}%"
                     f" | {100 * a['min']:.2f} - {100 * a['max']:.2f}% | {m['mean']:.3f} ± {m['std']:.3f} |")
    if rep["missing"]:
        lines += ["", "## Not finished (rerun the same command to run only these)", ""]
        lines += [f"- {t}: {rep['lost'].get(t, 'not run')}" for t in rep["missing"]]
    return "\n".join(lines) + "\n"
