"""Process-wide settings edgenas wants while it measures or trains, applied only where asked for.

Importing edgenas changes no process-global state (environment, torch threads, seeds, malloc);
each setting is made by the code that needs it:

- OpenMP wait policy: ``prefer_passive_openmp`` below, called by the ``edgenas`` command (before torch
  is imported) and by the test suite. A Python caller that wants it calls it, or exports
  ``OMP_WAIT_POLICY=PASSIVE``, before importing torch: OpenMP reads it once, when torch loads it.
- torch threads: a backend sets them when it loads a model to time (``profiling/torch_cpu.py``).
- seeds: a search seeds torch from its own ``--seed`` (``search/pipeline.py``, the strategies).
- malloc thresholds: pinned by ``create_backend`` before a backend allocates (``profiling/allocator.py``).
"""

from __future__ import annotations

import os


def prefer_passive_openmp() -> None:
    """Make OpenMP threads sleep, not spin, while they wait (unless the user set a policy).

    PyTorch's OpenMP threads spin while waiting. When another process holds a core (a profile run,
    a benchmark, the tests), spinning threads thrash: a 2-thread search step measured 12x slower
    (3.0 s vs 0.26 s) on a 2-core VM with the other core busy; passive waiting: 0.31 s. Takes effect
    only if called before torch is imported; export OMP_WAIT_POLICY=ACTIVE to override.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
