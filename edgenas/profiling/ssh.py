"""Profile a board over SSH: build a bundle here, run the standalone runner there, fetch and import.

Uses the system OpenSSH client, so ``~/.ssh/config``, agents and jump hosts work as usual, with
``BatchMode=yes`` (never a password prompt) and ``StrictHostKeyChecking=yes``: an unknown or
changed host key stops the run, it is never accepted blindly. Files travel through the SSH
channel itself (``cat``), so the board needs no sftp/scp server, only a POSIX shell and Python.
Every failure (host key, login, network, no Python, no numpy or runtime there) is one
``DeviceError`` line that says what to do; the table is written only after the fetched results
pass every check of ``edgenas tables import``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from edgenas.devices import DeviceProfile
from edgenas.errors import DeviceError, InputError, MeasurementError
from edgenas.io import atomic_write_bytes
from edgenas.latency.store import TableStore
from edgenas.ops.spec import OpSpec
from edgenas.paths import cache_dir, shipped
from edgenas.profiling.base import Backend
from edgenas.profiling.bundle import RUNNER, build_bundle
from edgenas.profiling.protocol import ProtocolSettings
from edgenas.profiling.results_import import ImportReport, import_results
from edgenas.profiling.runner import ProfileEvent

_PROGRESS = re.compile(r"^edgenas-runner: progress (\d+)/(\d+) ?(.*)$")


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to log in; ``None`` fields fall back to ssh's own configuration."""

    host: str  # [user@]host, or a Host alias from ~/.ssh/config
    port: int | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    connect_timeout_s: int = 15

    def __post_init__(self):
        if not self.host or self.host.startswith("-") or any(c.isspace() for c in self.host):
            raise InputError(f"--host must be USER@HOST (or an ssh config alias), got {self.host!r}")
        if self.identity is not None and not Path(self.identity).is_file():
            raise InputError(f"no SSH key at {self.identity} (--identity)")
        if self.known_hosts is not None and not Path(self.known_hosts).is_file():
            raise InputError(f"no known_hosts file at {self.known_hosts} (--known-hosts); add the board's key with "
                             f"ssh-keyscan after checking its fingerprint")

    def ssh_args(self) -> list[str]:
        args = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={self.connect_timeout_s}", "-o", "ServerAliveInterval=15"]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity is not None:
            args += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.port is not None:
            args += ["-p", str(self.port)]
        return args + ["--", self.host]

    def describe(self) -> str:
        return self.host + (f" port {self.port}" if self.port else "")


def ssh_failure(target: SSHTarget, stderr: str) -> DeviceError:
    """ssh's exit 255 (its own failure, not the remote command's) as one line with the next step."""
    text = stderr.replace("\r", "")
    where = target.describe()
    kh = str(target.known_hosts) if target.known_hosts else "~/.ssh/known_hosts"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or ("Host key for" in text and "has changed" in text):
        return DeviceError(f"the host key of {where} does not match the one in {kh}: refusing to connect (a changed "
                           f"key means a reinstalled board or someone in between); if the board was reinstalled, "
                           f"check its new key's fingerprint on the board and replace its line in {kh}")
    if "Host key verification failed" in text or "host key is known" in text:
        return DeviceError(f"{where} is not in {kh}: edgenas never trusts an unknown host key; check the key's "
                           f"fingerprint on the board (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add "
                           f"it: ssh-keyscan {'-p ' + str(target.port) + ' ' if target.port else ''}"
                           f"{target.host.split('@')[-1]} >> {kh}")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return DeviceError(f"SSH login to {where} was refused ({_last(text)}): install your public key on the board "
                           f"(ssh-copy-id) or pass --identity KEY; edgenas never types passwords")
    for sign in ("Connection refused", "Could not resolve hostname", "timed out", "No route to host",
                 "Network is unreachable", "Connection closed", "Connection reset"):
        if sign in text:
            return DeviceError(f"cannot reach {where} ({_last(text)}): check the address, --ssh-port and that sshd "
                               f"runs on the board")
    return DeviceError(f"ssh to {where} failed: {_last(text) or 'no message'}")


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("@")]
    return lines[-1][:200] if lines else ""


class Remote:
    """Commands and file transfers over one SSH target (each call is one ssh process)."""

    def __init__(self, target: SSHTarget):
        self.target = target

    def run(self, command: str, stdin: bytes | None = None, timeout: float | None = 600,
            on_line: Callable[[str], None] | None = None) -> tuple[int, str]:
        """(exit status, output) of a remote shell command; ssh's own failures raise DeviceError."""
        args = self.target.ssh_args() + [command]
        if on_line is None:
            try:
                p = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise DeviceError(f"ssh {self.target.describe()}: no answer within {timeout:.0f} s") from None
            out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
            if p.returncode == 255:
                raise ssh_failure(self.target, err)
            return p.returncode, out + err
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace")
        lines = []
        try:
            for line in p.stdout:
                lines.append(line)
                on_line(line.rstrip("\n"))
            p.wait()
        except BaseException:
            p.kill()
            p.wait()
            raise
        text = "".join(lines)
        if p.returncode == 255:
            raise ssh_failure(self.target, text)
        return p.returncode, text

    def put(self, data: bytes, remote_path: str) -> None:
        rc, out = self.run(f"cat > {shlex.quote(remote_path)}", stdin=data)
        if rc != 0:
            raise DeviceError(f"cannot write {remote_path} on {self.target.describe()}: {_last(out)}")

    def get(self, remote_path: str) -> bytes:
        args = self.target.ssh_args() + [f"cat {shlex.quote(remote_path)}"]
        p = subprocess.run(args, capture_output=True, timeout=600)
        if p.returncode == 255:
            raise ssh_failure(self.target, p.stderr.decode(errors="replace"))
        if p.returncode != 0:
            raise DeviceError(f"cannot read {remote_path} on {self.target.describe()}: "
                              f"{_last(p.stderr.decode(errors='replace'))}")
        return p.stdout


