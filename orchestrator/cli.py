"""The ``relaxlab`` command. Every command takes ``--json`` for scripts.

The app and what the commands share are in :mod:`orchestrator.cli_common`; the commands, one
module per group: :mod:`orchestrator.cli_run` (examples, demo, run, validate),
:mod:`orchestrator.cli_campaign`, :mod:`orchestrator.cli_data` (report, data ...),
:mod:`orchestrator.cli_sim` (sim ..., monitor) and :mod:`orchestrator.station_cli`
(station serve, data sync). Importing them registers their commands, in this order (``--help``'s).
"""

from __future__ import annotations

import gc
import os
import sys

import typer

from orchestrator import cli_campaign, cli_data, cli_run, cli_sim  # noqa: F401  (register their commands)
from orchestrator.cli_common import app, data_app, progress_mode  # noqa: F401  (app re-exported)
from orchestrator.station_cli import register as _register_stations

_register_stations(app, data_app)


def main() -> None:
    """The ``relaxlab`` command: errors a user can cause are one ``error:`` line (see ``_guarded``);
    anything else is reported in one line too, with the way to see the traceback."""
    from orchestrator.quiet import quiet_console

    quiet_console()  # third-party warnings off the console (not for tests, which call `app`)
    try:
        _main()
    finally:
        _before_exit()


def _before_exit() -> None:
    """The command is over: its garbage is collected now (finalisers run: files, connections),
    and what is left is frozen out of the cyclic collector, which the interpreter's shutdown
    would otherwise run over every object of numpy, pandas, scipy and matplotlib several times
    (about 0.4 s of every command). What is left is still freed by reference counting."""
    gc.collect()
    gc.freeze()


def _main() -> None:
    if os.environ.get("RELAXLAB_DEBUG"):
        app()
        return
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        typer.echo("error: interrupted (Ctrl-C)", err=True)
        sys.exit(130)
    except Exception as exc:
        typer.echo(f"error: internal error: {type(exc).__name__}: {exc} (RELAXLAB_DEBUG=1 shows where; "
                   "please report it)", err=True)  # fmt: skip
        sys.exit(3)


if __name__ == "__main__":
    main()
