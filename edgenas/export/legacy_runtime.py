"""A real older TFLite runtime, run in another Python: load tests and the op table they produce.

Boards often carry ``tflite_runtime`` 2.14 (the last release on PyPI), which needs numpy 1.x and
so cannot live beside this environment. Given that Python's path (a venv with
``tflite-runtime==2.14.0 "numpy<2"``), ``run_model`` loads and invokes a model there and returns
its outputs, and ``probe_op_support`` asks that runtime's op resolver which (builtin, version)
pairs it registers, by building one tiny single-op model per pair: the resolver runs when the
interpreter is constructed, before any tensor is checked, and says "Didn't find op" or "builtin
code out of range" for what it lacks. ``_tflite214_ops.py`` is that probe's output for 2.14.0;
regenerate it with ``python -m edgenas.export.legacy_runtime PYTHON``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgenas.errors import InputError

_RUN = r"""
import json, sys
import numpy as np
try:
    from tflite_runtime.interpreter import Interpreter
    import tflite_runtime
    runtime = "tflite_runtime " + tflite_runtime.__version__
except ImportError:
    from ai_edge_litert.interpreter import Interpreter
    runtime = "ai_edge_litert"
model, inp, out = sys.argv[1:4]
res = {"runtime": runtime}
try:
    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    x = np.load(inp)
    outs = []
    (si, zi), (so, zo) = d["quantization"], o["quantization"]  # int8 I/O: the app's (de)quantization
    for i in range(0, len(x), int(d["shape"][0])):
        xi = x[i:i + int(d["shape"][0])]
        if np.dtype(d["dtype"]).kind in "iu":
            info = np.iinfo(d["dtype"])
            xi = np.clip(np.round(xi / si) + zi, info.min, info.max)
        it.set_tensor(d["index"], np.ascontiguousarray(xi, dtype=d["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"]).copy()
        outs.append((y.astype(np.float32) - zo) * so if np.dtype(o["dtype"]).kind in "iu" else y)
    np.save(out, np.concatenate(outs))
    res["loaded"] = True
except Exception as e:
    res["loaded"] = False
    res["error"] = (type(e).__name__ + ": " + " ".join(str(e).split()))[:400]
print(json.dumps(res))
"""

_PROBE = r"""
import glob, json, os, sys
from tflite_runtime.interpreter import Interpreter
import tflite_runtime
ok, bad = {}, {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.tflite"))):
    name, v = os.path.basename(f)[:-7].rsplit(".", 1)
    try:
        Interpreter(model_path=f)
        found = True
    except Exception as e:
        msg = str(e)
        found = "Didn't find op" not in msg and "out of range" not in msg  # else: resolved, failed later
    (ok if found else bad).setdefault(name, []).append(int(v))
print(json.dumps({"runtime": "tflite_runtime " + tflite_runtime.__version__,
                  "ops": {k: sorted(v) for k, v in sorted(ok.items())}}))
"""


def _python(python) -> str:
    p = Path(python)
    if not p.exists():
        raise InputError(f"no Python at {python}; make one with: python3 -m venv V && V/bin/pip install "
                         f"tflite-runtime==2.14.0 'numpy<2'")
    return str(p)


def run_model(python, model_path, inputs: np.ndarray, timeout: float = 300) -> dict:
    """Load ``model_path`` in ``python``'s TFLite runtime and run ``inputs`` (batches of the model's batch).

    Returns {"runtime", "loaded", "error"?, "outputs"?}: a model the runtime refuses is a result,
    not an exception, so the report can say what the runtime said.
    """
    with tempfile.TemporaryDirectory(prefix="edgenas-legacy-") as tmp:
        inp, out = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(inp, np.ascontiguousarray(inputs, dtype=np.float32))
        p = subprocess.run([_python(python), "-c", _RUN, str(model_path), str(inp), str(out)],
                           capture_output=True, text=True, timeout=timeout)
        try:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            tail = " ".join(p.stderr.split())[-300:]
            return {"runtime": "unknown", "loaded": False, "error": f"the runtime's Python failed: {tail}"}
        if res.get("loaded"):
            res["outputs"] = np.load(out)
        return res


def legacy_parity(python, model_path, x: np.ndarray, reference: np.ndarray, atol: float, layout: str,
                  info: dict) -> tuple[str, dict, list[tuple[str, str]]]:
    """Run ``model_path`` on NCHW ``x`` in ``python``'s runtime and compare with ``reference``.

    The load test joins the static 2.14 check in ``info`` (the artifact's report section); returns
    (name, parity entry, failures) for the export report, as ``Backend.more_parity`` does.
    """
    from edgenas.export.parity import compare, describe_failure
    from edgenas.profiling.inputs import from_layout, to_layout

    lr = run_model(python, model_path, to_layout(x, layout))
    entry = {"runtime": lr.get("runtime"), "loaded": lr["loaded"], "error": lr.get("error")}
    if lr["loaded"]:
        entry.update(compare(reference, np.asarray(from_layout(lr["outputs"], layout)), atol))
    info["tflite_runtime_2_14"]["load_test"] = entry
    if not lr["loaded"]:
        return ("tflite_runtime_legacy", {"passed": False, "max_abs_diff": float("inf"), "problem": lr.get("error")},
                [("tflite_runtime", f"{lr.get('runtime')} could not load {Path(model_path).name}: {lr.get('error')}")])
    failures = [] if entry["passed"] else [("parity", describe_failure(lr.get("runtime", "legacy runtime"), entry, atol))]
    return "tflite_runtime_legacy", entry, failures


def probe_models(directory: Path) -> int:
    """Write one single-op model per (builtin op, version 1..13) into ``directory``; returns the count."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from edgenas.export.tflite import builtin_names

    skip = {"CUSTOM", "PLACEHOLDER_FOR_GREATER_OP_CODES", "DELEGATE"}
    n = 0
    for code, name in sorted(builtin_names().items()):
        if name in skip:
            continue
        for version in range(1, 14):
            m = schema.ModelT()
            m.version = 3
            oc = schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
            m.operatorCodes = [oc]
            sg = schema.SubGraphT()
            sg.tensors, sg.inputs, sg.outputs = [], [], []
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = 0, [], []
            sg.operators = [op]
            m.subgraphs, m.buffers = [sg], [schema.BufferT()]
            b = flatbuffers.Builder(256)
            b.Finish(m.Pack(b), file_identifier=b"TFL3")
            (directory / f"{name}.{version}.tflite").write_bytes(bytes(b.Output()))
            n += 1
    return n


def probe_op_support(python) -> dict:
    """{"runtime": "tflite_runtime X", "ops": {BUILTIN: [versions it registers]}} of ``python``'s runtime."""
    with tempfile.TemporaryDirectory(prefix="edgenas-probe-") as tmp:
        probe_models(Path(tmp))
        p = subprocess.run([_python(python), "-c", _PROBE, tmp], capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise InputError(f"probing {python} failed (does it have tflite_runtime?): {' '.join(p.stderr.split())[-300:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])


def write_op_table(python, path: Path) -> Path:
    """Regenerate ``_tflite214_ops.py`` (or another runtime's table) from a real runtime."""
    from edgenas.io import atomic_write_text

    res = probe_op_support(python)
    lines = [f'"""Builtin ops and versions {res["runtime"]} registers: generated by',
             f'``python -m edgenas.export.legacy_runtime PYTHON`` (a real probe, see legacy_runtime.py)."""', "",
             f"RUNTIME = {res['runtime']!r}", "", "OPS = {"]
    lines += [f"    {k!r}: {tuple(v)!r}," for k, v in res["ops"].items()]
    lines += ["}", ""]
    return atomic_write_text(path, "\n".join(lines))


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    if len(sys.argv) != 2:
        sys.exit("usage: python -m edgenas.export.legacy_runtime PYTHON_WITH_TFLITE_RUNTIME")
    print(write_op_table(sys.argv[1], Path(__file__).with_name("_tflite214_ops.py")))
