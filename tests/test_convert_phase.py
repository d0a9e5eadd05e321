"""The conversion phase: every artifact is written before measuring starts, in worker processes,
and an interrupted phase resumes from the artifact cache."""

from __future__ import annotations

import pytest

from edgenas.devices import get_profile
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.runner import REFERENCE_OP, convert_artifacts, nchw, op_cache_key, profile_ops, space_specs


def _jobs(n=6):
    return [(s, 1) for s in space_specs(["proxyless"], "small")[:n]]


def _slow_jobs():
    """Ops onnxruntime converts with the dynamo exporter (~1 s each): an interrupt lands mid-phase."""
    return [(s, 1) for s in space_specs(["darts"], "small") if s.op.startswith("sep_conv")]


def _cached(backend, cache, jobs):
    return [j for j in jobs if backend.artifact_path(cache, op_cache_key(j[0]), nchw(*j)).exists()]


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_conversion_resumes_from_the_cache(tmp_path, workers):
    be, cache, jobs = create_backend("onnxruntime"), tmp_path / "cache", _slow_jobs()
    assert len(jobs) >= 8

    def stop_after_two(ev):
        if ev.phase == "convert" and ev.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_artifacts(be, jobs, cache, workers=workers, on_event=stop_after_two)
    kept = _cached(be, cache, jobs)
    assert 2 <= len(kept) < len(jobs)  # in-flight conversions may finish; queued ones do not start
    assert not list(cache.rglob("*.partial"))  # no half-written file left behind

    events = []
    again = convert_artifacts(be, jobs, cache, workers=workers, on_event=events.append)
    assert again["cached"] == len(kept) and again["converted"] == len(jobs) - len(kept)
    assert _cached(be, cache, jobs) == jobs
    finals = [e for e in events if e.done == e.total and e.done]
    assert finals and finals[-1].eta_s == 0.0
    assert convert_artifacts(be, jobs, cache, workers=workers)["converted"] == 0


def test_profile_converts_everything_before_measuring(tmp_path):
    be, cache = create_backend("onnxruntime"), tmp_path / "cache"
    specs = [s for s, _ in _jobs(4)]
    phases = []
    r = profile_ops(get_profile("x86-64-host"), be, specs, [1, 8], TableStore(tmp_path / "t"),
                    settings=ProtocolSettings.quick(), chunk_size=3, cache=cache, convert_workers=2,
                    on_event=lambda ev: phases.append(ev.phase))
    assert r.measured == 8
    first_measure = phases.index("measure")
    assert "convert" not in phases[first_measure:] and phases.count("measure") == 4  # 2 chunks per batch
    run = next(iter(TableStore(tmp_path / "t").load("x86-64-host", "onnxruntime").runs.values()))
    assert run["conversion"]["converted"] == 2 + 8 and run["conversion"]["workers"] == 2  # 2 references + 8 ops
    assert _cached(be, cache, [(REFERENCE_OP, 1), (REFERENCE_OP, 8)] + [(s, b) for b in (1, 8) for s in specs])
