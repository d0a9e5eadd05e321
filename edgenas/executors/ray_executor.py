"""Tasks on a Ray cluster: Ray schedules, retries on lost workers and places device tasks; we add no scheduler.

A task's ``Resources`` become Ray's ``num_cpus``/``num_gpus`` and the custom resource
``device:<name>``. Ray retries a task whose worker or node died (``max_retries``) wherever its
resources still exist; a device task whose only node is gone would wait forever, so ``run`` checks
the live nodes while it waits and reports such tasks as ``TaskLost`` instead.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Iterator, Sequence

from edgenas.errors import BackendUnavailable, EdgeNASError, InputError
from edgenas.executors.base import Done, Executor, Resources, TaskLost, device_resource, resources_of

INSTALL_HINT = "pip install 'edgenas[ray]' (or pip install ray)"
POLL_S = 1.0  # how often run() looks at the live nodes while nothing finishes


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailable(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def check_address(address: str, timeout_s: float = 5.0) -> tuple[str, int]:
    """(host, port) of a Ray head answering at ``address``; InputError at once when none does.

    ``ray.init`` itself waits minutes for an address nobody answers at, so the port is tried first.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--ray-address must be HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise InputError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
                         f"'ray start --head --port={port}' or pass the head's address") from None
    return host, int(port)


def _cluster_messages_to_stderr(ray) -> None:
    """Ray prints cluster events (a node died) on the driver's stdout, which would break ``--json`` output;
    send them to stderr. Ray has no setting for this, so its printing function is wrapped, when it is there."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_edgenas", False):
        return

    def to_stderr(data, *args, **kwargs):
        return original({**data, "is_err": True}, *args, **kwargs)

    to_stderr._edgenas = True
    worker.print_to_stdstream = to_stderr


def local_devices() -> list[str]:
    """The device profiles this machine is: a one-machine Ray offers their resources, as a worker node would."""
    from edgenas.devices import list_profiles

    return [p.name for p in list_profiles() if p.matches_this_machine()[0]]


class RayExecutor(Executor):
    """Connects to the cluster at ``address`` (host:port), or starts a one-machine Ray when it is None
    (holding ``device:<name>`` for every device profile this machine matches)."""

    name = "ray"

    def __init__(self, address: str | None = None, max_retries: int = 2):
        self.ray = _import_ray()
        self.address = address
        self.max_retries = max_retries
        if address:
            check_address(address)
        if not self.ray.is_initialized():
            try:
                extra = {} if address else {"resources": {device_resource(d): 1 for d in local_devices()}}
                self.ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                              include_dashboard=False, configure_logging=True, **extra)
            except Exception as e:  # noqa: BLE001 - any failure to join (refused, auth token, version) is the setup's
                raise InputError(f"cannot join the Ray cluster at {address or 'a new local one'}: "
                                 f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}") from None
        _cluster_messages_to_stderr(self.ray)
        self._remote: dict[Any, Any] = {}

    def _remote_fn(self, fn):
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(fn)
        return self._remote[fn]

    def device_nodes(self) -> dict[str, int]:
        """Live nodes holding each device: {'device:<name>': count}."""
        held: dict[str, int] = {}
        for node in self.ray.nodes():
            if node.get("Alive"):
                for res in node.get("Resources", {}):
                    if res.startswith("device:"):
                        held[res] = held.get(res, 0) + 1
        return held

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
            resources: Resources | Callable[[Any], Resources] = Resources()) -> Iterator[Done]:
        ray = self.ray
        remote = self._remote_fn(fn)
        pending: dict[Any, tuple[int, Resources]] = {}
        held = self.device_nodes()
        for i, task in enumerate(tasks):
            res = resources_of(resources, task)
            if res.device and held.get(f"device:{res.device}", 0) == 0:
                yield Done(i, error=TaskLost(f"no live Ray node holds device {res.device!r} (start one with "
                                             f"ray start --address=HEAD --resources='{{\"device:{res.device}\": 1}}')"))
                continue
            ref = remote.options(num_cpus=res.num_cpus, num_gpus=res.num_gpus, resources=res.ray_resources(),
                                 max_retries=self.max_retries, retry_exceptions=False).remote(task)
            pending[ref] = (i, res)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    i, _res = pending.pop(ref)
                    yield self._outcome(i, ref)
                if not ready:
                    yield from self._stranded(pending)
        finally:  # the caller stopped early (an error, Ctrl-C): nothing keeps running for it
            for ref in pending:
                self.ray.cancel(ref, force=True)

    def _outcome(self, i: int, ref) -> Done:
        """A finished task as the local executor reports it: a user error ends the task, a bug raises."""
        ray = self.ray
        try:
            return Done(i, ray.get(ref))
        except ray.exceptions.RayTaskError as e:  # the function raised: its own exception
            cause = getattr(e, "cause", None)
            if isinstance(cause, EdgeNASError):
                return Done(i, error=cause)
            raise cause or e
        except ray.exceptions.RayError as e:  # worker or node lost beyond the retries, out of memory, cancelled
            return Done(i, error=TaskLost(f"task lost on the cluster: {type(e).__name__}: "
                                          f"{(str(e).splitlines() or [''])[0][:160]}"))

    def _stranded(self, pending: dict) -> Iterator[Done]:
        """Device tasks no live node can run any more (their node died): cancelled and reported."""
        held = self.device_nodes()
        for ref, (i, res) in list(pending.items()):
            if res.device and held.get(f"device:{res.device}", 0) == 0:
                self.ray.cancel(ref, force=True)
                del pending[ref]
                yield Done(i, error=TaskLost(f"the Ray node holding device {res.device!r} was lost and no other "
                                             f"live node holds it"))

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()
