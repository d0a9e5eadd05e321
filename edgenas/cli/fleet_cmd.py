"""``edgenas profile --fleet fleet.yaml``: every device of a fleet profiled where it is (``edgenas.fleet``)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

from edgenas.cli._output import console, emit, err_console
from edgenas.cli.executor_opts import executor_from_flags
from edgenas.errors import MeasurementError


def profile_fleet(fleet_file: Path, tables_dir: Optional[Path], executor: str, ray_address: Optional[str],
                  as_json: bool) -> None:
    from dataclasses import asdict

    from edgenas.fleet import load_fleet, run_fleet
    from edgenas.latency.store import TableStore

    fleet = load_fleet(fleet_file)
    command = "edgenas " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with executor_from_flags(executor, ray_address) as runner:
        outcomes = run_fleet(fleet, TableStore(tables_dir), runner, command,
                             on_event=None if as_json else (lambda msg: err_console.print(msg)))
    result = {"fleet": str(fleet_file), "devices": [asdict(o) for o in outcomes],
              "missing": sum(len(o.missing) for o in outcomes)}

    def render(r):
        for o in r["devices"]:
            line = (f"{o['device']} / {o['backend']} ({o['reach']}): imported {o['imported']} entries, "
                    f"{o['already_present']} op(s) already present -> {o['table']}")
            if o["missing"]:
                line += f"; NOT measured: {len(o['missing'])} entries ({o['errors'][-1]})"
            console.print(line)

    emit(result, as_json, render)
    if result["missing"]:
        raise MeasurementError(f"{result['missing']} entries not measured (listed above); rerun the same command "
                               f"to measure only those")
