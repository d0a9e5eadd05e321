"""The search pipeline: search -> rank candidates -> measure the top-k -> retrain them (successive
halving: all to a rung, the best to the end) -> pick.

Every phase checkpoints into the run directory (atomic writes), so an interrupted run resumes
where it stopped (``resume=True``). The run directory holds:

    config.json          the full configuration (a resumed run must match it)
    genotype.json        the chosen architecture (edgenas genotype, with results in 'meta')
    weights.safetensors  its retrained weights
    search_log.csv       one row per logged search step / phase event
    candidates.csv       every evaluated candidate: proxy accuracy, predicted latency, retrain results
    pareto.png           accuracy vs latency, Pareto front, target line
    summary.json/.md     the numbers, for people and for tools
    candidate<i>.safetensors  each retrained candidate's weights (at the rung step for those not promoted)
    checkpoint.pt        resume state, with the rung states of the retraining (removed when the run completes)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from edgenas.errors import InputError
from edgenas.io import atomic_write_bytes, atomic_write_text, json_safe
from edgenas.profiling.protocol import TARGET_TOLERANCE
from edgenas.search.base import (Budget, Candidate, SearchContext, cosine_lr, create_strategy, set_lr,
                                 strategy_class, update)
from edgenas.search.data import EVAL_BATCH, Batches, accuracy, load_data
from edgenas.search.repair import repaired_candidates


@dataclass
class SearchConfig:
    device: str
    backend: str
    target_ms: float
    strategy: str = "proxyless"
    space: str = "proxyless"
    preset: str = "small"
    data: str = "fashion-mnist"
    batch: int = 1  # latency batch size (the table's)
    threads: int | None = None
    precision: str = "fp32"  # the table the search prices with, and what the chosen network is measured at
    seed: int = 0
    budget: dict = field(default_factory=dict)
    strategy_options: dict = field(default_factory=dict)
    search_overrides: dict = field(default_factory=dict)  # cheaper proxy supernet (e.g. channels=8)
    weights_size: int | None = 12000
    arch_size: int | None = 4000
    test_size: int | None = None
    measure: bool = True  # measure the retrained top-k on the device (when it is this machine)
    tolerance: float = TARGET_TOLERANCE  # measured may exceed the target by this much before the target counts as missed
    torch_device: str = "auto"


class Run:
    """Files of one run directory."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj) -> Path:
        return atomic_write_text(self.file(name), json.dumps(json_safe(obj), indent=2, default=str) + "\n")

    def write_csv(self, name: str, rows: list[dict]) -> Path:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        return atomic_write_text(self.file(name), buf.getvalue())

    def save_checkpoint(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.file("checkpoint.pt"), buf.getvalue())

    def load_checkpoint(self) -> dict | None:
        """The resume state, loaded without running code: ``weights_only=True`` plus an explicit allow-list
        of our own plain records (tensors, numbers, strings, lists, dicts and these dataclasses only)."""
        p = self.file("checkpoint.pt")
        if not p.exists():
            return None
        try:
            with torch.serialization.safe_globals(checkpoint_globals()):
                state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # a crafted or foreign pickle: refused before any of it runs
            named = re.search(r"GLOBAL ([\w.]+)", str(e))
            reason = f"it names {named.group(1)}" if named else type(e).__name__
            raise InputError(f"{p} is not an edgenas checkpoint that loads safely ({reason[:120]}); delete it "
                             f"and rerun with --resume (the search restarts from the last phase on disk)") from None
        if not isinstance(state, dict) or not {"strategy", "phase", "log"} <= set(state):
            raise InputError(f"{p} is not an edgenas checkpoint; delete it or choose another --out")
        return state


def checkpoint_globals() -> list:
    """The only non-builtin types a checkpoint may hold (``torch.load(weights_only=True)`` allow-list)."""
    from edgenas.search.base import Candidate
    from edgenas.spaces import list_spaces, space_class

    return [Candidate] + list(dict.fromkeys(c for c in (space_class(n).arch_cls for n in list_spaces()) if c))


