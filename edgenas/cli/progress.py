"""Rich progress bars on stderr (so ``--json`` stdout stays clean)."""

from __future__ import annotations

import io
from contextlib import contextmanager

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from edgenas.cli._output import err_console


@contextmanager
def progress_bar(transient: bool = False):
    """``transient``: clear the bar when done, so a failure or the summary is the only line left."""
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                   TextColumn("{task.fields[detail]}", style="dim"), console=err_console, transient=transient)
    bar.start()
    try:
        yield bar
    except BaseException:
        # a failure leaves its one line on stderr, not a bar (or, off a terminal, a blank line) above it
        bar.live.transient = True
        saved = err_console._file  # None means "whatever sys.stderr is": keep it that way
        if not err_console.is_terminal:
            err_console.file = io.StringIO()
        try:
            bar.stop()
        finally:
            err_console._file = saved
        raise
    bar.stop()
