"""Executors on a real local Ray cluster: a head and a second node holding ``device:x86-64-host``.

Both nodes are ``ray start`` processes on 127.0.0.1 (one CPU each, a small object store, a temp
dir of the test's own); the commands run as real ``edgenas`` processes, as a user runs them. The
second node's processes are killed mid-run: the fleet run reports what is missing, a sweep whose
device is gone reports its unmeasured trial, and a rerun after the node is back finishes only
those, every table entry once. Skipped when Ray is not installed (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "x86-64-host"
RAY = str(Path(sys.executable).with_name("ray"))
TINY = ["--data", "synthetic", "--budget", "8", "--batch-size", "16", "--top-k", "2", "--retrain-epochs", "0.05",
        "--population", "2", "--eval-examples", "32", "--train-size", "300", "--arch-size", "100",
        "--test-size", "100"]


def _env() -> dict:
    # RAY_AUTH_MODE set for every process of the test cluster: otherwise a ~/.ray/auth_token left by any
    # earlier Ray use turns token auth on for some of them and the nodes cannot join
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "EDGENAS_DEBUG": "0",
            "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_pids() -> set[int]:
    """This user's processes that belong to Ray (raylets, GCS, workers, monitors)."""
    out = set()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if p.stat().st_uid != os.getuid():
                continue
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"ray/" in cmd or cmd.startswith(b"ray::"):
            out.add(int(p.name))
    return out


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Cluster:
    def __init__(self, tmp: Path):
        self.tmp, self.port = tmp, _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.before = _ray_pids()
        self.node2: set[int] = set()

    def start_head(self):
        self._ray("start", "--head", f"--port={self.port}", "--num-cpus=1", f"--temp-dir={self.tmp / 'ray'}",
                  "--include-dashboard=false", "--object-store-memory=100000000")

    def start_device_node(self):
        """The node holding the device; its processes (and the workers it starts later) are node2."""
        before = _ray_pids()
        self._ray("start", f"--address={self.address}", "--num-cpus=1", "--object-store-memory=100000000",
                  "--resources=" + json.dumps({f"device:{DEVICE}": 1}))
        self.node2 = _ray_pids() - before
        self._wait_nodes(2)

    def kill_device_node(self):
        """SIGKILL the second node's raylet and everything under it, as if its host lost power."""
        pids = set(self.node2)
        for p in Path("/proc").iterdir():  # workers started since: children of its raylet
            try:
                if p.name.isdigit() and int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) in self.node2:
                    pids.add(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
        _kill(pids)
        self._wait_nodes(1)

    def _wait_nodes(self, n, timeout=120):
        code = ("import ray; ray.init(address='%s', logging_level='ERROR'); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))" % self.address)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
            if p.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(1)
        raise AssertionError(f"the cluster did not reach {n} live node(s)")

    def stop(self):
        _kill(_ray_pids() - self.before)

    def _ray(self, *args):
        p = subprocess.run([RAY, *args], capture_output=True, text=True, env=_env(), timeout=180)
        assert p.returncode == 0, p.stderr[-2000:]


@pytest.fixture(scope="module")
def cluster():
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="enr-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    c = Cluster(tmp)
    try:
        c.start_head()
        c.start_device_node()
        yield c
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def edgenas(*args, check=None, timeout=900):
    p = subprocess.run([sys.executable, "-m", "edgenas", *map(str, args)], capture_output=True, text=True,
                       env=_env(), cwd=ROOT, timeout=timeout)
    if check is not None:
        assert p.returncode == check, p.stderr[-3000:]
    return p


def _popen(*args):
    return subprocess.Popen([sys.executable, "-m", "edgenas", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)


def _rows(tables: Path):
    from edgenas.latency.store import TableStore

    df = TableStore(tables).load(DEVICE, "onnxruntime").df
    return list(zip(df["op_key"], df["batch"], df["threads"]))


# ---- bad input ----------------------------------------------------------------------------------

def test_bad_executor_and_address_are_one_line():
    closed = _free_port()
    for args, says in ((["--executor", "dask"], "unknown executor"),
                       (["--executor", "ray", "--ray-address", f"127.0.0.1:{closed}"], "no Ray cluster answers"),
                       (["--executor", "ray", "--ray-address", "nonsense"], "HOST:PORT")):
        p = edgenas("search", "--target-ms", "1", *args)
        assert p.returncode == 2 and says in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_bad_fleet_file_is_one_line(tmp_path):
    f = tmp_path / "fleet.yaml"
    f.write_text("devices:\n  - name: x86-64-host\n    backend: onnxruntime\n    reach: pigeon\n")
    p = edgenas("profile", "--fleet", f)
    assert p.returncode == 2 and "devices.0.reach" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    f.write_text("devices:\n  - name: x86-64-host\n    backend: onnxruntime\n    reach: ray\n")
    p = edgenas("profile", "--fleet", f)  # a Ray device without --executor ray
    assert p.returncode == 2 and "--executor ray" in p.stderr


# ---- on the cluster -----------------------------------------------------------------------------

def test_search_on_ray_equals_local(cluster, tmp_path):
    """The top-k retrained as Ray tasks: the same candidates, accuracies and weights as in this process,
    with successive halving's rung state going to a Ray task and back (5 steps, the rung at 2)."""
    common = ["--target-ms", "0.6", "--strategy", "spos", "--no-measure", "--json", *TINY, "--retrain-epochs", "0.3"]
    local = json.loads(edgenas("search", *common, "--out", tmp_path / "local", check=0).stdout)
    ray = json.loads(edgenas("search", *common, "--out", tmp_path / "ray", "--executor", "ray",
                             "--ray-address", cluster.address, check=0).stdout)
    assert [(r["arch_acc"], r["test_acc"]) for r in ray["retrained"]] == \
        [(r["arch_acc"], r["test_acc"]) for r in local["retrained"]]
    assert ray["chosen"] == local["chosen"]
    for i in range(len(local["retrained"])):
        digest = [hashlib.sha256((tmp_path / d / f"candidate{i}.safetensors").read_bytes()).hexdigest()
                  for d in ("local", "ray")]
        assert digest[0] == digest[1]


def test_sweep_fleet_and_a_lost_node(cluster, tmp_path):
    sweep = ["sweep", "--targets", "0.6", "--strategies", "spos", "--out", tmp_path / "sweep", *TINY,
             "--executor", "ray", "--ray-address", cluster.address, "--json"]
    # a sweep on the whole cluster: searches on either node, measurements on the device's node
    rep = json.loads(edgenas(*sweep, "--seeds", "0,1", check=0).stdout)
    assert rep["finished"] == 2 and rep["missing"] == [] and rep["latency"] == "measured_ms"
    assert all(r["measured_ms"] > 0 for r in rep["trials"]) and rep["front"]
    assert (tmp_path / "sweep" / "front.png").stat().st_size > 0
    trial_files = sorted((tmp_path / "sweep" / "trials").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in trial_files]

    # a fleet profile, one op per bundle; the device's node is killed once the first bundle is in
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("space: [darts]\npreset: small\nlimit: 8\nquick: true\nchunk: 1\n"
                     f"devices:\n  - name: {DEVICE}\n    backend: onnxruntime\n    reach: ray\n")
    tables = tmp_path / "tables"
    args = ["profile", "--fleet", fleet, "--tables-dir", tables, "--executor", "ray", "--ray-address",
            cluster.address, "--json"]
    proc = _popen(*args)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (
            (tables / DEVICE / "onnxruntime.csv").exists() and _rows(tables)):
        time.sleep(0.2)
    cluster.kill_device_node()
    out, err = proc.communicate(timeout=300)
    res = json.loads(out)["devices"][0]
    rows = _rows(tables)
    assert len(rows) == len(set(rows)) == res["imported"] >= 1  # every finished entry, once
    assert res["imported"] + len(res["missing"]) == 8  # the rest reported, none forgotten
    assert res["missing"] and proc.returncode != 0 and "not measured" in err  # 7 bundles of ~1 s each were left

    # with the device gone, a sweep still searches, and reports the trial it could not measure
    lost = edgenas(*sweep, "--seeds", "0,1,2")
    rep = json.loads(lost.stdout)
    assert lost.returncode != 0 and rep["missing"] == ["spos-t0.6ms-s2"] and "measurement" in rep["lost"][
        "spos-t0.6ms-s2"]
    assert rep["finished"] == 2

    # the node is back: reruns finish only what is missing
    cluster.start_device_node()
    res = json.loads(edgenas(*args, check=0).stdout)["devices"][0]
    rows2 = _rows(tables)
    assert len(rows2) == len(set(rows2)) == 8 and set(rows) <= set(rows2)
    assert res["imported"] == 8 - len(rows) and res["already_present"] == len(rows)
    rep = json.loads(edgenas(*sweep, "--seeds", "0,1,2", check=0).stdout)
    assert rep["finished"] == 3 and rep["skipped_finished"] == 2
    assert [p.stat().st_mtime_ns for p in trial_files] == stamps  # finished trials were not run again
