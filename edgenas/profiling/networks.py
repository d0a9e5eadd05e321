"""Whole-network measurement with the same protocol as the op tables.

Networks are timed interleaved and paired with the table's reference op, so a network's
``ref_ratio`` is in the same units as the op entries' ``ref_ratio``: predicted and measured
latency can be compared without the host's drift between the two measurements.
``measure_networks`` is the one path: ``edgenas search`` (its retrained top-k), ``verify`` and
``edgenas export``'s latency gate (its shipped artifact, through ``prepare``) all time with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable

from edgenas import interrupt
from edgenas.ops.registry import ARTIFACT_VERSION
from edgenas.profiling.base import Backend
from edgenas.profiling.protocol import ProtocolSettings, Stats, measure
from edgenas.profiling.runner import REFERENCE_OP, prepare_op


def arch_id(space, arch) -> str:
    """A stable id of (space config, arch): the artifact cache key of a whole network."""
    text = json.dumps({"space": space.name, "config": space.config_dict(), "arch": space.arch_to_json(arch)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def prepare_network(backend: Backend, space, arch, batch: int, module=None, cache=None):
    """A Timer for the whole network of ``arch`` (exported once per arch, batch and backend)."""
    from edgenas.paths import cache_dir

    module = module if module is not None else space.build(arch)
    c, h, w = space.input_shape
    return backend.prepare(module.eval(), (batch, c, h, w), cache_dir=cache or cache_dir(),
                           cache_key=network_cache_key(space, arch))


def network_cache_key(space, arch) -> str:
    return f"net|v{ARTIFACT_VERSION}|{arch_id(space, arch)}"


def network_artifact(backend: Backend, space, arch, batch: int, cache=None):
    """The exported file of ``arch``'s network for a file-based backend (the same file profiling times)."""
    from edgenas.paths import cache_dir

    c, h, w = space.input_shape
    return backend.artifact(space.build(arch).eval(), (batch, c, h, w), cache or cache_dir(),
                            network_cache_key(space, arch))


@dataclass
class NetworkMeasurement:
    arch_id: str
    stats: Stats
    drift: float = float("nan")  # the host's movement over the network's chunk (``MeasureReport.drift``)

    @property
    def ref_ratio(self) -> float:
        return self.stats.ref_ratio


def measure_networks(backend: Backend, space, archs: list, batch: int,
                     settings: ProtocolSettings = ProtocolSettings(), chunk_size: int = 10,
                     on_progress: Callable[[str, int, int], None] | None = None,
                     source: str = "networks", prepare=None) -> list[NetworkMeasurement]:
    """Measure every arch's network, in chunks (conversion is the slow part), paired with the reference op.

    Each chunk's reference blocks are also one observation of the device's quiet-state scale
    (``latency/anchor.py``), recorded for this machine under ``source``. ``prepare(arch)``
    gives an arch's Timer when the network to time is not ``space.build(arch)`` exported to the
    cache (the export gate times the artifact it ships, with trained weights).
    """
    from edgenas.latency import anchor

    out: list[NetworkMeasurement] = []
    total = len(archs)
    reference = prepare_op(backend, REFERENCE_OP, batch)
    for start in range(0, total, chunk_size):
        chunk = archs[start:start + chunk_size]
        timers = {}
        for i, arch in enumerate(chunk):
            if on_progress:
                on_progress("convert", start + i, total)
            timers[f"{start + i}"] = (prepare(arch) if prepare is not None
                                      else prepare_network(backend, space, arch, batch))
            interrupt.check()
        if on_progress:
            on_progress("measure", start, total)
        report = measure(timers, settings, reference=reference)
        anchor.record(backend, batch, report.reference_ms, source, report.other_load)
        for i, arch in enumerate(chunk):
            out.append(NetworkMeasurement(arch_id(space, arch), report.stats[f"{start + i}"], report.drift))
        for t in timers.values():
            t.close()
        if on_progress:
            on_progress("measured", start + len(chunk), total)
    reference.close()
    return out