@dataclass
class SSHReport:
    host: str
    remote_python: str
    python_version: str
    bundle_id: str
    results_copy: Path
    imported: ImportReport
    notes: list[str] = field(default_factory=list)


@dataclass
class Board:
    """A prepared board: reachable, a working directory with the runner in it, Python and runtime checked."""

    remote: Remote
    python: str
    workdir: str
    python_version: str
    runtime_version: str

    def runner(self, args: str) -> str:
        q = shlex.quote
        return f"cd {q(self.workdir)} && {q(self.python)} {RUNNER} {args}"


def check_python(remote: Remote, python: str) -> str:
    """The remote interpreter's version; DeviceError when it is missing or older than 3.8."""
    rc, out = remote.run(f"{shlex.quote(python)} -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'")
    where = remote.target.describe()
    if rc == 127 or "not found" in out or "No such file" in out:
        raise DeviceError(f"{where} has no {python}: install Python 3.8+ there, or pass --remote-python PATH")
    if rc != 0:
        raise DeviceError(f"{python} on {where} does not run: {_last(out)}")
    version = out.strip().splitlines()[-1]
    if tuple(int(v) for v in version.split(".")[:2]) < (3, 8):
        raise DeviceError(f"{python} on {where} is Python {version}; the runner needs 3.8+ (--remote-python PATH)")
    return version


@contextmanager
def board(target: SSHTarget, python: str, runtime: str, keep: bool = False) -> Iterator[Board]:
    """Check the board can run bundles of ``runtime`` (a backend's ``runner_runtime``) before anything is
    converted; clean up after."""
    remote = Remote(target)
    where = target.describe()
    rc, out = remote.run("echo edgenas-ssh-ok", timeout=target.connect_timeout_s + 30)
    if rc != 0 or "edgenas-ssh-ok" not in out:
        raise DeviceError(f"{where} answered but could not run a shell command: {_last(out)}")
    version = check_python(remote, python)
    rc, out = remote.run("mktemp -d \"${TMPDIR:-/tmp}/edgenas-XXXXXX\"")
    workdir = out.strip().splitlines()[-1] if rc == 0 and out.strip() else ""
    if not workdir.startswith("/"):
        raise DeviceError(f"cannot make a working directory on {where}: {_last(out)}")
    try:
        remote.put((shipped("tools") / RUNNER).read_bytes(), f"{workdir}/{RUNNER}")
        b = Board(remote, python, workdir, version, "")
        rc, out = remote.run(b.runner(f"probe {shlex.quote(runtime)}"))
        if rc != 0:
            raise DeviceError(f"{where} cannot run {runtime} models with {python}: {_runner_error(out)}; install it "
                              f"there, or pass --remote-python with a Python that has it. Nothing was imported")
        b.runtime_version = json.loads(out.strip().splitlines()[-1])["runtime_version"]
        yield b
    finally:
        if not keep:
            try:
                remote.run(f"rm -rf {shlex.quote(workdir)}", timeout=60)
            except DeviceError:
                pass


def profile_over_ssh(b: Board, device: DeviceProfile, backend: Backend, specs: list[OpSpec], batches: list[int],
                     store: TableStore, settings: ProtocolSettings = ProtocolSettings(), command: str = "",
                     on_event: Callable[[ProfileEvent], None] | None = None, cache: Path | None = None) -> SSHReport:
    """Bundle ``specs``, run them on the board, fetch results.json and import it (all or nothing)."""
    where = b.remote.target.describe()
    with tempfile.TemporaryDirectory(prefix="edgenas-ssh-") as tmp:
        bundle = build_bundle(device, backend, specs, batches, Path(tmp) / "bundle.zip", settings, store=store,
                              cache=cache, on_event=on_event)
        b.remote.put(bundle.path.read_bytes(), f"{b.workdir}/bundle.zip")
        rc, out = b.remote.run(b.runner("check bundle.zip"))
        if rc != 0:
            raise DeviceError(f"{where} cannot run the bundle: {_runner_error(out)}; nothing was imported")
        total = bundle.entries

        def on_line(line: str):
            m = _PROGRESS.match(line)
            if m and on_event:
                on_event(ProfileEvent("remote", int(m.group(1)), total, batches[0], m.group(3)[:60]))

        rc, out = b.remote.run(b.runner("run bundle.zip --out results.json"), timeout=None, on_line=on_line)
        if rc != 0:
            raise MeasurementError(f"the runner failed on {where} (exit {rc}): {_runner_error(out)}; "
                                   f"nothing was imported")
        data = b.remote.get(f"{b.workdir}/results.json")
        copy = Path(cache or cache_dir()) / "ssh-results" / f"{bundle.bundle_id}.json"
        atomic_write_bytes(copy, data)  # kept, so a rejected import can be inspected
        report = import_results(copy, store, bundle=bundle.path, command=command)
    return SSHReport(b.remote.target.host, b.python, b.python_version, bundle.bundle_id, copy, report)


def _runner_error(output: str) -> str:
    errors = [ln[len("error: "):] for ln in output.splitlines() if ln.startswith("error: ")]
    return errors[-1][:300] if errors else (_last(output) or "no message")