def default_run_dir(cfg: SearchConfig) -> Path:
    at = "" if cfg.precision == "fp32" else f"-{cfg.precision}"
    return Path("runs") / f"{cfg.strategy}-{cfg.space}-{cfg.device}-{cfg.target_ms:g}ms{at}-s{cfg.seed}"


def resolve_torch_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--torch-device cuda asked for, but PyTorch sees no CUDA device")
    return name


def _context(cfg: SearchConfig, log: Callable) -> tuple[SearchContext, object]:
    from edgenas.latency.expected import ExpectedLatency
    from edgenas.latency.predictor import LatencyPredictor
    from edgenas.latency.wholenet_store import search_predictor
    from edgenas.spaces import create_space

    space = create_space(cfg.space, cfg.preset)
    search_space = create_space(cfg.space, cfg.preset, **cfg.search_overrides) if cfg.search_overrides else space
    if search_space.decisions() != space.decisions():
        raise InputError("search overrides must keep the space's choices (e.g. channels, not layers, for darts "
                         "choices are per cell type; for proxyless keep the stage layout)")
    predictor = search_predictor(cfg.device, cfg.backend, space, cfg.strategy, cfg.batch, cfg.threads,
                                 cfg.precision)
    mode = strategy_class(cfg.strategy).expected_latency
    # a whole-network model has no per-op latencies: only black-box strategies run on it (search_predictor)
    expected = ExpectedLatency(space, predictor, mode=mode) if isinstance(predictor, LatencyPredictor) else None
    data = load_data(cfg.data, cfg.weights_size, cfg.arch_size, cfg.test_size, cfg.seed)
    budget = Budget(**cfg.budget)
    ctx = SearchContext(space=space, data=data, predictor=predictor, expected=expected, target_ms=cfg.target_ms,
                        budget=budget, seed=cfg.seed, device=resolve_torch_device(cfg.torch_device),
                        search_space=search_space, log=log)
    return ctx, predictor


def retrain_steps(ctx: SearchContext, epochs: float) -> int:
    """Weight steps of one candidate's retraining: ``epochs`` over the weights split."""
    return max(1, int(epochs * len(ctx.data.weights) / ctx.budget.batch_size))


def retrain(ctx: SearchContext, arch, epochs: float, lr: float = 0.05, seed: int = 0,
            on_step: Callable | None = None, stop: int | None = None, resume: dict | None = None,
            test: bool = True):
    """Train the deployed network of ``arch`` from scratch on the weights split, up to step ``stop``
    (default: every step) or on from ``resume`` (the state an earlier stopped call returned).

    The learning-rate schedule always spans every step, and the state carries the weights, the
    optimizer's momentum, the data order and torch's RNG, so stopping at step s and resuming gives
    the weights of one straight run (successive halving continues a candidate this way). Returns
    (model, state, arch-split accuracy, test accuracy); the test split is evaluated only when
    ``test`` (None otherwise) and ``state`` is None once the last step is done."""
    steps = retrain_steps(ctx, epochs)
    stop = steps if stop is None else min(stop, steps)
    shape = ctx.space.input_shape
    if resume is None:
        torch.manual_seed(seed)
    model = ctx.space.build(arch).to(ctx.device)
    batches = Batches(ctx.data.weights, ctx.data, ctx.budget.batch_size, shape, seed, augment=True)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=3e-4)
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        batches.load_state_dict(resume["batches"])
        torch.set_rng_state(resume["torch_rng"])
        start = resume["step"]
    model.train()
    for i in range(start, stop):
        set_lr(opt, cosine_lr(i, steps, lr))
        x, y = batches.next()
        loss = torch.nn.functional.cross_entropy(model(x.to(ctx.device)), y.to(ctx.device))
        update(opt, loss, model.parameters())
        if on_step:
            on_step(i + 1, steps)
    state = None if stop == steps else {"step": stop, "model": model.state_dict(), "opt": opt.state_dict(),
                                        "batches": batches.state_dict(), "torch_rng": torch.get_rng_state()}
    arch_acc = accuracy(model, Batches(ctx.data.arch, ctx.data, EVAL_BATCH, shape, 0), device=ctx.device,
                        batch=EVAL_BATCH)
    test_acc = accuracy(model, Batches(ctx.data.test, ctx.data, EVAL_BATCH, shape, 0), device=ctx.device,
                        batch=EVAL_BATCH) if test else None
    return model.cpu(), state, arch_acc, test_acc


