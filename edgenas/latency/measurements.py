"""Whole-network latency measurements: a generic CSV and two third-party formats.

Generic CSV (header required)::

    genotype,latency_ms[,batch,threads]
    "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",12.3

``genotype`` is any genotype text edgenas reads: a NAS-Bench-201 ``arch_str``, a DARTS
``Genotype(...)`` string, or genotype JSON. A file with any row that does not parse is refused as a
whole, in one message naming the bad line numbers: nothing is half-imported.

Third-party formats (read from the path the user gives; the package ships none of them):

* nn-Meter's NAS-Bench-201 logs (``<device>-nasbench201-log.csv``: no header, column 2
  ``nasbench201_<index>``, column 3 latency in ms) with ``nasbench201-configs.json`` mapping index to
  ``arch_str`` (microsoft/nn-Meter, MIT).
* HW-NAS-Bench-360 ``dataset.parquet`` (columns ``arch_idx, rep_arch_idx, device, framework, task,
  lat_ms_median``) with an index -> ``arch_str`` CSV (``arch_idx,arch_str``). Architectures isomorphic
  to another (``arch_idx != rep_arch_idx``) carry a copy of their representative's measurement; they
  are dropped by default so one measurement is never scored against itself.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from edgenas.errors import GenotypeError, InputError
from edgenas.spaces.base import wholenet_features
from edgenas.spaces.nb201_arch import NB201_WHOLENET, parse_arch_str

FORMATS = ("generic", "nnmeter", "hwnasbench")


@dataclass
class MeasuredNet:
    genotype: str  # the text as given (arch_str, Genotype(...), JSON)
    latency_ms: float
    arch: object  # the cell arch of a space with whole-network cell features (Nb201Arch), else an edgenas Genotype
    space: str
    batch: int = 1
    threads: int | None = None
    name: str = ""


@dataclass
class MeasurementSet:
    nets: list[MeasuredNet]
    source: str
    sha256: str
    fmt: str
    meta: dict = field(default_factory=dict)

    @property
    def space(self) -> str:
        spaces = {n.space for n in self.nets}
        if len(spaces) != 1:
            raise InputError(f"measurements mix spaces {sorted(spaces)}; give one space per file")
        return spaces.pop()

    def provenance(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "format": self.fmt, "n": len(self.nets), **self.meta}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_genotype_text(text: str, space: str | None = None):
    """(space, arch) of any genotype text; raises GenotypeError.

    ``arch`` is the bare cell for a space with whole-network cell features (read without importing
    torch when the text is the cell's own form, e.g. an arch_str), else the edgenas Genotype."""
    s = str(text).strip()
    if not s:
        raise GenotypeError("empty genotype")
    cell = wholenet_features(text=s)
    if cell is not None:
        if space is not None and space != cell.space:
            raise GenotypeError(f"this genotype text is a {cell.space} cell: it belongs to space {cell.space!r}, "
                                f"not {space!r}")
        return cell.space, cell.parse(s)
    from edgenas.spaces.genotype import load_genotype

    if not (s.startswith(("{", "[")) or "Genotype(" in s):
        raise GenotypeError(f"not a genotype (arch_str, Genotype(...) or JSON): {s[:60]!r}")
    g = load_genotype(s, space=space)
    return (g.space, g.arch) if wholenet_features(g.space) is not None else (g.space, g)


def _refuse(path, bad: list[tuple[int, str]]):
    shown = "; ".join(f"line {ln}: {why}" for ln, why in bad[:5])
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    lines = ", ".join(str(ln) for ln, _ in bad[:20]) + (" ..." if len(bad) > 20 else "")
    raise InputError(f"{path}: {len(bad)} row(s) do not parse (lines {lines}): {shown}{more}; nothing was imported")


def read_generic_csv(path, space: str | None = None) -> MeasurementSet:
    from edgenas.schemas import read_bounded

    path = Path(path)
    text = read_bounded(path, "measurements file")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or [h.strip() for h in header[:2]] != ["genotype", "latency_ms"]:
        raise InputError(f"{path}: line 1 must be the header 'genotype,latency_ms[,batch,threads]', got {header!r}")
    cols = [h.strip() for h in header]
    unknown = set(cols) - {"genotype", "latency_ms", "batch", "threads", "name"}
    if unknown:
        raise InputError(f"{path}: unknown column(s) {sorted(unknown)} (columns: genotype, latency_ms, batch, threads, name)")
    nets, bad = [], []
    for row in reader:
        ln = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(cols):
            bad.append((ln, f"{len(row)} fields, header has {len(cols)}"))
            continue
        rec = dict(zip(cols, row))
        try:
            ms = float(rec["latency_ms"])
            if not math.isfinite(ms) or ms < 0:
                raise ValueError
        except ValueError:
            bad.append((ln, f"latency_ms {rec['latency_ms']!r} is not a number >= 0"))
            continue
        try:
            batch = int(rec.get("batch") or 1)
            threads = int(rec["threads"]) if rec.get("threads") else None
            if batch < 1 or (threads is not None and threads < 1):
                raise ValueError
        except ValueError:
            bad.append((ln, "batch/threads must be integers >= 1"))
            continue
        try:
            sp, arch = parse_genotype_text(rec["genotype"], space)
        except (GenotypeError, InputError) as e:
            bad.append((ln, str(e)))
            continue
        nets.append(MeasuredNet(rec["genotype"].strip(), ms, arch, sp, batch, threads, rec.get("name", "")))
    if bad:
        _refuse(path, bad)
    if not nets:
        raise InputError(f"{path}: no measurements (only a header)")
    ms = MeasurementSet(nets, str(path), sha256_of(path), "generic")
    ms.space  # noqa: B018 (refuses mixed spaces)
    return ms


def read_nnmeter_log(path, configs) -> MeasurementSet:
    """nn-Meter ``*-nasbench201-log.csv`` plus its ``nasbench201-configs.json``."""
    path, configs = Path(path), Path(configs)
    for p in (path, configs):
        if not p.is_file():
            raise InputError(f"no such file: {p}")
    try:
        cfg = json.loads(configs.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{configs}: not nn-Meter's nasbench201-configs.json ({e})") from None
    nets, bad = [], []
    with open(path, newline="") as f:
        for ln, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            try:
                name = row[1].strip()
                if not name.startswith("nasbench201_"):
                    raise ValueError(f"column 2 {name!r} is not nasbench201_<index>")
                entry = cfg.get(name.split("_", 1)[1])
                if entry is None:
                    raise ValueError(f"{name} is not in {configs.name}")
                ms = float(row[2])
                if not math.isfinite(ms) or ms <= 0:
                    raise ValueError(f"latency {row[2]!r}")
                arch = parse_arch_str(entry["config"]["arch_str"])
            except (IndexError, ValueError, KeyError, GenotypeError) as e:
                bad.append((ln, str(e) or "too few columns"))
                continue
            nets.append(MeasuredNet(arch.to_arch_str(), ms, arch, NB201_WHOLENET.space, 1, None, name))
    if bad:
        _refuse(path, bad)
    return MeasurementSet(nets, str(path), sha256_of(path), "nnmeter", {"configs_sha256": sha256_of(configs)})


def read_hwnasbench(path, arch_strings, device: str, framework: str, task: str = "cifar100",
                    keep_copies: bool = False) -> MeasurementSet:
    """One (device, framework, task) row of HW-NAS-Bench-360's ``dataset.parquet``."""
    import pandas as pd

    path, arch_strings = Path(path), Path(arch_strings)
    for p in (path, arch_strings):
        if not p.is_file():
            raise InputError(f"no such file: {p}")
    df = pd.read_parquet(path, columns=["arch_idx", "rep_arch_idx", "device", "framework", "task", "lat_ms_median"])
    sel = df[(df.device == device) & (df.framework == framework) & (df.task == task)]
    if sel.empty:
        rows = sorted({tuple(r) for r in df[["device", "framework", "task"]].itertuples(index=False)})
        raise InputError(f"{path}: no rows for {device}/{framework}/{task} (rows: {', '.join('/'.join(r) for r in rows)})")
    if not keep_copies:
        sel = sel[sel.arch_idx == sel.rep_arch_idx]
    strs = pd.read_csv(arch_strings).set_index("arch_idx")["arch_str"]
    nets, bad = [], []
    for idx, ms in zip(sel.arch_idx.to_numpy(), sel.lat_ms_median.to_numpy()):
        try:
            arch = parse_arch_str(strs.loc[int(idx)])
        except (KeyError, GenotypeError) as e:
            bad.append((int(idx), f"arch_idx {idx}: {e}"))
            continue
        nets.append(MeasuredNet(arch.to_arch_str(), float(ms), arch, NB201_WHOLENET.space, 1, None, f"nb201_{idx}"))
    if bad:
        _refuse(path, bad)
    return MeasurementSet(nets, str(path), sha256_of(path), "hwnasbench",
                          {"row": f"{device}/{framework}/{task}", "arch_strings_sha256": sha256_of(arch_strings)})


def write_generic_csv(nets, path) -> Path:
    """Write measurements in the generic format (what a user's own tool would produce)."""
    from edgenas.io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["genotype", "latency_ms", "batch", "threads"])
    for n in nets:
        w.writerow([n.genotype, f"{n.latency_ms:.6g}", n.batch, n.threads or ""])
    return atomic_write_text(path, buf.getvalue())


def read_measurements(path, fmt: str = "generic", space: str | None = None, configs=None, arch_strings=None,
                      row: str | None = None) -> MeasurementSet:
    """Any supported measurements file. ``nnmeter`` finds ``nasbench201-configs.json`` beside the log unless
    ``configs`` is given; ``hwnasbench`` needs ``arch_strings`` (index -> arch_str CSV) and ``row``
    (``device/framework/task``, e.g. ``pi5/litert/cifar100``)."""
    path = Path(path)
    if fmt == "generic":
        return read_generic_csv(path, space)
    if fmt == "nnmeter":
        return read_nnmeter_log(path, configs or path.parent / "nasbench201-configs.json")
    if fmt == "hwnasbench":
        if not arch_strings or not row:
            raise InputError("--format hwnasbench needs --arch-strings FILE (arch_idx,arch_str) and "
                             "--row DEVICE/FRAMEWORK/TASK (e.g. pi5/litert/cifar100)")
        parts = row.split("/")
        if len(parts) != 3:
            raise InputError(f"--row must be DEVICE/FRAMEWORK/TASK, got {row!r}")
        return read_hwnasbench(path, arch_strings, *parts)
    raise InputError(f"unknown measurements format {fmt!r} (formats: {', '.join(FORMATS)})")


def net_features(net: MeasuredNet, batch: int = 1):
    """What ``edgenas.latency.fit`` takes for one network: its cell (a space with whole-network cell
    features), or the counts of its op keys."""
    from edgenas.spaces.genotype import Genotype

    if not isinstance(net.arch, Genotype):
        return net.arch
    g = net.arch
    sp = g.resolve()
    counts: dict[str, float] = {"const": 1.0}
    for spec in sp.op_specs(g.arch):
        counts[spec.key] = counts.get(spec.key, 0.0) + 1.0
    return counts
