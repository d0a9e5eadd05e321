"""``edgenas profile --host`` against a real OpenSSH server that the test starts on 127.0.0.1.

The "board" is this machine, reached through sshd with its own host key and a client key pair;
``--remote-python`` picks the interpreter there (one with numpy and onnxruntime for the happy
path, bare ones for the missing-runtime cases). Every failure is one line and merges nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgenas.errors import InputError
from edgenas.latency.store import TableStore
from edgenas.profiling.runner import space_specs
from edgenas.profiling.ssh import SSHTarget

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
OPS = ",".join(s.key for s in space_specs(["darts"], "small")[:2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgenas-test", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD) or not shutil.which("ssh"):
        pytest.skip("OpenSSH server/client not installed (apt-get install openssh-server openssh-client)")
    d = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(d / "host_ed25519")
    client_pub = _keygen(d / "id_ed25519")
    (d / "authorized_keys").write_text(client_pub + "\n")
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_ed25519'}
AuthorizedKeysFile {d / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PidFile {d / 'sshd.pid'}
LogLevel ERROR
""")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.1)
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    yield SimpleNamespace(port=port, identity=d / "id_ed25519", known_hosts=d / "known_hosts", dir=d,
                          host=f"{getpass.getuser()}@127.0.0.1")
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def profile(cli, sshd, cache, monkeypatch, tmp_path):
    """Run ``edgenas profile --host`` at the test sshd; keyword arguments override its flags."""
    monkeypatch.setenv("EDGENAS_CACHE", str(cache))
    tables = tmp_path / "tables"

    def invoke(*switches, **over):
        flags = {"--device": "jetson-nano", "--backend": "onnxruntime", "--threads": "1", "--ops": OPS,
                 "--host": sshd.host, "--ssh-port": sshd.port, "--identity": sshd.identity,
                 "--known-hosts": sshd.known_hosts, "--remote-python": sys.executable, "--tables-dir": tables}
        flags.update(over)
        args = ["profile", "--quick", "--json", *switches]
        for k, v in flags.items():
            if v is not None:
                args += [k, str(v)]
        return cli(*args)

    invoke.table = tables / "jetson-nano" / "onnxruntime.csv"
    return invoke


def _one_line_error(code, out, err, *needles):
    assert code != 0 and out == "", out
    lines = [ln for ln in err.splitlines() if ln.strip()]  # a cleared progress bar may leave a blank line
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_ssh_profile_runs_remotely_and_imports(profile):
    code, out, err = profile()
    assert code == 0, err
    r = json.loads(out)
    import onnxruntime

    assert r["imported"] == 2 and r["runtime_version"] == onnxruntime.__version__ and r["threads"] == 1
    t = TableStore(profile.table.parent.parent).load("jetson-nano", "onnxruntime")
    assert len(t) == 2 and set(t.df["source"]) == {"bundle:edgenas_device_runner"}
    run = t.runs[r["run_id"]]
    assert run["modules"]["torch"] is False and run["environment"]["python"] == r["python_version"]
    assert any("machine" in w for w in r["warnings"])  # an x86 "board" filed as jetson-nano is called out
    code, out, err = profile()  # the same rule as local profiling: no silent re-measure
    _one_line_error(code, out, err, "--resume")
    code, out, err = profile("--resume", **{"--host": "nobody@192.0.2.1"})  # decided before connecting
    assert code == 0 and json.loads(out)["measured"] == 0


def test_changed_host_key_is_refused_and_nothing_merged(profile, sshd, tmp_path):
    other = _keygen(tmp_path / "impostor")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    code, out, err = profile(**{"--known-hosts": kh})
    _one_line_error(code, out, err, "does not match", "refusing to connect")
    assert not profile.table.exists()


def test_unknown_host_key_is_never_accepted(profile, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    code, out, err = profile(**{"--known-hosts": kh})
    _one_line_error(code, out, err, "is not in", "ssh-keyscan")
    assert kh.read_text() == "" and not profile.table.exists()


def test_login_refused_and_unreachable_host(profile, tmp_path):
    _keygen(tmp_path / "stranger")
    code, out, err = profile(**{"--identity": tmp_path / "stranger"})
    _one_line_error(code, out, err, "login", "refused", "--identity")
    code, out, err = profile(**{"--ssh-port": _free_port()})
    _one_line_error(code, out, err, "cannot reach", "Connection refused")


@pytest.mark.parametrize("which, needle", [("bare", "numpy is not installed"),
                                           ("numpy-only", "onnxruntime is not installed"),
                                           ("missing", "has no /nonexistent/python3")])
def test_missing_python_numpy_or_runtime_on_the_board(profile, which, needle, bare_python, numpy_only_python):
    python = {"bare": bare_python, "numpy-only": numpy_only_python, "missing": "/nonexistent/python3"}[which]
    code, out, err = profile(**{"--remote-python": python})
    _one_line_error(code, out, err, needle)
    assert not profile.table.exists()


def test_tampered_results_from_the_board_merge_nothing(profile, tmp_path):
    assert profile()[0] == 0
    before = profile.table.read_bytes(), profile.table.with_suffix(".meta.json").read_bytes()
    wrapper = tmp_path / "python-that-edits-results"
    edit = ("import json; d = json.load(open('results.json')); d['entries'][0]['stats']['ref_ratio'] *= 0.8; "
            "json.dump(d, open('results.json', 'w'))")
    wrapper.write_text(f"""#!/bin/sh
"{sys.executable}" "$@"; rc=$?
if [ "$2" = run ]; then "{sys.executable}" -c "{edit}"; fi
exit $rc
""")
    wrapper.chmod(0o755)
    code, out, err = profile("--overwrite", **{"--remote-python": wrapper})
    _one_line_error(code, out, err, "modified after the device wrote it", "nothing was imported")
    assert (profile.table.read_bytes(), profile.table.with_suffix(".meta.json").read_bytes()) == before


def test_ssh_target_rejects_option_injection_and_missing_files(tmp_path):
    with pytest.raises(InputError, match="USER@HOST"):
        SSHTarget("-oProxyCommand=touch /tmp/x")
    with pytest.raises(InputError, match="known_hosts"):
        SSHTarget("me@board", known_hosts=tmp_path / "nope")
    args = SSHTarget("me@board", port=2222).ssh_args()
    assert "StrictHostKeyChecking=yes" in args and "BatchMode=yes" in args and args[-2:] == ["--", "me@board"]
    assert not any("StrictHostKeyChecking=no" in a or "accept-new" in a for a in args)


def test_bundle_only_devices_refuse_host(cli):
    code, out, err = cli("profile", "--device", "pixel-7", "--host", "me@phone")
    _one_line_error(code, out, err, "not reached over SSH", "--bundle")