def pick_top(cands: list[Candidate], target: float, k: int) -> list[Candidate]:
    """The k best feasible candidates by proxy accuracy (lowest latency first if none is feasible)."""
    feasible = [c for c in cands if c.predicted_ms <= target]
    pool = feasible or sorted(cands, key=lambda c: c.predicted_ms)[:k]
    return sorted(pool, key=lambda c: (-c.proxy_acc, c.predicted_ms))[:k]


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of (latency, accuracy) points not dominated (lower latency and higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def run_search(cfg: SearchConfig, out: Path, resume: bool = False, on_progress: Callable | None = None,
               executor=None) -> dict:
    """Run (or resume) a search; returns the summary dict (also written to ``out/summary.json``).
    ``executor`` (``edgenas.executors``): where the top-k retrain; default this process.

    Stages: the resume guard, the context (space, data, latency model), the search, the measurement of
    the top-k (latency does not depend on the weights, so it comes first and the retraining can use
    it), their retraining, and the run files. Each stage checkpoints, so a resumed run goes on
    from the last stage it finished."""
    run = Run(out)
    done = check_resume(run, cfg, resume)
    if done is not None:
        return done
    log_rows: list[dict] = []
    ctx, predictor = _context(cfg, log_rows.append)  # bad data / table misses fail before the run dir exists
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_json("config.json", asdict(cfg))
    strategy = create_strategy(cfg.strategy, **cfg.strategy_options)
    strategy.setup(ctx)
    st = _RunState(run, strategy, ctx, log_rows)
    if resume:
        st.restore(run.load_checkpoint())
    if st.phase == "search":
        _search_stage(st, on_progress)
    top = pick_top(st.cands, cfg.target_ms, ctx.budget.top_k)
    with st.timed("measure"):
        measured_note = _measure(cfg, ctx, predictor, top, st, on_progress) if cfg.measure else \
            "not measured (--no-measure)"
    _retrain_stage(st, cfg, top, executor, on_progress)
    retrained = [{**r, **NOT_MEASURED, **st.measured.get(r["index"], {})} for r in st.retrained]
    summary = _finish(cfg, ctx, predictor, strategy, st.cands, top, retrained, run, log_rows, measured_note,
                      st.elapsed(), st.stage_s)
    run.file("checkpoint.pt").unlink(missing_ok=True)
    return summary


def check_resume(run: Run, cfg: SearchConfig, resume: bool) -> dict | None:
    """The resume guard: refuse to write over a run, or to resume one with other settings; the summary of
    a run that already finished (None when there is something to do)."""
    if not run.file("config.json").exists():
        return None
    out = run.path
    if not resume:
        raise InputError(f"{out} already holds a run; add --resume to continue it, or choose another --out")
    from edgenas.schemas import load_json_file

    fix = "choose another --out (or delete that run directory)"
    old = load_json_file(run.file("config.json"), "run configuration", fix)
    if not isinstance(old, dict):
        raise InputError(f"{run.file('config.json')} is not a run configuration; {fix}")
    new = json.loads(json.dumps(asdict(cfg)))
    old.setdefault("precision", "fp32")  # runs from before precision was a setting were fp32
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise InputError(f"--resume with different settings than {out}/config.json ({', '.join(diff)}); "
                         f"rerun with the same flags or choose another --out")
    if run.file("summary.json").exists() and not run.file("checkpoint.pt").exists():
        return load_json_file(run.file("summary.json"), "run summary", fix)
    return None


class _RunState:
    """What a run carries between stages, and its checkpoint (the whole resume state)."""

    def __init__(self, run: Run, strategy, ctx: SearchContext, log_rows: list[dict]):
        self.run, self.strategy, self.ctx, self.log_rows = run, strategy, ctx, log_rows
        self.phase, self.retrained, self.cands, self.elapsed0 = "search", [], None, 0.0
        self.measured: dict[int, dict] = {}  # top-k index -> its measured latency fields
        self.states: dict[int, dict] = {}  # top-k index -> retraining state of a candidate stopped at the rung
        self.t0 = time.perf_counter()
        self.stage_s: dict[str, float] = {}  # wall seconds per stage, so a user sees where the time went

    @contextlib.contextmanager
    def timed(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.stage_s[stage] = round(self.stage_s.get(stage, 0.0) + time.perf_counter() - t, 2)

    def restore(self, state: dict | None) -> None:
        if not state:
            return
        ctx = self.ctx
        self.strategy.load_state_dict(state["strategy"])
        ctx.train_batches.load_state_dict(state["train_batches"])
        ctx.arch_batches.load_state_dict(state["arch_batches"])
        ctx.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.log_rows[:] = state["log"]
        self.phase, self.retrained, self.cands = state["phase"], state["retrained"], state["candidates"]
        self.elapsed0 = state.get("elapsed_s", 0.0)
        self.measured, self.states = state.get("measured", {}), state.get("retrain_states", {})
        for r in self.retrained:  # a checkpoint from before successive halving: every record trained fully
            if "steps" not in r:
                r["steps"] = r["of"] = retrain_steps(ctx, ctx.budget.retrain_epochs)
        self.stage_s = dict(state.get("stage_s", {}))

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def checkpoint(self) -> None:
        ctx = self.ctx
        self.run.save_checkpoint({
            "strategy": self.strategy.state_dict(), "train_batches": ctx.train_batches.state_dict(),
            "arch_batches": ctx.arch_batches.state_dict(), "rng": ctx.rng.getstate(),
            "torch_rng": torch.get_rng_state(), "log": self.log_rows, "phase": self.phase,
            "retrained": self.retrained, "candidates": self.cands, "elapsed_s": self.elapsed(),
            "measured": self.measured, "retrain_states": self.states,
            "stage_s": self.stage_s})
        self.run.write_csv("search_log.csv", self.log_rows or [{"step": 0}])


def _search_stage(st: _RunState, on_progress) -> None:
    """Strategy steps up to the budget (or its early stop), then its candidates plus repaired ones."""
    strategy, ctx, budget = st.strategy, st.ctx, st.ctx.budget
    every = max(10, budget.steps // 20)
    while strategy.step_count < budget.steps and not strategy.finished_early():
        with st.timed("search"):
            row = strategy.step(ctx)
        if row:
            st.log_rows.append({"step": strategy.step_count, "phase": "search", **row})
        if on_progress:
            on_progress("search", strategy.step_count, budget.steps)
        if strategy.step_count % every == 0:
            st.checkpoint()
    if strategy.finished_early():
        st.log_rows.append({"step": strategy.step_count, "phase": "early stop", "reason": strategy.stop_reason()})
    if on_progress:
        on_progress("rank candidates", 0, 1)
        ctx.progress = lambda done, total: on_progress("rank candidates", done, total)
    with st.timed("rank candidates"):
        cands = strategy.candidates(ctx)
        st.cands = cands + repaired_candidates(ctx, cands, budget.top_k)
    st.phase = "retrain"
    st.checkpoint()


def _retrain_stage(st: _RunState, cfg: SearchConfig, top: list[Candidate], executor, on_progress) -> None:
    """Retrain the top candidates from scratch on ``executor``, by successive halving with one rung
    (Jamieson & Talwalkar, AISTATS 2016; Hyperband's inner loop): every candidate trains the first
    ``budget.retrain_rung`` of its steps and is scored on the arch split; only the one ``choice_key``
    prefers (meets the target, measured where measured; then arch-split accuracy) trains on to the
    last step. It goes on from where it stopped (same LR schedule, data order, momentum and RNG), so
    its weights are those of a straight run, and only it is evaluated on the test split: the others'
    records say at which step their arch-split accuracy was taken and carry no test accuracy. On the
    README's main job this trains 1.67 candidates' worth of steps instead of 3. ``retrain_rung`` 1
    (or a single candidate) trains and tests every candidate fully, as before. One checkpoint per
    finished task, so a resumed run repeats none."""
    from edgenas.executors.retrain import retrain_top

    ctx, epochs = st.ctx, st.ctx.budget.retrain_epochs
    steps = retrain_steps(ctx, epochs)
    rung = max(1, round(ctx.budget.retrain_rung * steps))
    halving = len(top) > 1 and rung < steps
    first = list(range(len(st.retrained), len(top)))
    _take_retrained(st, retrain_top(executor, ctx, top, first, epochs, cfg.seed, on_progress,
                                    stop=rung if halving else None, test=not halving))
    if halving:
        best = min(range(len(top)), key=choice_key(cfg, top, st.retrained, st.measured))
        if st.retrained[best]["steps"] < steps:
            _take_retrained(st, retrain_top(executor, ctx, top, [best], epochs, cfg.seed, on_progress,
                                            resume={best: st.states[best]}))


def _take_retrained(st: _RunState, results) -> None:
    """Record each retraining ``results`` yields: weights file, record, log row, checkpoint."""
    from safetensors.torch import save_file

    while True:
        with st.timed("retrain"):
            item = next(results, None)
        if item is None:
            break
        i, r = item
        save_file(r.weights, str(st.run.file(f"candidate{i}.safetensors")))
        rec = {"index": i, "arch_acc": r.arch_acc, "test_acc": r.test_acc, "steps": r.step, "of": r.steps}
        if i < len(st.retrained):  # the promoted candidate, finished: its score at the rung stays beside
            rec["rung_arch_acc"] = st.retrained[i]["arch_acc"]
            st.retrained[i] = rec
        else:
            st.retrained.append(rec)
        if r.state is None:
            st.states = {}  # a candidate trained to the end: no stopped one goes on after it
        else:
            st.states[i] = r.state
        st.log_rows.append({"step": st.strategy.step_count, "phase": "retrain", "candidate": i,
                            "arch_acc": r.arch_acc, "test_acc": r.test_acc, "retrain_step": r.step})
        st.checkpoint()


NOT_MEASURED = {"measured_ms": None, "measured_raw_ms": None}


def choice_key(cfg: SearchConfig, top: list[Candidate], retrained: list[dict], measured: dict[int, dict]):
    """Sort key of the pick rule, for top-k indices: meets the target first (measured ms within the
    tolerance where measured, else predicted ms under the target), then the higher arch-split
    accuracy, then the lower predicted ms. The test split never enters a decision."""
    limit = cfg.target_ms * (1 + cfg.tolerance)

    def key(i):
        ms = measured.get(i, NOT_MEASURED)["measured_ms"]
        meets = ms <= limit if ms is not None else top[i].predicted_ms <= cfg.target_ms
        return (not meets, -retrained[i]["arch_acc"], top[i].predicted_ms)

    return key


def _measure(cfg, ctx, predictor, top, st: _RunState, on_progress) -> str:
    """Time the top-k candidates' networks on this machine (when it is the device) into ``st.measured``;
    the note on how, or why not. Untrained networks: latency does not depend on the weights."""
    from edgenas.devices import get_profile
    from edgenas.profiling.base import backend_class, create_backend
    from edgenas.profiling.networks import measure_networks

    try:
        prof = get_profile(cfg.device)
    except InputError:
        return (f"not measured: no device profile for {cfg.device!r} here, so it is not this machine "
                "(export the genotype and measure it on the device)")
    ok, why = prof.matches_this_machine()
    if not ok:
        return f"not measured: {why} (export the genotype and measure it on the device)"
    avail, why = backend_class(cfg.backend).availability()
    if not avail:
        return f"not measured: {why}"
    be = create_backend(cfg.backend, threads=predictor.sel.threads, precision=cfg.precision)
    how = (f"whole networks exported to {cfg.backend} ({cfg.precision}) and timed on this machine with the profiling protocol, "
           f"paired with the reference op; measured ms = ratio to the reference x the quiet-state scale "
           f"({getattr(predictor, 'scale_note', 'the latency model scale')}); raw median of this run beside it")
    todo = [i for i in range(len(top)) if i not in st.measured]
    if not todo:
        return how
    meas = measure_networks(be, ctx.space, [top[i].arch for i in todo], cfg.batch, source="search",
                            on_progress=(lambda ph, d, n: on_progress(f"measure ({ph})", d, n)) if on_progress else None)
    for i, m in zip(todo, meas):
        st.measured[i] = {"measured_ms": predictor.measured_ms(m.stats.ref_ratio, m.stats.median_ms),
                          "measured_raw_ms": m.stats.median_ms, "measured_p90_ms": m.stats.p90_ms}
    st.checkpoint()
    return how


def _finish(cfg, ctx, predictor, strategy, cands, top, retrained, run, log_rows, measured_note, elapsed,
            stage_s) -> dict:
    from safetensors.torch import load_file, save_file

    target = cfg.target_ms
    key = choice_key(cfg, top, retrained, {i: r for i, r in enumerate(retrained)})
    best = min((i for i, r in enumerate(retrained) if r["steps"] == r["of"]), key=key)  # trained to the end
    chosen, res = top[best], retrained[best]
    rows = []
    for c in cands:
        row = {"arch": json.dumps(ctx.space.arch_to_json(c.arch)), "source": c.source, "proxy_acc": c.proxy_acc,
               "predicted_ms": c.predicted_ms, "feasible": c.predicted_ms <= target}
        for i, t in enumerate(top):
            if t is c or repr(t.arch) == repr(c.arch):
                row.update({"retrained": i, **{k: v for k, v in retrained[i].items() if k != "index"}})
        rows.append(row)
    run.write_csv("candidates.csv", rows)
    save_file(load_file(str(run.file(f"candidate{best}.safetensors"))), str(run.file("weights.safetensors")))
    meta = {"strategy": cfg.strategy, "device": cfg.device, "backend": cfg.backend, "batch": cfg.batch,
            "precision": cfg.precision,
            "threads": predictor.sel.threads, "target_ms": target, "predicted_ms": chosen.predicted_ms,
            "measured_ms": res["measured_ms"], "test_acc": res["test_acc"], "arch_acc": res["arch_acc"],
            "data": cfg.data, "weights": "weights.safetensors"}
    g = ctx.space.genotype(chosen.arch)
    g.meta = meta
    g.save(run.file("genotype.json"))
    plot = _plot(ctx, cands, top, retrained, target, run.file("pareto.png"), cfg)
    summary = {
        "run": str(run.path), "strategy": cfg.strategy, "space": cfg.space, "preset": cfg.preset,
        "device": cfg.device, "backend": cfg.backend, "batch": cfg.batch, "precision": cfg.precision,
        "threads": predictor.sel.threads,
        "target_ms": target, "data": ctx.data.describe(), "budget": ctx.budget.as_dict(),
        "steps_run": strategy.step_count, "stopped_early": strategy.finished_early(),
        "candidates_evaluated": len(cands), "feasible_candidates": sum(c.predicted_ms <= target for c in cands),
        "chosen": {"arch": ctx.space.arch_to_json(chosen.arch), "predicted_ms": chosen.predicted_ms,
                   "measured_ms": res["measured_ms"], "measured_raw_ms": res.get("measured_raw_ms"),
                   "test_acc": res["test_acc"], "arch_acc": res["arch_acc"], "proxy_acc": chosen.proxy_acc,
                   "meets_target": not key(best)[0]},
        "retrained": [{"predicted_ms": t.predicted_ms, "proxy_acc": t.proxy_acc, **r} for t, r in zip(top, retrained)],
        "measurement": measured_note, "calibrated_predictor": predictor.calibration.calibrated,
        "scale": getattr(predictor, "anchor", None) and predictor.anchor.as_dict(),
        "latency_model": getattr(predictor, "description", "op table"
                                 + (" (calibrated)" if predictor.calibration.calibrated else " (uncalibrated)")),
        "elapsed_s": round(elapsed, 1), "stage_s": dict(stage_s), "torch_device": ctx.device,
        "files": {"genotype": str(run.file("genotype.json")), "weights": str(run.file("weights.safetensors")),
                  "plot": str(plot), "candidates": str(run.file("candidates.csv")),
                  "log": str(run.file("search_log.csv")), "summary": str(run.file("summary.md"))},
    }
    run.write_json("summary.json", summary)
    run.write_csv("search_log.csv", log_rows or [{"step": 0}])
    atomic_write_text(run.file("summary.md"), _markdown(summary))
    return summary


def _plot(ctx, cands, top, retrained, target, path, cfg) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pts = [(c.predicted_ms, c.proxy_acc) for c in cands]
    if pts:
        ax.scatter([p[0] for p in pts], [100 * p[1] for p in pts], s=12, color="0.6",
                   label="candidates (proxy acc, predicted ms)")
        front = pareto(pts)
        fp = sorted((pts[i] for i in front))
        ax.step([p[0] for p in fp], [100 * p[1] for p in fp], where="post", color="tab:orange", lw=1.2,
                label="Pareto front (candidates)")
    tested = [(t, r) for t, r in zip(top, retrained) if r["test_acc"] is not None]  # the rest stopped at the rung
    xs = [r["measured_ms"] if r["measured_ms"] is not None else t.predicted_ms for t, r in tested]
    ax.scatter(xs, [100 * r["test_acc"] for _, r in tested], s=40, color="tab:blue", marker="D",
               label="retrained (test acc, measured ms)" if retrained and retrained[0]["measured_ms"] is not None
               else "retrained (test acc, predicted ms)")
    ax.axvline(target, color="tab:red", ls="--", lw=1, label=f"target {target} ms")
    ax.set_xlabel(f"latency (ms) on {cfg.device} / {cfg.backend}, batch {cfg.batch}")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{cfg.strategy} on {cfg.space}/{cfg.preset}, {ctx.data.name}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _markdown(s: dict) -> str:
    c = s["chosen"]
    meas = (f"{c['measured_ms']:.4f} ms measured (quiet-state scale; raw median of this run "
            f"{c['measured_raw_ms']:.4f} ms)" if c["measured_ms"] is not None else "not measured")
    lines = [f"# edgenas search: {s['strategy']} on {s['space']}/{s['preset']}", "",
             f"- target: {s['target_ms']} ms on {s['device']} / {s['backend']} (batch {s['batch']}, "
             f"{s['threads'] or 'any'} thread(s)); latency: {s.get('latency_model', 'op table')}",
             f"- chosen: predicted {c['predicted_ms']:.4f} ms, {meas}; test accuracy {100 * c['test_acc']:.2f}% "
             f"({'meets' if c['meets_target'] else 'MISSES'} the target)",
             f"- data: {s['data']['dataset']} ({s['data']['weights']} weight / {s['data']['arch']} arch / "
             f"{s['data']['test']} test images)",
             f"- budget: {s['budget']['steps']} steps x batch {s['budget']['batch_size']}, top-{s['budget']['top_k']} "
             f"retrained {s['budget']['retrain_epochs']} epochs (successive halving: all for "
             f"{s['budget'].get('retrain_rung', 1):.2g} of the steps, the best to the end); ran {s['steps_run']} steps"
             f"{' (stopped early)' if s['stopped_early'] else ''}; {s['elapsed_s']} s on {s['torch_device']}"
             + (" (" + ", ".join(f"{k} {v:.0f} s" for k, v in s["stage_s"].items()) + ")" if s.get("stage_s") else ""),
             f"- candidates evaluated: {s['candidates_evaluated']} ({s['feasible_candidates']} predicted under target)",
             "", "| # | predicted ms | measured ms | raw median ms (this run) | proxy acc | arch-split acc "
                 "(after steps) | test acc |",
             "|---|---|---|---|---|---|---|"]
    for r in s["retrained"]:
        m = f"{r['measured_ms']:.4f}" if r["measured_ms"] is not None else "-"
        raw = f"{r['measured_raw_ms']:.4f}" if r.get("measured_raw_ms") is not None else "-"
        at = f" ({r['steps']}/{r['of']})" if r.get("steps") is not None else ""
        test = f"{100 * r['test_acc']:.2f}%" if r["test_acc"] is not None else "- (stopped at the rung)"
        lines.append(f"| {r['index']} | {r['predicted_ms']:.4f} | {m} | {raw} | {100 * r['proxy_acc']:.1f}% | "
                     f"{100 * r['arch_acc']:.2f}%{at} | {test} |")
    lines += ["", f"Measurement: {s['measurement']}.", ""]
    return "\n".join(lines)
