"""NAS-Bench-201 cell encoding: 6 edges x 5 ops <-> ``arch_str``.

Kept small and self-contained so that it can be swapped for the ``nb201`` search space of
issue 14 (``edgenas/spaces/nb201.py``) once that lands. An architecture is a tuple of 6 op
indices, one per edge, in ``arch_str`` order:

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|   edges (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2)

Its *code* is the base-5 number of that tuple (edge 0 most significant), 0..15,624; this is not
the NAS-Bench-201 index (that order comes from the benchmark's own list, see ``hwnasbench``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edgenas.errors import GenotypeError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node)
N_EDGES, N_OPS = len(EDGES), len(OPS)
N_ARCHS = N_OPS ** N_EDGES
NONE = 0


def to_str(arch) -> str:
    ops = [OPS[o] for o in arch]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def from_str(s: str) -> tuple[int, ...]:
    """Parse an ``arch_str``; a ``GenotypeError`` names what is wrong."""
    s = s.strip()
    nodes = s.split("+")
    if len(nodes) != 3:
        raise GenotypeError(f"not a NAS-Bench-201 arch_str (want 3 nodes joined by '+'): {s!r}")
    arch = []
    for i, node in enumerate(nodes, start=1):
        parts = [p for p in node.strip().strip("|").split("|") if p]
        if len(parts) != i:
            raise GenotypeError(f"node {i} of {s!r} has {len(parts)} edges, want {i}")
        for j, part in enumerate(parts):
            op, _, src = part.partition("~")
            if op not in OPS:
                raise GenotypeError(f"unknown op {op!r} in {s!r}; known: {', '.join(OPS)}")
            if src != str(j):
                raise GenotypeError(f"edge {part!r} of node {i} in {s!r} should come from node {j}")
            arch.append(OPS.index(op))
    return tuple(arch)


def to_code(arch) -> int:
    code = 0
    for o in arch:
        code = code * N_OPS + int(o)
    return code


def from_code(code: int) -> tuple[int, ...]:
    out = []
    for _ in range(N_EDGES):
        code, o = divmod(int(code), N_OPS)
        out.append(o)
    return tuple(reversed(out))


def all_archs() -> np.ndarray:
    """(15625, 6) int array: row ``c`` is ``from_code(c)``."""
    codes = np.arange(N_ARCHS)
    return np.stack([(codes // N_OPS ** (N_EDGES - 1 - e)) % N_OPS for e in range(N_EDGES)], axis=1)


def live_edges(arch) -> tuple[bool, ...]:
    """Edges on an input->output path of non-``none`` edges (the others do not change the output)."""
    reach_in = {0}
    for e, (to, src) in enumerate(EDGES):  # EDGES are in topological order of 'to'
        if arch[e] != NONE and src in reach_in:
            reach_in.add(to)
    reach_out = {3}
    for e in reversed(range(N_EDGES)):
        to, src = EDGES[e]
        if arch[e] != NONE and to in reach_out:
            reach_out.add(src)
    return tuple(arch[e] != NONE and src in reach_in and to in reach_out for e, (to, src) in enumerate(EDGES))


def is_connected(arch) -> bool:
    """Whether the output depends on the input at all (else the network predicts a constant)."""
    return any(live_edges(arch))


def neighbours(arch) -> list[tuple[int, ...]]:
    """Every architecture one edge-op change away (24)."""
    out = []
    for e in range(N_EDGES):
        for o in range(N_OPS):
            if o != arch[e]:
                out.append(arch[:e] + (o,) + arch[e + 1:])
    return out


# the 4 input->output paths of the cell, as edge indices
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


def features(archs: np.ndarray) -> np.ndarray:
    """Surrogate features of (n, 6) archs: one-hot ops of live edges (30) + BANANAS-style path
    encoding (which op sequence each of the 4 input->output paths carries; paths through ``none``
    carry nothing): 4 + 16 + 16 + 64 = 100 columns."""
    archs = np.asarray(archs)
    n = len(archs)
    live = np.array([live_edges(tuple(a)) for a in archs], dtype=bool) if n else np.zeros((0, N_EDGES), bool)
    onehot = np.zeros((n, N_EDGES * N_OPS), dtype=np.float32)
    for e in range(N_EDGES):
        onehot[np.arange(n), e * N_OPS + archs[:, e]] = live[:, e]
    blocks = [onehot]
    k = N_OPS - 1  # ops other than none
    for path in PATHS:
        idx = np.zeros(n, dtype=np.int64)
        ok = np.ones(n, dtype=bool)
        for e in path:
            ok &= archs[:, e] != NONE
            idx = idx * k + np.maximum(archs[:, e] - 1, 0)
        block = np.zeros((n, k ** len(path)), dtype=np.float32)
        block[np.arange(n)[ok], idx[ok]] = 1.0
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


@lru_cache(maxsize=1)
def all_live() -> np.ndarray:
    """(15625, 6) bool: ``live_edges`` of every code (computed once)."""
    return np.array([live_edges(tuple(a)) for a in all_archs()], dtype=bool)


@lru_cache(maxsize=1)
def all_features() -> np.ndarray:
    """``features`` of every code (computed once; read-only)."""
    f = features(all_archs())
    f.flags.writeable = False
    return f
