"""Pin glibc malloc's thresholds for the duration of a measuring process.

glibc adapts its mmap threshold as a process frees large blocks, so whether a network's activation
buffers come from fresh (page-faulting) mmaps or from the reused heap depends on what the process
did before. Measured on this VM, torch-cpu batch 8: whole-network time / op sum was 1.09-1.49
(scattered, two modes) without pinning and 1.05-1.17 with it, for the same networks. Pinning
both thresholds makes every large block come from the heap and stay there, so a timing no longer
depends on its place in the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 1 << 30

_state: dict = {}


def pin_malloc() -> bool:
    """Pin the thresholds once per process; False where libc is not glibc (musl, bionic, macOS)."""
    if "pinned" in _state:
        return _state["pinned"]
    ok = False
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and \
                bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):
            ok = False
    _state["pinned"] = ok
    return ok


def malloc_pinned() -> bool | None:
    """Whether this process pinned malloc (None: it never tried); recorded with every run."""
    return _state.get("pinned")
