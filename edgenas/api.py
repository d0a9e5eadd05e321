"""The Python API: what the ``edgenas`` commands do, callable from a notebook or a script.

    import edgenas

    pred = edgenas.Predictor("x86-64-host", "onnxruntime", space="darts", preset="small")
    pred.predict_ms("Genotype(normal=[...], ...)")          # or an arch, a Genotype, a genotype file
    summary = edgenas.search_network("x86-64-host", "onnxruntime", target_ms=2.0, space="darts", strategy="darts")
    result = edgenas.export_network(summary["run"])        # ONNX/TFLite + parity + latency checks
    edgenas.profile("x86-64-host", backend="onnxruntime", space="darts", batch=1, resume=True)

The commands are thin over these functions: they check flags, draw progress bars and print. Errors
are ``edgenas.errors`` exceptions (``InputError`` and its kin), whose one-line message says what to
do; the CLI prints that line, here they are raised. Names are resolved here, once: pass a device
profile name, a backend name, a space name and preset (or a ``SearchSpace``); every function
documents its defaults, which are the commands'. (``search_network`` and ``export_network``, not
``search`` and ``export``: those are the names of edgenas' subpackages.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from edgenas.errors import BackendUnavailable, GenotypeError, InputError

__all__ = ["Predictor", "profile", "search_network", "export_network"]


# ---- prediction ----------------------------------------------------------------------------------

class Predictor:
    """Predicted latency of a space's networks on a device, from its latency table (and calibration).

    ``Predictor("x86-64-host", "onnxruntime", space="darts", preset="small", batch=1)`` loads the
    table under ``tables_dir`` (default: the shipped tables) for the device profile's thread count
    (or ``threads``); ``overrides`` change the space config (e.g. ``channels=36``). The full
    ``LatencyPredictor`` is ``.model``, the ``SearchSpace`` is ``.space``.
    """

    def __init__(self, device: str, backend: str, space="darts", preset: str | None = None, batch: int = 1,
                 threads: int | None = None, precision: str = "fp32", tables_dir: Path | str | None = None,
                 **overrides):
        from edgenas.latency.predictor import LatencyPredictor
        from edgenas.latency.store import TableStore
        from edgenas.spaces import create_space

        self.space = space if not isinstance(space, str) else create_space(space, preset, **overrides)
        self.model = LatencyPredictor.load(device, backend, self.space, batch, threads, precision,
                                           store=TableStore(Path(tables_dir) if tables_dir else None))

    def arch(self, genotype):
        """This space's arch of ``genotype``: an arch object, a ``Genotype``, or text ``load_genotype``
        reads (a file, JSON, a DARTS ``Genotype(...)``, an ``arch_str``) at this predictor's preset."""
        from edgenas.spaces.genotype import Genotype, load_genotype

        if isinstance(genotype, (str, Path)):
            genotype = load_genotype(str(genotype), space=self.space.name, preset=getattr(self.space, "preset", None))
        if isinstance(genotype, Genotype):
            if genotype.space != self.space.name or genotype.config != self.space.config_dict():
                raise GenotypeError(f"this genotype is a {genotype.space} network of another configuration than "
                                    f"this predictor's {self.space.name} space; make a Predictor for its preset")
            return genotype.arch
        return self.space.parse_arch(genotype)

    def predict(self, genotype):
        """The ``Prediction`` of a network: ``predicted_ms``, the op sum, executed ops, per-op breakdown."""
        return self.model.predict(self.space, self.arch(genotype))

    def predict_ms(self, genotype) -> float:
        return float(self.predict(genotype).predicted_ms)

    def sample(self, n: int, seed: int = 0) -> list:
        """``n`` uniformly random archs of the space (to see the latency range a target sits in)."""
        import random

        rng = random.Random(seed)
        return [self.space.sample(rng) for _ in range(n)]


# ---- profiling -----------------------------------------------------------------------------------

@dataclass
class ProfilePlan:
    """What a local profile run measures: the op instances, the batch sizes, the protocol, the backends
    available here (and those skipped, with why)."""

    device: object  # DeviceProfile
    specs: list
    batches: list[int]
    settings: object  # ProtocolSettings
    backends: list = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def op_instances(space: str | Sequence[str] = ("darts", "proxyless"), preset: str | None = "small",
                 ops: Iterable[str] | None = None) -> list:
    """The op specs a profile run measures: the given op keys, else every op instance of the spaces."""
    from edgenas.ops.spec import OpSpec
    from edgenas.profiling.runner import space_specs

    if ops:
        return [OpSpec.from_key(k) for k in ops]
    return space_specs([space] if isinstance(space, str) else list(space), preset)


