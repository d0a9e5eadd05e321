"""Fuzz the contract of issue 13: whatever a user feeds edgenas, it answers with an exit code in
{0, 2..7} and, when non-zero, exactly one line on stderr; never 70 (a bug), never a traceback, and no
tracked file changes. Inputs that cannot be valid (a hashed table edited, out-of-range numbers, a
results file without its bundle) must not exit 0.

Hypothesis mutates each file format edgenas reads and each command's numeric arguments. Examples are
few and derandomized, so CI time stays well under a minute or two and failures reproduce; set
EDGENAS_FUZZ_EXAMPLES to run more locally.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgenas.paths import REPO_ROOT

EXAMPLES = int(os.environ.get("EDGENAS_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
ALLOWED = {0, 2, 3, 4, 5, 6, 7}
TRACKED = [REPO_ROOT / "latency_tables", REPO_ROOT / "device_profiles", REPO_ROOT / "tools"]


def _snapshot() -> dict:
    out = {}
    for root in TRACKED:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module", autouse=True)
def tracked_files_unchanged():
    before = _snapshot()
    yield
    assert _snapshot() == before, "a fuzzed command changed a tracked file"


def invoke(*args, env: dict | None = None) -> tuple[int, str]:
    from edgenas.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run([str(a) for a in args])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, err.getvalue()


def check(code: int, err: str, must_fail: bool = False) -> None:
    assert code in ALLOWED, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code != 0:
        assert err.count("\n") == 1 and err.startswith("error"), err
    if must_fail:
        assert code != 0, "a damaged input was accepted"


# ---- mutations ---------------------------------------------------------------------------------------

@st.composite
def mutated(draw, original: str):
    """A few edits of ``original``: cut a span, duplicate one, overwrite one with junk, or truncate."""
    text = original
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cut", "dup", "junk", "truncate", "swap"]))
        n = len(text)
        i = draw(st.integers(0, max(n - 1, 0)))
        j = min(n, i + draw(st.integers(1, 40)))
        if kind == "cut":
            text = text[:i] + text[j:]
        elif kind == "dup":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "junk":
            junk = draw(st.sampled_from(["-", "nan", "NaN", "-1e309", "1e400", "&a", "*a", ",", "\n", "\"", "{", "[",
                                         "]", "}", ":", "\x00", "é", "0", "200000", "\t", "null", "true", "'"]))
            text = text[:i] + junk + text[j:]
        elif kind == "truncate":
            text = text[:i]
        else:
            text = text[:i] + text[i:j][::-1] + text[j:]
    return text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12)


def _json_dump(v) -> str:
    return json.dumps(v, allow_nan=True)


# ---- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def genotype_file(tmp_path_factory) -> Path:
    from edgenas.spaces import create_space

    sp = create_space("proxyless", "mobile")
    return sp.genotype(sp.sample(random.Random(3))).save(tmp_path_factory.mktemp("g") / "g.json")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A pixel-1 table written by this edgenas (meta with rows and hash)."""
    from edgenas.latency.store import TableStore

    root = tmp_path_factory.mktemp("tables")
    shutil.copytree(REPO_ROOT / "latency_tables" / "pixel-1", root / "pixel-1")
    store = TableStore(root)
    store.save(store.load("pixel-1", "tflite"), "pixel-1", "tflite")
    return root


@contextlib.contextmanager
def scratch(pristine: Path):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "tables"
        shutil.copytree(pristine, root)
        yield root


# ---- the formats -------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_fuzz_table_csv_with_hash(pristine, genotype_file, data):
    csv = (pristine / "pixel-1" / "tflite.csv").read_text()
    text = data.draw(mutated(csv).filter(lambda t: t != csv))
    with scratch(pristine) as root:
        (root / "pixel-1" / "tflite.csv").write_text(text)
        for args in (("tables", "list"), ("predict", genotype_file, "--device", "pixel-1", "--backend", "tflite"),
                     ("tables", "show", "--device", "pixel-1", "--backend", "tflite")):
            code, err = invoke(*args, "--tables-dir", root)
            check(code, err, must_fail=True)


