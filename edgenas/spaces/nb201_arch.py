"""NAS-Bench-201 cell architectures: ``arch_str`` text, and which edges the network really executes.

Pure Python and numpy (no torch), so latency fitting, CSV import and the tabular benchmark need
nothing heavier; the one place that spells NAS-Bench-201 cells (an ``Nb201Arch`` of op names, or
the benchmark's tuple of 6 op indices and its base-5 *code*), and the features whole NAS-Bench-201
networks are fitted by (``Nb201WholeNet``, registered as the space's ``WholeNetFeatures``; see the end
of this module and ``edgenas.latency.fit``). A cell has 4 nodes;
node ``i`` sums one op over every earlier node ``j < i``; the cell output is node 3. The 6 edges, in
``arch_str`` order, are (0,1), (0,2), (1,2), (0,3), (1,3), (2,3).

An edge is **live** when its op is not ``none``, its source is reachable from node 0 and its target
reaches node 3 through non-``none`` edges. Only live edges are built (see ``edgenas.spaces.nb201``):
a dead edge's output never reaches the cell output, so exporting it would only add compute the graph
optimiser may or may not remove. Building only live edges makes the exported graph and the latency
model agree by construction. A cell whose output is unreachable from its input outputs zeros.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np

from edgenas.errors import GenotypeError
from edgenas.spaces.base import WholeNetFeatures, register_wholenet_features

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


@dataclass(frozen=True)
class Nb201Arch:
    """Six ops, one per edge in ``EDGES`` order."""

    ops: tuple[str, ...]

    def __post_init__(self):
        if len(self.ops) != len(EDGES):
            raise GenotypeError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(self.ops)}")
        for op in self.ops:
            if op not in NB201_OPS:
                raise GenotypeError(f"unknown NAS-Bench-201 op {op!r} (ops: {', '.join(NB201_OPS)})")

    def to_arch_str(self) -> str:
        nodes, k = [], 0
        for i in range(1, 4):
            nodes.append("|" + "|".join(f"{self.ops[k + j]}~{j}" for j in range(i)) + "|")
            k += i
        return "+".join(nodes)

    def _reaches_output(self) -> set[int]:
        """Nodes with a path of non-``none`` edges to node 3."""
        bwd = {3}
        for (j, i), op in reversed(list(zip(EDGES, self.ops))):
            if op != "none" and i in bwd:
                bwd.add(j)
        return bwd

    def live_edges(self) -> tuple[bool, ...]:
        """Per edge: does the network execute it (see module docstring)."""
        on = [op != "none" for op in self.ops]
        fwd = {0}
        for (j, i), e in zip(EDGES, on):  # EDGES is topologically ordered by target
            if e and j in fwd:
                fwd.add(i)
        bwd = self._reaches_output()
        return tuple(e and j in fwd and i in bwd for (j, i), e in zip(EDGES, on))

    def executed_edges(self, pruning: str = "path") -> tuple[bool, ...]:
        """Per edge: does a runtime execute it, under one of two pruning behaviours.

        ``path``: only edges on an input-to-output path of non-``none`` edges run (``live_edges``).
        ``output``: the graph optimiser removes only what cannot reach the output; an edge whose source
        node is all-``none`` (a zeros tensor made by ``x * 0``, which no optimiser folds because it
        depends on the input) still runs, and so does every ``none`` edge (a multiply by zero) into a
        node that reaches the output. This is what a PyTorch NAS-Bench-201 model exported as is does.
        """
        if pruning == "path":
            return self.live_edges()
        if pruning != "output":
            raise ValueError(f"unknown pruning {pruning!r} (path, output)")
        bwd = self._reaches_output()
        return tuple(i in bwd for (_, i) in EDGES)

    def zero_nodes(self) -> tuple[int, ...]:
        """Inner nodes made only of ``none`` edges (a zeros tensor) that still feed a non-``none`` edge on a
        path to the output. Under ``path`` pruning that edge is dead and not built here; a model exported
        by other code keeps it, and a runtime may or may not fold the zeros away (measured on Intel's NCS2:
        such a node 2 costs about 1 ms, a quarter of the network, while such a node 1 is folded for free).
        The whole-network fit gives each such node a term (``zero<n>``) and lets the measurements say."""
        bwd = self._reaches_output()
        out = []
        for n in (1, 2):
            ins = [op for (_, i), op in zip(EDGES, self.ops) if i == n]
            feeds = any(op != "none" and i in bwd for (j, i), op in zip(EDGES, self.ops) if j == n)
            if feeds and all(op == "none" for op in ins):
                out.append(n)
        return tuple(out)

    def same_graph_key(self) -> tuple:
        """Equal for cells whose networks compute the same graph: the live ops, up to swapping nodes 1 and 2
        when no live edge joins them. A cell with a zero node (``zero_nodes``) keys as itself, since what its
        runtime executes depends on how it treats those zeros. Measurements of networks with equal keys differ
        only by noise and by what the runtime does with the order of equal work (a floor for any model)."""
        if self.zero_nodes():
            return ("as-is",) + self.ops
        ops = self.live_ops()
        if ops[2] != "none":
            return ops
        return min(ops, (ops[1], ops[0], ops[2], ops[3], ops[5], ops[4]))

    @property
    def connected(self) -> bool:
        """Whether any path of non-``none`` edges joins the cell input to its output."""
        return any(self.live_edges())

    def live_ops(self) -> tuple[str, ...]:
        """The ops with dead edges replaced by ``none``: what the network computes."""
        return tuple(op if live else "none" for op, live in zip(self.ops, self.live_edges()))


def parse_arch_str(text: str) -> Nb201Arch:
    """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; raises GenotypeError saying what is wrong."""
    s = str(text).strip()
    parts = s.split("+")
    if len(parts) != 3:
        raise GenotypeError(f"not a NAS-Bench-201 arch_str (need 3 '+'-separated nodes): {s[:80]!r}")
    ops = []
    for i, part in enumerate(parts, start=1):
        if not (part.startswith("|") and part.endswith("|")):
            raise GenotypeError(f"node {i} of arch_str is not '|op~j|...|': {part!r}")
        tokens = part[1:-1].split("|")
        if len(tokens) != i:
            raise GenotypeError(f"node {i} of arch_str needs {i} edges, got {len(tokens)}: {part!r}")
        for j, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m or int(m.group(2)) != j:
                raise GenotypeError(f"bad edge {tok!r} in node {i} of arch_str (expected 'op~{j}')")
            ops.append(m.group(1))
    return Nb201Arch(tuple(ops))


def looks_like_arch_str(text: str) -> bool:
    s = str(text).strip()
    return s.startswith("|") and "~" in s and s.endswith("|")


# ---- integer encoding (the tabular benchmark's): 6 op indices per cell, and their base-5 code ------------
# A cell is a tuple of 6 indices into NB201_OPS in EDGES order; its *code* is the base-5 number of that
# tuple (edge 0 most significant), 0..15,624. This is not the NAS-Bench-201 index (that order comes from
# the benchmark's own list, see ``edgenas.bench.sources``).

N_EDGES, N_OPS = len(EDGES), len(NB201_OPS)
N_ARCHS = N_OPS ** N_EDGES
NONE = NB201_OPS.index("none")
# the 4 input->output paths of the cell, as edge indices
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


def to_str(arch) -> str:
    """The ``arch_str`` of a tuple of op indices."""
    return Nb201Arch(tuple(NB201_OPS[int(o)] for o in arch)).to_arch_str()


def from_str(s: str) -> tuple[int, ...]:
    """The op indices of an ``arch_str``; a ``GenotypeError`` names what is wrong."""
    return tuple(NB201_OPS.index(op) for op in parse_arch_str(s).ops)


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
    """``Nb201Arch.live_edges`` of a tuple of op indices."""
    return Nb201Arch(tuple(NB201_OPS[int(o)] for o in arch)).live_edges()


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


def features(archs: np.ndarray) -> np.ndarray:
    """Surrogate features of (n, 6) archs: one-hot ops of live edges (30) + BANANAS-style path
    encoding (which op sequence each of the 4 input->output paths carries; paths through ``none``
    carry nothing): 30 + 4 + 16 + 16 + 64 = 130 columns."""
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


# ---- whole-network latency features (what ``edgenas.latency.fit`` fits NAS-Bench-201 networks by) ------
# Places where an edge into node i meets an edge out of node i (i = 1, 2): (in-edge, out-edge) indices.
_MEETS = tuple((a, b) for a, (_, ia) in enumerate(EDGES) for b, (jb, _) in enumerate(EDGES) if ia == jb and ia != 3)


def nb201_feature_names(level: str = "fusion") -> list[str]:
    names = ["const"] + [f"op:{op}" for op in NB201_OPS]
    names += [f"e{j}{i}:{op}" for (j, i), op in product(EDGES, NB201_OPS)]
    names += [f"zero{n}" for n in (1, 2)]
    if level == "fusion":
        names += [f"m{a}{b}:{p}>{q}" for (a, b), p, q in product(_MEETS, NB201_OPS, NB201_OPS)]
        names += [f"n{i}:in{k}" for i in (1, 2, 3) for k in range(2, i + 1)]
    return names


def nb201_features(arch: Nb201Arch, level: str = "fusion", pruning: str = "path") -> dict[str, float]:
    """Sparse features of one cell (the same cell is repeated 15 times, so these are per-cell terms).

    ``pruning`` says which edges the runtime executes (``Nb201Arch.executed_edges``). Under ``path``
    pruning, ``zero<n>`` marks an all-``none`` node that feeds the output anyway (``Nb201Arch.zero_nodes``):
    whether the runtime folds those zeros or runs what they feed is learned from the measurements. Under
    ``output`` pruning the edges such a node feeds are executed edges already, so there is no such term
    (measured: on every HW-NAS-Bench-360 row it came out at -1..+1% and only added variance)."""
    live = arch.executed_edges(pruning)
    f = {"const": 1.0}
    for (j, i), op, on in zip(EDGES, arch.ops, live):
        if on:
            f[f"e{j}{i}:{op}"] = 1.0
            f[f"op:{op}"] = f.get(f"op:{op}", 0.0) + 1.0
    if pruning == "path":
        for n in arch.zero_nodes():
            f[f"zero{n}"] = 1.0
    if level == "fusion":
        for a, b in _MEETS:
            if live[a] and live[b]:
                f[f"m{a}{b}:{arch.ops[a]}>{arch.ops[b]}"] = 1.0
        for i in (1, 2, 3):
            k = sum(on for (_, t), on in zip(EDGES, live) if t == i)
            if k >= 2:
                f[f"n{i}:in{k}"] = 1.0
    return f


def nb201_prior(space, op_ms) -> dict[str, float]:
    """Per-feature prior latencies for an ``nb201`` space from an op table: ``op_ms(specs) -> {key: ms}``.

    ``const`` = stem + reduction blocks + head; ``op:<op>`` = that op on one edge of every cell. Edge
    terms are deviations from their op's mean, so their prior stays 0."""
    fixed = space.fixed_specs()
    prior = {"const": sum(op_ms(fixed)[s.key] for s in fixed)}
    for op in NB201_OPS:
        specs = [space._edge_spec(op, c, s) for c, s in space._stages() for _ in range(space.config.cells_per_stage)]
        ms = op_ms(specs)
        prior[f"op:{op}"] = sum(ms[s.key] for s in specs)
    return prior