def protocol(quick: bool = False, time_cap: float | None = None):
    """The measurement protocol: the default one, or the short one (``quick``), with a time cap per chunk."""
    from edgenas.profiling.protocol import ProtocolSettings

    settings = ProtocolSettings.quick() if quick else ProtocolSettings()
    if time_cap:
        settings = ProtocolSettings(**{**settings.as_dict(), "time_cap_s": time_cap})
    return settings


def local_backends(device, backends: Sequence[str] | None = None, threads: int | None = None,
                   precision: str = "fp32") -> tuple[list, list[dict]]:
    """(backends to run here, skipped ``{backend, reason}``): the named ones, each of which must be
    available (``BackendUnavailable`` otherwise), or the device's backends that are available here and run ``precision``."""
    from edgenas.profiling.base import backend_class, create_backend

    chosen, skipped = [], []
    for name in list(backends or []) or list(device.backends):
        ok, why = backend_class(name).availability()
        spec = device.backends.get(name)
        if ok and not backends and not (precision in backend_class(name).precisions and spec
                                        and precision in spec.precisions):
            ok, why = False, f"does not run {precision} here"
        if not ok:
            if backends:
                raise BackendUnavailable(f"backend {name!r} is not available here: {why}")
            skipped.append({"backend": name, "reason": why})
            continue
        chosen.append(create_backend(name, threads=threads or device.threads_for(name), precision=precision))
        device.check_precision(name, precision)
    return chosen, skipped


def specs_to_measure(store, device, backend, specs: list, batches: Sequence[int], resume: bool = False,
                     overwrite: bool = False, guard: bool = True) -> list:
    """The resume guard of a run measured elsewhere (a bundle, a board over SSH): with ``guard``, refuse
    to measure again what the table already has for these batches unless ``resume`` or ``overwrite``
    (the rule local profiling keeps too); with ``resume``, only the specs some batch lacks."""
    from edgenas.latency.table import TableSelection

    table = store.load(device.name, backend.name)
    sels = [TableSelection(device.name, backend.name, backend.precision, backend.threads, b) for b in batches]
    for sel in sels:
        have = len(table.for_selection(sel))
        if have and guard and not (resume or overwrite):
            raise InputError(f"{store.path(device.name, backend.name)} already has {have} entries for "
                             f"{sel.describe()}; add --resume to measure only the missing ones, or --overwrite "
                             f"to measure all again")
    if resume and not overwrite:
        return [s for s in specs if any(table.missing([s], sel) for sel in sels)]
    return specs


def plan_profile(device: str, backend: str | Sequence[str] | None = None, space="darts,proxyless",
                 preset: str | None = "small", batch: int | Sequence[int] = 1, threads: int | None = None,
                 precision: str = "fp32", quick: bool = False, time_cap: float | None = None,
                 ops: Iterable[str] | None = None) -> ProfilePlan:
    """Resolve a profile run on this machine (refused unless this machine is the device)."""
    from edgenas.devices import get_profile
    from edgenas.profiling.runner import check_local_device

    prof = get_profile(device)
    check_local_device(prof)
    spaces = space.split(",") if isinstance(space, str) else list(space)
    names = backend.split(",") if isinstance(backend, str) else backend
    chosen, skipped = local_backends(prof, [n.strip() for n in names if n.strip()] if names else None,
                                     threads, precision)
    return ProfilePlan(prof, op_instances([s.strip() for s in spaces], preset, ops),
                       [batch] if isinstance(batch, int) else list(batch), protocol(quick, time_cap), chosen, skipped)


