"""The measurement protocol's statistics and stopping rules.

Timers here are synthetic (their 'time_block' returns chosen numbers) so the assertions are
exact; real runtimes are timed in test_backends.py.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest

from edgenas.profiling.protocol import ProtocolSettings, Timer, measure, median_rel_ci, summarize


class SyntheticTimer(Timer):
    """Per-call times drawn from a schedule: base seconds x host speed factor of the current block."""

    def __init__(self, base_s, host, noise=0.0, seed=0):
        self.base, self.host, self.noise = base_s, host, noise
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        pass

    def time_block(self, calls):
        factor = self.host.next_factor()
        return self.base * factor * (1 + self.noise * self.rng.standard_normal(calls)).clip(0.5)


class Host:
    """A host whose speed changes from block to block (drift shared by every timer)."""

    def __init__(self, factors):
        self.factors, self.i = factors, 0

    def next_factor(self):
        f = self.factors[self.i % len(self.factors)]
        self.i += 1
        return f


FAST = ProtocolSettings(warmup_calls=1, warmup_s=0.0, min_rounds=4, max_rounds=12, time_cap_s=60, max_rounds_wide=12)


def test_summary_statistics_match_numpy():
    x = np.random.default_rng(0).lognormal(-9, 0.3, 1000)
    s = summarize(x, list(np.median(x.reshape(10, -1), axis=1)), 10, 0.03)
    ms = x * 1e3
    assert s.median_ms == pytest.approx(np.median(ms))
    assert s.p10_ms == pytest.approx(np.percentile(ms, 10)) and s.p90_ms == pytest.approx(np.percentile(ms, 90))
    assert s.cv == pytest.approx(ms.std(ddof=1) / ms.mean())
    assert s.n == 1000 and s.rounds == 10


def test_median_ci_shrinks_with_more_blocks_and_needs_three():
    rng = np.random.default_rng(1)
    assert median_rel_ci(np.array([1.0, 1.1])) == float("inf")
    few = median_rel_ci(1 + 0.1 * rng.standard_normal(8))
    many = median_rel_ci(1 + 0.1 * rng.standard_normal(200))
    assert many < few


def test_quiet_entries_stop_at_min_rounds_noisy_ones_run_on():
    host = Host([1.0])
    quiet = SyntheticTimer(1e-4, host, noise=0.0)
    noisy = SyntheticTimer(1e-4, Host(list(np.random.default_rng(2).uniform(0.5, 2.0, 97))), noise=0.0)
    rep = measure({"quiet": quiet, "noisy": noisy}, FAST)
    assert rep.stats["quiet"].rounds == FAST.min_rounds and rep.stats["quiet"].stable
    assert rep.stats["noisy"].rounds == FAST.max_rounds and not rep.stats["noisy"].stable


def test_past_max_rounds_only_entries_wider_than_wide_rel_ci_go_on():
    """A 3%-noisy entry stops at max_rounds short of a tight target; a wildly noisy one (CI > 10%)
    goes on to max_rounds_wide."""
    settings = ProtocolSettings(warmup_calls=1, warmup_s=0.0, min_rounds=4, max_rounds=12, time_cap_s=60,
                                target_rel_ci=0.001, wide_rel_ci=0.10, max_rounds_wide=30)
    moderate = SyntheticTimer(1e-4, Host(list(np.random.default_rng(3).uniform(0.97, 1.03, 97))))
    wild = SyntheticTimer(1e-4, Host(list(np.random.default_rng(4).uniform(0.5, 2.0, 97))))
    rep = measure({"moderate": moderate, "wild": wild}, settings)
    assert rep.stats["moderate"].rounds == 12 and 0.001 < rep.stats["moderate"].rel_ci < 0.10
    assert rep.stats["wild"].rounds == 30 and rep.stats["wild"].rel_ci > 0.10 and rep.rounds == 30


def test_paired_reference_cancels_shared_host_drift():
    """Host speed alternates 1x/1.8x in long phases: raw medians wander, the paired ratio does not."""
    phases = [1.0] * 6 + [1.8] * 6
    host = Host(phases)
    entry = SyntheticTimer(3e-4, host)  # entry and reference share the host's phase
    ref = SyntheticTimer(1e-4, host)
    rep = measure({"op": entry}, FAST, reference=ref)
    st = rep.stats["op"]
    assert st.ref_ratio == pytest.approx(3.0, rel=1e-9)
    assert st.stable
    assert rep.drift > 0.5  # the protocol reports the drift it corrected


def test_time_cap_stops_unfinished_work():
    noisy = SyntheticTimer(1e-4, Host(list(np.random.default_rng(3).uniform(0.5, 2.0, 101))))
    settings = ProtocolSettings(warmup_calls=1, warmup_s=0.0, min_rounds=3, max_rounds=1000, time_cap_s=0.0)
    rep = measure({"x": noisy}, settings)
    assert rep.rounds == 3 and not rep.stats["x"].stable


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc pinning is glibc-only")
def test_creating_a_backend_pins_malloc_and_the_environment_records_it():
    import ctypes

    from edgenas.profiling.allocator import MMAP_THRESHOLD_MAX, malloc_pinned
    from edgenas.profiling.base import create_backend
    from edgenas.profiling.environment import environment

    create_backend("torch-cpu")
    assert malloc_pinned() is True and environment()["malloc_pinned"] is True
