"""Device profiles (``device_profiles/*.yaml``): what a target is, how to reach it, how to calm it.

A profile names the target's backends with their default threads, how to prepare it for stable
numbers (power mode, clocks, CPU governor, thermal), how it is reached (``local``: edgenas runs
on it; ``ssh``: a board edgenas drives over SSH; ``bundle``: a phone or board that runs the
standalone runner from ``tools/``), and how to recognise it, so ``edgenas profile`` never
silently measures the wrong hardware.
"""

from __future__ import annotations

import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgenas.errors import DeviceError, InputError
from edgenas.paths import profiles_root
from edgenas.quant.precision import PRECISIONS

KINDS = ("host", "board", "phone", "gpu-server")
REACH = ("local", "ssh", "bundle", "published")
DETECT_KEYS = ("machine", "device_tree_model", "cpu_model", "gpu_name", "android")


@dataclass(frozen=True)
class BackendSpec:
    name: str
    threads: int = 1
    precisions: tuple[str, ...] = ("fp32",)


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    kind: str
    arch: str
    os: str
    reach: tuple[str, ...]
    backends: dict[str, BackendSpec]
    detect: dict = field(default_factory=dict)
    prepare: tuple[str, ...] = ()
    notes: str = ""
    path: Path | None = None

    @property
    def default_backend(self) -> str:
        return next(iter(self.backends))

    def threads_for(self, backend: str) -> int:
        spec = self.backends.get(backend)
        return spec.threads if spec else 1

    def check_precision(self, backend: str, precision: str) -> None:
        """One line (InputError) when this profile does not list ``precision`` for ``backend``.

        The backend says what its runtime can do; the profile says what this device runs with it
        (an int8 table of a board whose runtime lacks integer kernels would be meaningless).
        """
        spec = self.backends.get(backend)
        if spec is not None and precision not in spec.precisions:
            raise InputError(f"device {self.name} lists precision {', '.join(spec.precisions)} for backend "
                             f"{backend!r}, not {precision!r} (add it to 'precisions' in {self.path})")

    def matches_this_machine(self) -> tuple[bool, str]:
        """(True, "") if every detect rule holds here; else (False, what differs)."""
        if "local" not in self.reach:
            return False, f"{self.name} is reached by {' / '.join(self.reach)}, not run locally"
        return self.matches(machine_facts())

    def matches(self, facts: dict) -> tuple[bool, str]:
        """(True, "") if every detect rule holds for ``facts`` (this machine's, or a remote runner's)."""
        for key, want in self.detect.items():
            have = facts.get(key)
            if key == "machine":
                ok = have == want
            elif key == "android":
                ok = bool(have) == bool(want)
            else:
                ok = bool(have) and re.search(str(want), str(have), re.I) is not None
            if not ok:
                return False, f"{key} is {have!r}, the profile expects {want!r}"
        return True, ""

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "kind": self.kind, "arch": self.arch,
                "os": self.os, "reach": list(self.reach),
                "backends": {k: {"threads": v.threads, "precisions": list(v.precisions)} for k, v in self.backends.items()},
                "detect": self.detect, "prepare": list(self.prepare), "notes": self.notes,
                "path": str(self.path) if self.path else None}


def machine_facts() -> dict:
    """What this machine says about itself (files that are absent give None)."""
    facts = {"machine": platform.machine(), "android": "ANDROID_ROOT" in __import__("os").environ}
    facts["device_tree_model"] = _read("/proc/device-tree/model")
    cpuinfo = _read("/proc/cpuinfo") or ""
    m = re.search(r"^(model name|Hardware|Model)\s*:\s*(.+)$", cpuinfo, re.M)
    facts["cpu_model"] = m.group(2).strip() if m else platform.processor() or None
    facts["gpu_name"] = _gpu_name()
    return facts


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _gpu_name() -> str | None:
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=10)
        return p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _err(path, msg) -> DeviceError:
    return DeviceError(f"device profile {path}: {msg}")


