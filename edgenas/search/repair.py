"""Bring an over-target architecture under the target with the fewest, smallest changes.

A search with a small budget (or a steep table, such as the Pixel 1's at 224 px) can end with no
candidate predicted under the target. Rather than retrain an architecture that is known to miss,
the pipeline repairs the best candidates: one decision at a time, using only the predictor (a
table lookup per try, no training), it makes the change that reaches the target while giving up
the least latency, or, when no single change reaches it, the change that saves the most.
"""

from __future__ import annotations

from dataclasses import replace

from edgenas.errors import EdgeNASError
from edgenas.search.base import Candidate


def repair_to_target(space, predict_ms, arch, target_ms: float, max_changes: int | None = None):
    """(arch, predicted_ms, changes) with predicted_ms <= target_ms, or None if greedy changes cannot get there."""
    choices = list(space.decisions_of(arch))
    sizes = space.decisions()
    current = float(predict_ms(arch))
    changes = 0
    limit = max_changes if max_changes is not None else 2 * len(sizes)
    while current > target_ms and changes < limit:
        best_reach, best_save = None, None
        for i, n in enumerate(sizes):
            for v in range(n):
                if v == choices[i]:
                    continue
                trial = choices.copy()
                trial[i] = v
                try:
                    cand = space.arch_from_decisions(trial)
                    ms = float(predict_ms(cand))
                except (ValueError, EdgeNASError):  # a combination the space or the table does not have
                    continue
                if ms <= target_ms and (best_reach is None or ms > best_reach[0]):
                    best_reach = (ms, trial, cand)
                if ms < current and (best_save is None or ms < best_save[0]):
                    best_save = (ms, trial, cand)
        pick = best_reach or best_save
        if pick is None:
            return None
        current, choices, arch = pick
        changes += 1
    return (arch, current, changes) if current <= target_ms else None


def repaired_candidates(ctx, cands: list[Candidate], k: int) -> list[Candidate]:
    """Repaired copies of the best infeasible candidates, when fewer than k are feasible."""
    feasible = [c for c in cands if c.predicted_ms <= ctx.target_ms]
    if len(feasible) >= k:
        return []
    seen = {repr(c.arch) for c in cands}
    out = []
    for c in sorted((c for c in cands if c.predicted_ms > ctx.target_ms), key=lambda c: -c.proxy_acc):
        fixed = repair_to_target(ctx.space, ctx.predicted_ms, c.arch, ctx.target_ms)
        if fixed is None or repr(fixed[0]) in seen:
            continue
        seen.add(repr(fixed[0]))
        # proxy accuracy is the parent's (no supernet evaluation here); retraining measures the real one
        out.append(replace(c, arch=fixed[0], predicted_ms=fixed[1],
                           source=f"{c.source}, repaired ({fixed[2]} change(s) to meet the target)"))
        if len(feasible) + len(out) >= k:
            break
    return out
