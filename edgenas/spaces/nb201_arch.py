"""NAS-Bench-201 cell architectures: ``arch_str`` text, and which edges the network really executes.

Pure Python (no torch), so latency fitting and CSV import need nothing heavier. A cell has 4 nodes;
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

from edgenas.errors import GenotypeError

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

    def live_edges(self) -> tuple[bool, ...]:
        """Per edge: does the network execute it (see module docstring)."""
        on = [op != "none" for op in self.ops]
        fwd = {0}
        for (j, i), e in zip(EDGES, on):  # EDGES is topologically ordered by target
            if e and j in fwd:
                fwd.add(i)
        bwd = {3}
        for (j, i), e in reversed(list(zip(EDGES, on))):
            if e and i in bwd:
                bwd.add(j)
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
        on = [op != "none" for op in self.ops]
        bwd = {3}
        for (j, i), e in reversed(list(zip(EDGES, on))):
            if e and i in bwd:
                bwd.add(j)
        return tuple(i in bwd for (_, i) in EDGES)

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