@FUZZ
@given(data=st.data())
def test_fuzz_table_csv_legacy_meta(pristine, genotype_file, data):
    """Without a hash, only the row checks stand between an edit and a prediction."""
    csv = (pristine / "pixel-1" / "tflite.csv").read_text()
    text = data.draw(mutated(csv))
    with scratch(pristine) as root:
        meta = root / "pixel-1" / "tflite.meta.json"
        m = json.loads(meta.read_text())
        for k in ("rows", "csv_sha256", "previous_rows", "previous_csv_sha256"):
            m.pop(k, None)
        meta.write_text(json.dumps(m))
        (root / "pixel-1" / "tflite.csv").write_text(text)
        code, err = invoke("predict", genotype_file, "--device", "pixel-1", "--backend", "tflite",
                           "--tables-dir", root)
        check(code, err)


@FUZZ
@given(data=st.data())
def test_fuzz_table_meta(pristine, data):
    meta_text = (pristine / "pixel-1" / "tflite.meta.json").read_text()
    text = data.draw(st.one_of(mutated(meta_text), json_values.map(_json_dump)))
    with scratch(pristine) as root:
        (root / "pixel-1" / "tflite.meta.json").write_text(text)
        code, err = invoke("tables", "list", "--tables-dir", root)
        check(code, err)


@FUZZ
@given(data=st.data())
def test_fuzz_calibration(pristine, genotype_file, data):
    good = {"format": "edgenas.calibration", "version": 1,
            "calibrations": {"k": {"a": 1.1, "b": 0.2, "c": 0.0, "model": "scale+offset", "n_networks": 10}}}
    text = data.draw(st.one_of(mutated(json.dumps(good)), json_values.map(_json_dump),
                               json_values.map(lambda v: json.dumps({"calibrations": {"k": v}}))))
    with scratch(pristine) as root:
        (root / "pixel-1" / "tflite.calibration.json").write_text(text)
        code, err = invoke("predict", genotype_file, "--device", "pixel-1", "--backend", "tflite",
                           "--tables-dir", root)
        check(code, err)


@FUZZ
@given(data=st.data())
def test_fuzz_device_profile(pristine, genotype_file, data):
    original = (REPO_ROOT / "device_profiles" / "pixel-1.yaml").read_text()
    text = data.draw(mutated(original))
    with tempfile.TemporaryDirectory() as d:
        profiles = Path(d)
        shutil.copy(REPO_ROOT / "device_profiles" / "x86-64-host.yaml", profiles)
        (profiles / "pixel-1.yaml").write_text(text)
        env = {"EDGENAS_DEVICE_PROFILES": str(profiles)}
        code, err = invoke("devices", "show", "pixel-1", env=env)
        check(code, err)
        code, err = invoke("predict", genotype_file, "--device", "pixel-1", "--backend", "tflite",
                           "--tables-dir", pristine, env=env)
        check(code, err)


@FUZZ
@given(data=st.data())
def test_fuzz_genotype(genotype_file, data):
    original = genotype_file.read_text()
    text = data.draw(st.one_of(mutated(original), json_values.map(_json_dump),
                               json_values.map(lambda v: json.dumps({"space": "proxyless", "config": v, "arch": v}))))
    with tempfile.TemporaryDirectory() as d:
        g = Path(d) / "g.json"
        g.write_text(text)
        code, err = invoke("genotype", "show", g)
        check(code, err)


@FUZZ
@given(data=st.data())
def test_fuzz_published_lut(pristine, data):
    good = ("expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0: "
            "{count: 5, mean: 1.5, var: 0.001}\nLogits-input:1x1x1280-output:1000: {count: 5, mean: 0.25, var: 0.0001}\n")
    entry = st.dictionaries(st.sampled_from(["count", "mean", "var", "std", "x"]), json_values, max_size=4)
    text = data.draw(st.one_of(mutated(good),
                               entry.map(lambda e: "Logits-input:1x1x1280-output:1000: " + json.dumps(e) + "\n")))
    with scratch(pristine) as root:
        lut = root.parent / "lut.yaml"
        lut.write_text(text)
        before = (root / "pixel-1" / "tflite.csv").read_bytes()
        code, err = invoke("tables", "import", lut, "--format", "proxylessnas", "--device", "pixel-1",
                           "--tables-dir", root)
        check(code, err)
        if code != 0:
            assert (root / "pixel-1" / "tflite.csv").read_bytes() == before
        else:
            code, err = invoke("tables", "list", "--tables-dir", root)  # what was accepted reads back
            assert code == 0, err


@FUZZ
@given(data=st.data())
def test_fuzz_results_json(pristine, data):
    body = data.draw(st.dictionaries(st.sampled_from(["bundle_id", "device", "backend", "entries", "checksum",
                                                      "version", "references", "threads", "precision"]),
                                     json_values, max_size=6))
    with scratch(pristine) as root:
        res = root.parent / "results.json"
        res.write_text(json.dumps({"format": "edgenas.results", **body}))
        code, err = invoke("tables", "import", res, "--tables-dir", root)
        check(code, err, must_fail=True)


