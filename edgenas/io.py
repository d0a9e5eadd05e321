"""Atomic file writes (a crash or Ctrl-C never leaves a half-written table, genotype or report), and
the one sanitiser for what we write as JSON (``json_safe``).

``locked`` serialises read-modify-write updates of one file between processes: a writer re-reads
the file while holding the lock, changes it and writes it atomically, so two processes updating the
same table (a ``profile`` and a ``tables import``, two ``profile`` runs of different batch sizes)
both keep their rows. Readers need no lock: every write is an atomic rename.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def locked(path):
    """Hold the inter-process lock of ``path`` (the file ``<path>.lock`` beside it) for an update."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        yield path


def json_safe(obj):
    """``obj`` with what JSON cannot hold made plain: NaN/inf -> null, numpy/torch scalars -> Python
    numbers, paths -> str, tuples -> lists, keys -> str. Every JSON report, summary and ``--json``
    output goes through it (strict JSON readers reject NaN)."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return json_safe(obj.item())
    return obj
