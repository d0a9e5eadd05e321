"""The ``edgenas`` command: thin subcommands over the library, one module per command group.

Every error a user can cause is an ``EdgeNASError``; ``run`` turns it into one line on stderr
and a non-zero exit code. Set ``EDGENAS_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import os
import sys

import click
import typer
from typer.exceptions import TyperException

from edgenas import __version__
from edgenas.cli import (bench_cmd, devices_cmd, export_cmd, genotype_cmd, plugins_cmd, predict_cmd, profile_cmd,
                         search_cmd, spaces_cmd, sweep_cmd, tables_cmd)
from edgenas.errors import EdgeNASError

app = typer.Typer(
    name="edgenas",
    help="Design neural networks for an edge device and prove they meet a latency target there.\n\n"
         "Typical flow: edgenas profile --device D  ->  edgenas search --target-ms T  ->  edgenas export RUN",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool):
    if value:
        typer.echo(f"edgenas {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """edgenas: profile -> search -> export, with measured latency."""


app.command("spaces")(spaces_cmd.spaces)
app.add_typer(genotype_cmd.app, name="genotype")
app.add_typer(devices_cmd.app, name="devices")
app.command("profile")(profile_cmd.profile)
app.add_typer(tables_cmd.app, name="tables")
app.command("predict")(predict_cmd.predict)
app.command("calibrate")(predict_cmd.calibrate)
app.command("verify")(predict_cmd.verify)
app.command("search")(search_cmd.search)
app.command("export")(export_cmd.export)
app.command("sweep")(sweep_cmd.sweep)
app.add_typer(bench_cmd.app, name="bench")
app.command("plugins")(plugins_cmd.plugins)


INTERRUPTED = "interrupted: finished work is saved; rerun with --resume to continue"


def one_line(text: str) -> str:
    """A message as one line: control characters a user put in a name or path are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text.strip())


def run(argv=None) -> int:
    """Console-script entry: one clear line and an exit code for every user error."""
    from edgenas import interrupt

    debug = os.environ.get("EDGENAS_DEBUG") == "1"
    interrupt.install()
    try:
        rv = app(args=argv, standalone_mode=False)
        if interrupt.interrupted() and rv in (0, None):  # Ctrl-C swallowed where no check() ran after it
            rv = 130
        if rv == 130:  # typer turns Ctrl-C into exit code 130 without a word
            print(INTERRUPTED, file=sys.stderr)
        return rv if isinstance(rv, int) else 0
    except (click.exceptions.Exit, typer.Exit) as e:
        return e.exit_code
    except (click.exceptions.Abort, typer.Abort):
        print("aborted", file=sys.stderr)
        return 130
    except (click.ClickException, TyperException) as e:  # bad flags (typer vendors click): one line too
        ctx = getattr(e, "ctx", None)
        param = getattr(e, "param", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        if param is not None and getattr(param, "opts", None) and param.opts[0] not in msg:
            msg = f"{param.opts[0]}: {msg}"
        print(f"error: {one_line(' '.join(msg.split()))}{hint}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except EdgeNASError as e:
        if debug:
            raise
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a user error: say so in one line, traceback on request
        if debug:
            raise
        print(f"internal error (a bug in edgenas): {type(e).__name__}: {one_line(str(e))}; "
              "rerun with EDGENAS_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return 70


def entry():
    sys.exit(run())
