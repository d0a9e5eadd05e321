"""The measurement protocol: how one latency number is made from many noisy runs.

Design (see docs/measurement.md for the measured reasons):
- **Warm-up** by count *and* time: caches, allocator and thread pools settle; JIT-ing runtimes
  (XNNPACK packs weights on first run) leave their first-call cost behind.
- **Blocks**: each visit to an entry times ``block_calls`` consecutive calls, sized so a block
  lasts about ``block_ms`` (fast ops get many calls, slow ones few).
- **Interleaved rounds**: every round visits every unfinished entry in a fresh random order, so
  a slow phase of the host (this VM drifts +-20% over minutes) lands on all entries alike
  instead of on whichever op happened to run then.
- **Paired reference**: a fixed reference op is timed in a block right before every entry
  block. This host's speed moves in phases of tens of milliseconds to minutes (the same op's
  block median swings between 31 and 70 us within a second, and by 1.7x between processes),
  but an entry and the reference measured 10 ms apart share the phase: the median of the paired
  ratios entry/reference (``ref_ratio``) moved by 5-15% where the raw median moved by 70%.
  ``ref_ms`` is the reference's median over the entry's rounds; ``ref_ratio * anchor`` puts
  entries measured in different chunks or processes on one scale. ``drift`` reports the
  spread (p90 - p10) / median of the reference blocks: how much the host moved.
- **Adaptive stop**: after ``min_rounds``, an entry stops when the distribution-free 95%
  confidence interval of its ratio (of its median without a reference) over blocks is within
  ``target_rel_ci``; the run stops at ``max_rounds`` or ``time_cap_s``. Entries that never got
  there are flagged ``stable = False``, never dropped. Only entries whose interval is still
  wider than ``wide_rel_ci`` at ``max_rounds`` go on, up to ``max_rounds_wide``: on the shipped
  x86 tables every entry with a CI over 10% had stopped at round 25, and they are a few per
  hundred, so their extra rounds cost seconds, not minutes.
- **Robust statistics**: the table value is the median of all calls; mean, p10, p90, std and CV
  describe the spread.

``tools/edgenas_device_runner.py`` carries a numpy-only copy of ``measure`` and ``summarize`` for
devices without edgenas; change both together (``tests/test_device_runner.py`` holds them equal).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

import numpy as np

#: how far a measured whole network may exceed its latency target before the target counts as
#: missed: the protocol's noise between processes on the hosts measured so far. ``edgenas search``
#: picks its winner and ``edgenas export``'s latency gate passes with this allowance.
TARGET_TOLERANCE = 0.05


@dataclass(frozen=True)
class ProtocolSettings:
    warmup_calls: int = 10
    warmup_s: float = 0.2
    block_ms: float = 20.0  # target duration of one block of calls
    max_block_calls: int = 200
    min_rounds: int = 5
    max_rounds: int = 25
    target_rel_ci: float = 0.03  # stop when the 95% CI half-width of the median is within 3%
    wide_rel_ci: float = 0.10  # past max_rounds, only entries with a CI wider than this go on...
    max_rounds_wide: int = 60  # ...up to this many rounds
    time_cap_s: float = 120.0  # per measure() call (a chunk of entries)
    seed: int = 0

    @classmethod
    def quick(cls) -> "ProtocolSettings":
        """For tests and smoke runs: fewer rounds, same statistics."""
        return cls(warmup_calls=3, warmup_s=0.02, block_ms=5.0, min_rounds=3, max_rounds=6, time_cap_s=20.0,
                   max_rounds_wide=6)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Stats:
    median_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    std_ms: float
    cv: float
    n: int
    rel_ci: float  # half-width of the 95% CI of the median over blocks (of ref_ratio if paired), / median
    rounds: int
    stable: bool
    ref_ms: float = float("nan")  # reference op's median over this entry's rounds
    ref_ratio: float = float("nan")  # median over blocks of entry block median / paired reference block median

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class MeasureReport:
    stats: dict[str, Stats]
    rounds: int
    elapsed_s: float
    reference_ms: list[float] = field(default_factory=list)  # every reference block median (ms)
    other_load: float = float("nan")  # CPU other processes used meanwhile, in cores (0: a quiet host)

    @property
    def drift(self) -> float:
        """(p90 - p10) / median of the reference block medians: how much the host moved."""
        r = np.array([x for x in self.reference_ms if x > 0])
        if len(r) < 3:
            return 0.0
        return float((np.percentile(r, 90) - np.percentile(r, 10)) / np.median(r))


class Timer:
    """Something that runs one inference per call; ``time_block`` returns per-call seconds.

    Backends whose clock is not the host's (CUDA events) override ``time_block``.
    """

    def __call__(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def time_block(self, calls: int) -> np.ndarray:
        out = np.empty(calls)
        clock = time.perf_counter_ns
        for i in range(calls):
            t0 = clock()
            self()
            out[i] = clock() - t0
        return out * 1e-9

    def close(self) -> None:
        """Release sessions / interpreters / engines."""


def summarize(samples_s: np.ndarray, block_medians_s: list[float], rounds: int, target: float,
              ref_block_medians_s: list[float] | None = None) -> Stats:
    ms = np.asarray(samples_s, dtype=float) * 1e3
    med = float(np.median(ms))
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    ref_ms = ratio = float("nan")
    if ref_block_medians_s:
        refs = np.asarray(ref_block_medians_s, dtype=float)
        ratios = np.asarray(block_medians_s, dtype=float) / refs
        ref_ms, ratio = float(np.median(refs) * 1e3), float(np.median(ratios))
        rel = median_rel_ci(ratios)
    else:
        rel = median_rel_ci(np.asarray(block_medians_s) * 1e3)
    return Stats(
        median_ms=med, mean_ms=mean, p10_ms=float(np.percentile(ms, 10)), p90_ms=float(np.percentile(ms, 90)),
        std_ms=std, cv=std / mean if mean > 0 else float("nan"), n=int(len(ms)), rel_ci=rel, rounds=rounds,
        stable=bool(rel <= target), ref_ms=ref_ms, ref_ratio=ratio,
    )


def median_rel_ci(values: np.ndarray) -> float:
    """Half-width of the distribution-free 95% CI of the median, relative to the median.

    Uses order statistics (ranks n/2 -+ 1.96 sqrt(n)/2), so no normality is assumed; with
    fewer than 3 values there is no interval and the answer is infinite.
    """
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if n < 3:
        return float("inf")
    half = 1.96 * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)) - 1)
    med = float(np.median(v))
    return float((v[hi] - v[lo]) / 2 / med) if med > 0 else float("inf")


def warm_up(timer: Timer, settings: ProtocolSettings) -> float:
    """Run until both the count and the time floor are met; returns seconds per call."""
    start = time.perf_counter()
    calls = 0
    while calls < settings.warmup_calls or time.perf_counter() - start < settings.warmup_s:
        timer()
        calls += 1
        if calls > 100_000:
            break
    return (time.perf_counter() - start) / max(calls, 1)


def block_size(seconds_per_call: float, settings: ProtocolSettings) -> int:
    return int(min(settings.max_block_calls, max(1, round(settings.block_ms / 1e3 / max(seconds_per_call, 1e-7)))))


def measure(timers: Mapping[str, Timer], settings: ProtocolSettings = ProtocolSettings(),
            reference: Timer | None = None, on_round: Callable[[int, int], None] | None = None) -> MeasureReport:
    """Measure every timer with the interleaved, paired, adaptive protocol; returns stats per key."""
    from edgenas.latency.anchor import LoadMeter

    rng = random.Random(settings.seed)
    start = time.perf_counter()
    meter = LoadMeter()
    keys = list(timers)
    blocks = {k: block_size(warm_up(timers[k], settings), settings) for k in keys}
    ref_block = block_size(warm_up(reference, settings), settings) if reference is not None else 0
    samples: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    medians: dict[str, list[float]] = {k: [] for k in keys}
    paired: dict[str, list[float]] = {k: [] for k in keys}
    all_refs: list[float] = []
    pending = set(keys)
    rounds = 0
    while pending and rounds < max(settings.max_rounds, settings.max_rounds_wide):
        if rounds >= settings.min_rounds and time.perf_counter() - start > settings.time_cap_s:
            break
        if rounds >= settings.max_rounds:  # only the still-wide entries go on
            pending = {k for k in pending if _rel_ci(medians[k], paired[k]) > settings.wide_rel_ci}
            if not pending:
                break
        order = sorted(pending)
        rng.shuffle(order)
        for k in order:
            if reference is not None:
                r = float(np.median(reference.time_block(ref_block)))
                paired[k].append(r)
                all_refs.append(r * 1e3)
            t = timers[k].time_block(blocks[k])
            samples[k].append(t)
            medians[k].append(float(np.median(t)))
        rounds += 1
        if rounds >= settings.min_rounds:
            pending = {k for k in pending if _rel_ci(medians[k], paired[k]) > settings.target_rel_ci}
        if on_round:
            on_round(rounds, len(pending))
    stats = {k: summarize(np.concatenate(samples[k]), medians[k], len(medians[k]), settings.target_rel_ci,
                          paired[k] or None) for k in keys}
    return MeasureReport(stats, rounds, time.perf_counter() - start, all_refs, meter.stop())


def _rel_ci(medians: list[float], refs: list[float]) -> float:
    if refs:
        return median_rel_ci(np.asarray(medians) / np.asarray(refs))
    return median_rel_ci(np.asarray(medians))
