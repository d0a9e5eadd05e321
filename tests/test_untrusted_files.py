"""Files a user (or someone handing them a file) feeds edgenas never run code (issue 13).

Each crafted file would create ``pwned`` when unpickled the unsafe way; edgenas must refuse it with
one line and a non-zero exit, and the file must not exist afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgenas.errors import InputError

REPO = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this runs ``touch <path>`` (what a hostile checkpoint or data file would do)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_crafted_checkpoint_is_refused_without_running(cli, tmp_path):
    out, pwned = tmp_path / "run", tmp_path / "pwned"
    out.mkdir()
    torch.save({"strategy": _Payload(pwned), "phase": "search", "log": []}, out / "checkpoint.pt")
    code, _, err = cli("search", "--target-ms", 1, "--data", "synthetic", "--budget", 2, "--train-size", 64,
                       "--arch-size", 32, "--test-size", 32, "--no-measure", "--resume", "--out", out)
    assert code == 2 and err.count("\n") == 1 and "checkpoint" in err and "system" in err, err
    assert not pwned.exists()


def test_checkpoint_of_a_real_run_still_loads(tmp_path):
    from edgenas.search.base import Candidate
    from edgenas.search.pipeline import Run
    from edgenas.spaces import create_space

    import random

    cands = [Candidate(create_space(name, "small").sample(random.Random(0)), 0.5, 0.7, "argmax", 3)
             for name in ("proxyless", "darts")]
    state = {"strategy": {"step_count": 3, "gen": torch.Generator().get_state(), "history": [(3, cands[1].arch)],
                          "net": torch.nn.Linear(2, 2).state_dict()}, "phase": "retrain", "log": [{"a": 1.0}],
             "rng": random.Random(0).getstate(), "candidates": cands}
    run = Run(tmp_path)
    run.save_checkpoint(state)
    back = run.load_checkpoint()
    assert back["candidates"] == cands and back["rng"] == state["rng"]
    assert back["strategy"]["history"] == [(3, cands[1].arch)]


def _cifar_dir(tmp_path: Path, poison=None) -> Path:
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 20)),
             b"batch_label": b"x", b"filenames": [b"a.png"] * 20}
        if poison is not None and name == "data_batch_3":
            d[b"labels"] = poison
        (tmp_path / name).write_bytes(pickle.dumps(d, protocol=2))
    return tmp_path


def test_cifar_batches_load_through_the_restricted_unpickler(tmp_path):
    from edgenas.search.data import load_data

    data = load_data(f"cifar10:{_cifar_dir(tmp_path)}", arch_size=20)
    assert data.weights.x.shape == (80, 3, 32, 32)


def test_crafted_cifar_batch_is_refused_without_running(cli, tmp_path):
    pwned = tmp_path / "pwned"
    (tmp_path / "c").mkdir()
    d = _cifar_dir(tmp_path / "c", poison=_Payload(pwned))
    code, _, err = cli("search", "--target-ms", 1, "--data", f"cifar10:{d}", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "refused" in err and "system" in err, err
    assert not pwned.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", pickle.dumps([1, 2, 3]),
                                     pickle.dumps({b"data": np.zeros((2, 5)), b"labels": [0, 1]})])
def test_malformed_cifar_batch_is_one_line(tmp_path, content):
    from edgenas.search.data import load_data

    d = _cifar_dir(tmp_path)
    (d / "data_batch_2").write_bytes(content)
    with pytest.raises(InputError, match="data_batch_2"):
        load_data(f"cifar10:{d}")


# ---- the Android helper ----------------------------------------------------------------------------

FAKE_ADB = r"""#!/bin/sh
case "$1" in
  get-state) echo device ;;
  push) dst="$FAKE_PHONE$3"; if [ -d "$2" ]; then mkdir -p "$dst" && cp -r "$2" "$dst"; else cp "$2" "$dst"; fi ;;
  shell) shift; sh -c "$(printf '%s' "$*" | sed "s#/data/local/tmp#$FAKE_PHONE/data/local/tmp#g")" ;;
  *) exit 1 ;;
esac
"""


def _fake_bundle(tmp_path: Path, tsv: str, hash_it: bool = True) -> Path:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import edgenas_device_runner as runner
    finally:
        sys.path.pop(0)
    b = tmp_path / "bundle"
    (b / "models" / "b1").mkdir(parents=True)
    (b / "models" / "b1" / "0000.tflite").write_bytes(b"x")
    (b / "models.tsv").write_text(tsv)
    m = {"format": "edgenas.bundle", "backend": "tflite", "threads": 1, "nonce": "0"}
    if hash_it:
        m["models_tsv_sha256"] = hashlib.sha256(tsv.encode()).hexdigest()
    m["bundle_id"] = runner.manifest_id(m)
    (b / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    return b


def _helper(tmp_path: Path, bundle: Path):
    phone, bin_dir = tmp_path / "phone", tmp_path / "bin"
    (phone / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "adb").write_text(FAKE_ADB)
    (bin_dir / "adb").chmod(0o755)
    bm = tmp_path / "benchmark_model"
    bm.write_text("#!/bin/sh\necho 'INFO: count=10 first=1 curr=1 min=1 max=1 avg=100 std=1'\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "FAKE_PHONE": str(phone)}
    return subprocess.run(["sh", str(REPO / "tools" / "android_benchmark.sh"), str(bundle), str(bm), "r.json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_android_helper_refuses_a_models_tsv_the_manifest_does_not_hash(tmp_path):
    pwned = tmp_path / "pwned"
    good = "ref-b1\treference\t1\tmodels/b1/0000.tflite\t1\nb1-0000\tentry\t1\tmodels/b1/0000.tflite\t1\n"
    b = _fake_bundle(tmp_path, good)
    (b / "models.tsv").write_text(good.replace("0000.tflite\t1\n", f"0000.tflite;touch {pwned}\t1\n", 1))
    p = _helper(tmp_path, b)
    assert p.returncode == 2 and "models.tsv does not match" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not pwned.exists()


def test_android_helper_refuses_a_bundle_without_the_models_tsv_hash(tmp_path):
    b = _fake_bundle(tmp_path, "ref-b1\treference\t1\tmodels/b1/0000.tflite\t1\n", hash_it=False)
    p = _helper(tmp_path, b)
    assert p.returncode == 2 and "does not hash models.tsv" in p.stderr, p.stderr


def test_android_helper_refuses_hostile_fields_even_when_hashed(tmp_path):
    pwned = tmp_path / "pwned"
    tsv = f"ref-b1\treference\t1\tmodels/b1/$(touch {pwned})\t1\nb1-0000\tentry\t1\tmodels/b1/0000.tflite\t1\n"
    p = _helper(tmp_path, _fake_bundle(tmp_path, tsv))
    assert p.returncode == 2 and "malformed line" in p.stderr, p.stderr
    assert not pwned.exists()