# ---- command arguments -------------------------------------------------------------------------------

BAD_INT = st.one_of(st.integers(max_value=0), st.integers(min_value=10**8), st.sampled_from(["x", "1.5", "", "nan"]))
BAD_FLOAT = st.one_of(st.floats(max_value=-1e-9), st.sampled_from(["nan", "inf", "-inf", "x", ""]))

NUMERIC = [  # (command prefix, option, strategy of values that are never valid)
    (("search", "--target-ms", "1"), "--budget", BAD_INT),
    (("search", "--target-ms", "1"), "--batch-size", BAD_INT),
    (("search", "--target-ms", "1"), "--top-k", BAD_INT),
    (("search", "--target-ms", "1"), "--train-size", BAD_INT),
    (("search", "--target-ms", "1"), "--retrain-epochs", BAD_FLOAT),
    (("search", "--target-ms", "1"), "--threads", BAD_INT),
    (("search",), "--target-ms", BAD_FLOAT),
    (("search", "--target-ms", "1"), "--tolerance", BAD_FLOAT),
    (("profile", "--device", "x86-64-host"), "--threads", BAD_INT),
    (("tables", "show", "--device", "pixel-1", "--backend", "tflite"), "--limit", st.integers(max_value=-1)),
    (("verify", "--device", "x86-64-host", "--backend", "onnxruntime"), "--n", BAD_INT),
    (("calibrate", "--device", "x86-64-host", "--backend", "onnxruntime"), "--n", BAD_INT),
    (("genotype", "sample", "--space", "darts"), "--channels", BAD_INT),
]


@FUZZ
@given(data=st.data())
def test_fuzz_numeric_arguments(data, tmp_path):
    prefix, option, values = data.draw(st.sampled_from(NUMERIC))
    value = data.draw(values)
    out = tmp_path / f"run-{abs(hash((option, str(value))))}"
    extra = ("--out", out) if prefix[0] in ("search", "genotype") else ()
    code, err = invoke(*prefix, f"{option}={value}", *extra)
    check(code, err, must_fail=True)
    assert code == 2 and not out.exists()


@FUZZ
@given(data=st.data())
def test_fuzz_cifar_batch_bytes(data):
    """Mutated CIFAR-10 pickles load or fail with one InputError; the restricted unpickler never runs code."""
    import pickle

    import numpy as np

    from edgenas.errors import InputError
    from edgenas.search.data import load_cifar10

    rng = np.random.default_rng(0)
    good = pickle.dumps({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [1, 2, 3, 4]},
                        protocol=2)
    raw = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    with tempfile.TemporaryDirectory() as d:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (Path(d) / name).write_bytes(good)
        (Path(d) / "data_batch_2").write_bytes(bytes(raw[:cut]))
        try:
            load_cifar10(Path(d))
        except InputError as e:
            assert "\n" not in str(e)


NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
BAD_NAMED = [  # (option, strategy of values that are never a valid choice)
    ("--strategy", NAMES.filter(lambda s: s not in ("proxyless", "darts", "enas", "spos", "random"))),
    ("--space", NAMES.filter(lambda s: s not in ("proxyless", "darts"))),
    ("--preset", NAMES.map(lambda s: "zz" + s)),
    ("--data", NAMES.map(lambda s: "cifar10:/nonexistent/" + s)),
    ("--data", NAMES.map(lambda s: "zz" + s)),
    ("--device", NAMES.map(lambda s: "zz" + s.replace("/", ""))),
    ("--backend", NAMES.map(lambda s: "zz" + s.replace("/", ""))),
    ("--torch-device", NAMES.filter(lambda s: s not in ("auto", "cpu") and not s.startswith("cuda"))),
]


@FUZZ
@given(data=st.data())
def test_fuzz_search_names(data, tmp_path):
    """Unknown names for search's options: one line, exit 2, and no run directory left behind."""
    option, values = data.draw(st.sampled_from(BAD_NAMED))
    value = data.draw(values)
    out = tmp_path / f"run-{abs(hash((option, value)))}"
    code, err = invoke("search", "--target-ms", "1", f"{option}={value}", "--out", out)
    check(code, err, must_fail=True)
    assert not out.exists()
