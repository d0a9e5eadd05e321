"""Ctrl-C that cannot be swallowed.

Some libraries catch the KeyboardInterrupt that Ctrl-C raises inside them and turn it into an
ordinary exception (the dynamo ONNX exporter does, and our exporter then falls back to the legacy
path and carries on: a profile run interrupted during a conversion finished with exit 0). The CLI
installs a SIGINT handler that remembers the signal before raising as usual, and long loops call
``check()`` at their safe points, so an interrupt swallowed below still stops the run there.
"""

from __future__ import annotations

import signal
import threading

_state = {"interrupted": False}


def install() -> None:
    """Record SIGINT, then raise KeyboardInterrupt as Python's default handler does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        _state["interrupted"] = True
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)


def interrupted() -> bool:
    return _state["interrupted"]


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C arrived, even if whoever got it first swallowed it."""
    if _state["interrupted"]:
        raise KeyboardInterrupt
