"""tools/edgenas_device_runner.py on its own: Python 3.8 syntax, no edgenas/torch, same statistics as edgenas.

The protocol is duplicated in the runner (a device has no edgenas); these tests hold the copy to
the original: the same summary on the same samples, the same rounds and stops on the same
synthetic host, and benchmark_model output parsed from captured text.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgenas.profiling.protocol import ProtocolSettings, measure, summarize

RUNNER = Path(__file__).resolve().parents[1] / "tools" / "edgenas_device_runner.py"
HELPER = RUNNER.with_name("android_benchmark.sh")


@pytest.fixture(scope="module")
def rt():
    spec = importlib.util.spec_from_file_location("edgenas_device_runner_under_test", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- standalone-ness ------------------------------------------------------------------------------------
def test_runner_parses_as_python_38_and_avoids_newer_idioms():
    src = RUNNER.read_text()
    tree = ast.parse(src, feature_version=(3, 8))  # no match, no except*, no parenthesised context managers
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"torch", "edgenas", "pandas", "yaml", "typer", "rich"}
    for node in ast.walk(tree):
        # builtin generics (list[int]) and X | Y evaluate at run time in 3.8 annotations and fail there
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            assert node.value.id not in ("list", "dict", "tuple", "set", "type"), ast.dump(node)
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("removeprefix", "removesuffix", "file_digest"), node.attr
        if isinstance(node, ast.keyword):
            assert node.arg != "strict", "zip(strict=) is 3.10+"
        if isinstance(node, (ast.FunctionDef, ast.arg)):
            assert getattr(node, "returns", None) is None and getattr(node, "annotation", None) is None


def test_runner_compiles_under_a_real_python_38(python38):
    if python38 is None:
        pytest.skip("no python3.8 on this machine (the syntax check above still ran)")
    p = subprocess.run([python38, "-m", "py_compile", str(RUNNER)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_runner_starts_without_numpy_and_rejects_a_non_bundle_in_one_line(tmp_path):
    """A bare venv (no numpy, no runtime) stands in for a board that lacks them."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bundle = tmp_path / "b"
    bundle.mkdir()
    p = subprocess.run([str(venv / "bin" / "python"), str(RUNNER), "check", str(bundle)], capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "manifest.json" in p.stderr  # bundle first
    (bundle / "manifest.json").write_text("{}")
    p = subprocess.run([str(venv / "bin" / "python"), str(RUNNER), "check", str(bundle)], capture_output=True,
                       text=True)
    assert p.returncode == 2 and "not an edgenas bundle" in p.stderr and "Traceback" not in p.stderr


def test_runner_loads_the_runtime_the_backend_names(rt):
    """Bundles name the runtime (``runner_runtime``); bundles from before that name only their backend."""
    from edgenas.profiling.base import backend_class

    for name in ("onnxruntime", "tflite"):
        want = backend_class(name).runner_runtime
        assert rt.bundle_runtime({"backend": "a-plugin-backend", "runner_runtime": want}) == want
        assert rt.find_runtime(rt.bundle_runtime({"backend": name}))[1]  # an older manifest still runs
    with pytest.raises(rt.RunnerError, match="not 'torch-cpu'"):
        rt.find_runtime(rt.bundle_runtime({"backend": "torch-cpu"}))


def test_shell_helper_is_posix_sh():
    p = subprocess.run(["sh", "-n", str(HELPER)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


# ---- the protocol copy --------------------------------------------------------------------------------
@pytest.mark.parametrize("paired", [True, False])
def test_runner_summary_equals_edgenas_summarize(rt, paired):
    rng = np.random.default_rng(3)
    samples = rng.lognormal(-9, 0.4, 600)
    blocks = list(np.median(samples.reshape(12, -1), axis=1))
    refs = list(rng.lognormal(-9.5, 0.1, 12)) if paired else None
    want = summarize(samples, blocks, 12, 0.03, refs).as_dict()
    got = rt.summarize(samples, blocks, 12, 0.03, refs)
    assert set(got) == set(want)
    for k, v in want.items():
        if isinstance(v, float) and np.isnan(v):
            assert np.isnan(got[k]), k
        else:
            assert got[k] == v, k  # identical arithmetic, identical numbers


class _Host:
    def __init__(self, factors):
        self.factors, self.i = factors, 0

    def next(self):
        f = self.factors[self.i % len(self.factors)]
        self.i += 1
        return f


class _Synthetic:
    """A timer whose per-call seconds come from a schedule shared with a drifting host (deterministic)."""

    def __init__(self, base, host, noise, seed):
        self.base, self.host, self.noise = base, host, noise
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        pass

    def time_block(self, calls):
        return self.base * self.host.next() * (1 + self.noise * self.rng.standard_normal(calls)).clip(0.5)

    def close(self):
        pass


def test_runner_measure_equals_edgenas_measure_on_the_same_host(rt):
    """Same order of visits, same pairing, same stopping: same statistics for every entry."""
    settings = ProtocolSettings(warmup_calls=1, warmup_s=0.0, max_block_calls=1, min_rounds=4, max_rounds=15,
                                target_rel_ci=0.05, time_cap_s=600, max_rounds_wide=30)
    # the host's speed moves between visits; a reference block and its entry block share a phase
    factors = [f for f in np.random.default_rng(7).uniform(0.7, 1.6, 97) for _ in (0, 1)]

    def timers():
        host = _Host(factors)
        ts = {f"op{i}": _Synthetic(base, host, noise, i)
              for i, (base, noise) in enumerate([(1e-4, 0.01), (3e-4, 0.03), (2e-5, 0.2), (8e-4, 0.02)])}
        return ts, _Synthetic(5e-5, host, 0.01, 99)

    ts, ref = timers()
    want = measure(ts, settings, reference=ref)
    ts, ref = timers()
    stats, rounds, _, refs = rt.measure(ts, settings.as_dict(), ref)
    assert rounds == want.rounds and refs == want.reference_ms
    per_entry = sorted(st["rounds"] for st in stats.values())
    # quiet entries stopped early; the noisy one ran on past max_rounds while its CI was over wide_rel_ci
    assert per_entry[0] < 15 and 15 < per_entry[-1] <= 30
    for k, st in want.stats.items():
        assert stats[k] == st.as_dict(), k


# ---- benchmark_model output -----------------------------------------------------------------------------
BENCHMARK_MODEL_OUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [50]
INFO: Num threads: [4]
INFO: Min runs duration (seconds): [1]
INFO: Graph: [/data/local/tmp/edgenas-0123456789abcdef/models/b1/0003.tflite]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/edgenas-0123456789abcdef/models/b1/0003.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: XNNPACK delegate created.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
INFO: The input model file size (MB): 0.014716
INFO: Initialized session in 3.456ms.
INFO: Running benchmark for at least 10 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=3843 first=2345 curr=118 min=102 max=2345 avg=129.96 std=41

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=8142 first=124 curr=117 min=101 max=388 avg=120.3 std=12

INFO: Inference timings in us: Init: 3456, First inference: 2345, Warmup (avg): 129.96, Inference (avg): 120.3
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your own discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=1.85938 max resident set size=10.6992 total rss=12.5586
"""

OLD_STYLE_OUT = """\
Loaded model m.tflite
Initialized session in 0.689ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=536 first=11013 curr=912 min=870 max=11013 avg=932.4 std=438
Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=1081 first=941 curr=902 min=872 max=1490 avg=924.83 std=41
"""


def test_benchmark_model_parser_takes_the_timed_runs(rt):
    out = rt.parse_benchmark_model(BENCHMARK_MODEL_OUT)
    assert out["count"] == 8142 and out["avg_us"] == 120.3 and out["std_us"] == 12.0
    assert out["min_us"] == 101 and out["max_us"] == 388 and out["warmup_count"] == 3843
    assert out["init_us"] == 3456 and out["inference_avg_us"] == 120.3
    old = rt.parse_benchmark_model(OLD_STYLE_OUT)  # TFLite 2.x builds print no "INFO:" and no timings line
    assert old["count"] == 1081 and old["avg_us"] == 924.83 and "init_us" not in old


def test_benchmark_model_parser_rejects_failed_and_inconsistent_output(rt):
    with pytest.raises(rt.RunnerError, match="no 'count="):
        rt.parse_benchmark_model("ERROR: Could not open 'x.tflite'.\nERROR: Benchmarking failed.\n")
    bad = BENCHMARK_MODEL_OUT.replace("Inference (avg): 120.3", "Inference (avg): 180.3")
    with pytest.raises(rt.RunnerError, match="disagrees"):
        rt.parse_benchmark_model(bad)