def parse_profile(data, path: Path) -> DeviceProfile:
    from edgenas.profiling.base import list_backends

    if not isinstance(data, dict):
        raise _err(path, "must be a YAML mapping")
    known = {"name", "description", "kind", "arch", "os", "reach", "backends", "detect", "prepare", "notes"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _err(path, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for req in ("name", "description", "kind", "arch", "backends", "reach"):
        if req not in data:
            raise _err(path, f"missing required field '{req}'")
    name = data["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name):
        raise _err(path, f"'name' must be lowercase letters, digits, '.' or '-', got {name!r}")
    if path.stem != name:
        raise _err(path, f"'name' is {name!r} but the file is {path.name}; they must agree")
    if data["kind"] not in KINDS:
        raise _err(path, f"'kind' must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    reach = data["reach"] if isinstance(data["reach"], list) else [data["reach"]]
    bad = [r for r in reach if r not in REACH]
    if bad or not reach:
        raise _err(path, f"'reach' must list some of {', '.join(REACH)}, got {data['reach']!r}")
    backends = data["backends"]
    if not isinstance(backends, dict) or not backends:
        raise _err(path, "'backends' must map backend names to {threads, precisions}")
    specs = {}
    for bname, b in backends.items():
        if bname not in list_backends():
            raise _err(path, f"unknown backend {bname!r}; known: {', '.join(list_backends())}")
        b = b or {}
        if not isinstance(b, dict):
            raise _err(path, f"'backends.{bname}' must be a mapping")
        threads = b.get("threads", 1)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise _err(path, f"'backends.{bname}.threads' must be a positive integer, got {threads!r}")
        precisions = b.get("precisions", ["fp32"])
        precisions = tuple(precisions) if isinstance(precisions, list) else ()
        if not precisions or any(p not in PRECISIONS for p in precisions):
            raise _err(path, f"'backends.{bname}.precisions' must list some of {', '.join(PRECISIONS)}, "
                             f"got {list(precisions)!r}")
        specs[bname] = BackendSpec(bname, threads, precisions)
    detect = data.get("detect") or {}
    if not isinstance(detect, dict) or any(k not in DETECT_KEYS for k in detect):
        raise _err(path, f"'detect' keys must be among {', '.join(DETECT_KEYS)}")
    prepare = data.get("prepare") or []
    if not isinstance(prepare, list) or not all(isinstance(s, str) for s in prepare):
        raise _err(path, "'prepare' must be a list of instructions (strings)")
    from edgenas.schemas import DeviceProfileFile, explain
    from pydantic import ValidationError

    try:  # the schema: every field's type and bounds (the checks above give the friendlier messages)
        DeviceProfileFile.model_validate(data)
    except ValidationError as e:
        raise _err(path, explain(e)) from None
    return DeviceProfile(name=name, description=str(data["description"]), kind=data["kind"], arch=str(data["arch"]),
                         os=str(data.get("os", "")), reach=tuple(reach), backends=specs, detect=detect,
                         prepare=tuple(prepare), notes=str(data.get("notes", "")), path=path)


def load_profile_file(path) -> DeviceProfile:
    path = Path(path)
    from edgenas.errors import InputError
    from edgenas.schemas import load_yaml_text, read_bounded

    if not path.exists():
        raise DeviceError(f"no device profile file {path}")
    try:
        data = load_yaml_text(read_bounded(path, "device profile"), f"device profile {path}")
    except InputError as e:
        raise DeviceError(str(e).replace(f"device profile {path} is not valid YAML",
                                         f"device profile {path}: not valid YAML")) from None
    return parse_profile(data, path)


def list_profiles(root: Path | None = None) -> list[DeviceProfile]:
    root = Path(root) if root else profiles_root()
    return [load_profile_file(p) for p in sorted(root.glob("*.yaml"))]


def get_profile(name: str, root: Path | None = None) -> DeviceProfile:
    root = Path(root) if root else profiles_root()
    path = root / f"{name}.yaml"
    if not path.exists():
        names = [p.stem for p in sorted(root.glob("*.yaml"))]
        raise DeviceError(f"unknown device {name!r}; known: {', '.join(names)} "
                          f"(add {root}/{name}.yaml to describe a new one)")
    return load_profile_file(path)


def host_profile_name(root: Path | None = None) -> str | None:
    """The first local profile whose detect rules hold here (the machine edgenas runs on)."""
    for p in list_profiles(root):
        if "local" in p.reach and p.matches_this_machine()[0]:
            return p.name
    return None
