"""edgenas: hardware-aware NAS with measured latency tables."""

import os as _os

# PyTorch's OpenMP threads spin while waiting. When another process holds a core (a profile run,
# a benchmark, the tests), spinning threads thrash: a 2-thread search step measured 12x slower
# (3.0 s vs 0.26 s) on a 2-core VM with the other core busy; passive waiting: 0.31 s. Takes
# effect only if set before torch is imported; export OMP_WAIT_POLICY=ACTIVE to override.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