class Nb201WholeNet(WholeNetFeatures):
    """NAS-Bench-201 networks by their cell: live edges, fusion of neighbours, a learned residual over
    the executed op of each edge (see ``edgenas.latency.fit``), under either pruning behaviour."""

    space = "nb201"
    arch_cls = Nb201Arch
    prunings = ("path", "output")
    residual = True
    refinements = ("zero",)  # zero<n>: what a path-pruning runtime does with all-none nodes

    def reads(self, text: str) -> bool:
        return looks_like_arch_str(text)

    def parse(self, text: str) -> Nb201Arch:
        return parse_arch_str(text)

    def to_text(self, arch: Nb201Arch) -> str:
        return arch.to_arch_str()

    def connected(self, arch: Nb201Arch) -> bool:
        return arch.connected

    def feature_names(self, level: str) -> list[str]:
        return nb201_feature_names(level)

    def features(self, arch: Nb201Arch, level: str, pruning: str) -> dict[str, float]:
        return nb201_features(arch, level, pruning)

    def codes(self, archs, pruning: str) -> np.ndarray:
        """Per edge: 1 + the executed op's index in NB201_OPS, or 0 (not executed)."""
        out = np.zeros((len(archs), len(EDGES)))
        for r, a in enumerate(archs):
            run = a.executed_edges(pruning)
            out[r] = [NB201_OPS.index(op) + 1 if on else 0 for op, on in zip(a.ops, run)]
        return out

    def prior(self, space, op_ms) -> dict[str, float]:
        return nb201_prior(space, op_ms)


NB201_WHOLENET = register_wholenet_features(Nb201WholeNet())