def run_profile(plan: ProfilePlan, tables_dir: Path | str | None = None, resume: bool = False,
                overwrite: bool = False, on_event: Callable | None = None, command: str = "") -> dict:
    """Measure a plan into the device's tables; ``on_event(backend, ProfileEvent)`` reports progress."""
    from edgenas.latency.store import TableStore
    from edgenas.profiling.runner import profile_ops

    store = TableStore(Path(tables_dir) if tables_dir else None)
    results = []
    for be in plan.backends:
        r = profile_ops(plan.device, be, plan.specs, plan.batches, store, resume=resume, overwrite=overwrite,
                        settings=plan.settings, command=command,
                        on_event=(lambda ev, be=be: on_event(be, ev)) if on_event else None)
        results.append({"backend": be.name, "runtime_version": be.runtime_version(), "threads": be.threads,
                        "precision": be.precision, "table": str(r.table_path), "measured": r.measured,
                        "already_present": r.skipped_existing, "elapsed_s": round(r.elapsed_s, 2),
                        "convert_s": round(r.convert_s, 2),
                        "max_drift": round(max(r.drift), 4) if r.drift else 0.0, "run_id": r.run_id})
    return {"device": plan.device.name, "batches": plan.batches, "op_instances": len(plan.specs),
            "backends": results, "skipped_backends": plan.skipped}


def profile(device: str, backend: str | Sequence[str] | None = None, space="darts,proxyless",
            preset: str | None = "small", batch: int | Sequence[int] = 1, threads: int | None = None,
            precision: str = "fp32", resume: bool = False, overwrite: bool = False, quick: bool = False,
            time_cap: float | None = None, ops: Iterable[str] | None = None, tables_dir: Path | str | None = None,
            on_event: Callable | None = None) -> dict:
    """Measure every op instance of ``space`` (or the op keys ``ops``) on this machine into ``device``'s
    latency tables, as ``edgenas profile`` does; returns what each backend measured.

    ``backend``: one or more names (default: the device's backends available here, the others skipped);
    ``resume``: measure only what the table lacks; ``overwrite``: measure everything again. Builds
    bundles for other devices with the CLI's ``--bundle`` / ``--host``."""
    plan = plan_profile(device, backend, space, preset, batch, threads, precision, quick, time_cap, ops)
    return run_profile(plan, tables_dir, resume, overwrite, on_event)


# ---- search and export ---------------------------------------------------------------------------

def search_network(device: str, backend: str, target_ms: float, space: str = "proxyless", strategy: str = "proxyless",
           preset: str = "small", out: Path | str | None = None, data: str = "fashion-mnist", seed: int = 0,
           budget: dict | None = None, resume: bool = False, on_progress: Callable | None = None, **config) -> dict:
    """Search ``space`` with ``strategy`` for the most accurate network predicted under ``target_ms`` on
    ``device``/``backend``, retrain the top candidates and (on this machine) measure them, as
    ``edgenas search`` does. Returns the run summary; the run directory (``out``, default
    ``runs/<strategy>-<space>-<device>-<target>ms-s<seed>``) holds the genotype, weights and plots.

    ``budget``: ``edgenas.search.base.Budget`` fields (steps, batch_size, top_k, retrain_epochs,
    population, eval_examples); ``config``: other ``SearchConfig`` fields (batch, threads,
    strategy_options, search_overrides, weights_size, arch_size, test_size, measure, tolerance,
    torch_device)."""
    from edgenas.search.pipeline import SearchConfig, default_run_dir, run_search

    try:
        cfg = SearchConfig(device=device, backend=backend, target_ms=target_ms, strategy=strategy, space=space,
                           preset=preset, data=data, seed=seed, budget=dict(budget or {}), **config)
    except TypeError as e:
        raise InputError(f"search: {e}") from None
    return run_search(cfg, Path(out) if out else default_run_dir(cfg), resume=resume, on_progress=on_progress)


def export_network(genotype, on_progress: Callable[[str], None] | None = None, **options):
    """Export a network (a run directory, genotype file or text, or a ``Genotype``) to its deployable
    artifacts and check them (parity, delegation, latency), as ``edgenas export`` does; returns the
    ``ExportResult`` (``.passed``, ``.report``, ``.out``). ``options``: ``ExportOptions`` fields
    (formats, batch, out, device, backend, target_ms, strict, measure, ...)."""
    from edgenas.export.pipeline import ExportOptions, export_genotype
    from edgenas.spaces.genotype import Genotype

    try:
        opts = ExportOptions(**options)
    except TypeError as e:
        raise InputError(f"export: {e}") from None
    if isinstance(genotype, Genotype):
        return export_genotype(genotype.to_json(), opts, genotype=genotype, on_progress=on_progress)
    return export_genotype(str(genotype), opts, on_progress=on_progress)
