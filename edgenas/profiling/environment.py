"""The environment record stored with every measured table: enough to judge and reproduce it."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from edgenas.devices import _read, machine_facts
from edgenas.latency.table import now_iso
from edgenas.latency.anchor import host_id
from edgenas.profiling.allocator import malloc_pinned

LIBRARIES = ("edgenas", "torch", "numpy", "onnx", "onnxruntime", "onnxscript", "litert-torch", "ai-edge-litert",
             "tflite-runtime", "tensorrt", "pandas")


def library_versions() -> dict:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def environment() -> dict:
    facts = machine_facts()
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    temps = []
    for i in range(8):
        t = _read(f"/sys/class/thermal/thermal_zone{i}/temp")
        if t and t.lstrip("-").isdigit():
            temps.append(int(t) / 1000)
    return {
        "date": now_iso(),
        "machine": facts["machine"],
        "cpu_model": facts["cpu_model"],
        "cpu_count": os.cpu_count(),
        "governor": governor or "unreadable",
        "temperatures_c": temps,
        "device_tree_model": facts["device_tree_model"],
        "gpu_name": facts["gpu_name"],
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "malloc_pinned": malloc_pinned(),
        "host_id": host_id(),
    }
