"""The issue's acceptance run: bundle -> runner in a venv without torch -> import reproduces direct profiling.

For onnxruntime and for TFLite (ai_edge_litert), 8 DARTS ops are measured twice on this host:
directly with ``profile_ops`` and through a bundle run by tools/edgenas_device_runner.py in a
venv that has numpy and the runtimes but no torch and no edgenas. Both time the very same
artifact files. They are compared on ``ref_ratio`` (entry / paired reference op), which cancels
the host's speed phases; raw milliseconds on this VM move 10-40% between processes and are
not compared. Tolerances: the median bundle/direct ratio (a scale common to all ops: where the
paired reference fell in one run) within 20%; each op against that median within 35%, all ops but
one, and within 2x for that one. Measured here (2-core VM, other jobs running; log in
docs/mobile-teams.md): per-op differences mostly under 10%, the worst around 20%; but a CI run on
2026-12-02 saw one op (TFLite dil_conv_5x5) 39% apart, with every op 3-33% lower in the bundle run
(median 0.89): the VM's 1.4x speed phases last 0.1-1 s, so now and then a reference and the ops paired with it fall in different phases. A
runner that measured something else (another artifact, thread count or batch) moves the scale
beyond 20% or several ops beyond 35%, which still fails.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgenas.devices import get_profile
from edgenas.latency.store import TableStore
from edgenas.profiling.base import create_backend
from edgenas.profiling.bundle import build_bundle
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.results_import import import_results
from edgenas.profiling.runner import profile_ops, space_specs

RUNNER = Path(__file__).resolve().parents[1] / "tools" / "edgenas_device_runner.py"
PICK = [0, 5, 9, 13, 22, 27, 31, 44]  # stem, 1x1 conv, logits, pool, sep/dil convs at three resolutions
SCALE_TOL, PER_OP_TOL, OUTLIER_TOL = 0.20, 0.35, 1.0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "tflite"])
def test_bundle_runner_import_matches_direct_profile(backend, runner_python, tmp_path_factory, capsys):
    work = tmp_path_factory.mktemp(f"fidelity-{backend}")
    assert subprocess.run([str(runner_python), "-c", "import torch"], capture_output=True).returncode != 0
    all_specs = space_specs(["darts"], "small")
    specs = [all_specs[i] for i in PICK]
    device = get_profile("x86-64-host")
    be = create_backend(backend, threads=1)
    settings = ProtocolSettings()
    cache = work / "cache"

    direct = TableStore(work / "direct")
    profile_ops(device, be, specs, [1], direct, settings=settings, cache=cache)

    via = TableStore(work / "bundle")
    b = build_bundle(device, be, specs, [1], work / "b.zip", settings, store=via, cache=cache)
    out = work / "results.json"
    p = subprocess.run([str(runner_python), str(RUNNER), "run", str(b.path), "--out", str(out)], capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    assert res["modules"] == {"torch": False, "edgenas": False}
    rep = import_results(out, via)
    assert rep.imported == len(specs) and not rep.warnings  # x86 facts match x86-64-host

    a = direct.load("x86-64-host", backend).df.set_index("op_key")
    c = via.load("x86-64-host", backend).df.set_index("op_key")
    assert set(a.index) == set(c.index) == {s.key for s in specs}
    assert set(a["runtime_version"]) == set(c["runtime_version"]) == {be.runtime_version()}
    ratio = (c["ref_ratio"] / a.loc[c.index, "ref_ratio"]).sort_values()
    log_ratio = np.log(ratio.to_numpy())
    scale = np.median(log_ratio)  # common to all ops: the reference op's phase in one run
    shape = np.abs(log_ratio - scale)  # each op against the others
    with capsys.disabled():
        print(f"\n{backend}: bundle/direct ref_ratio per op (median {np.exp(scale):.3f}, worst op against it "
              f"{np.expm1(shape.max()):.1%}); raw median_ms ratio "
              f"{np.median(c['median_ms'] / a.loc[c.index, 'median_ms']):.2f}")
        for k, r in ratio.items():
            print(f"  {r:6.3f}  direct {a.loc[k, 'ref_ratio']:7.3f}  bundle {c.loc[k, 'ref_ratio']:7.3f}  {k}")
    assert abs(scale) < np.log1p(SCALE_TOL), ratio.to_dict()
    assert (shape >= np.log1p(PER_OP_TOL)).sum() <= 1, ratio.to_dict()
    assert shape.max() < np.log1p(OUTLIER_TOL), ratio.to_dict()
