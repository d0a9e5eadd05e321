"""Keep third-party import chatter (torchao, TF, litert progress) off the user's terminal."""

from __future__ import annotations

import contextlib
import logging
import os


def quiet_converters() -> None:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree", "torch.onnx", "onnxscript",
                 "torch._export", "torch.export", "absl", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence C++ logging written straight to fd 2 (TFLite's 'Created XNNPACK delegate' INFO line),
    so a failing command's one-line error stays the only line. Python exceptions are unaffected."""
    import sys

    try:
        sys.stderr.flush()
        fd = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)
        os.close(devnull)
