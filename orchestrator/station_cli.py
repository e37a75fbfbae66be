"""The multi-station commands of ``relaxlab``: ``station serve`` and ``data sync``
(registered on the main app by :mod:`orchestrator.cli`; docs/multi-station.md)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli_common import _fail, _guarded, _on_served_instruments, _print

station_app = typer.Typer(help="Stations: a bluesky-queueserver RE Manager per PC.", no_args_is_help=True)

TiledOpt = Annotated[
    str | None,
    typer.Option("--tiled", help="Tiled server URI (http://host:8000); api key from $TILED_API_KEY."),
]


def register(app: Any, data_app: Any) -> None:
    app.add_typer(station_app, name="station")
    station_app.command("serve")(_guarded(station_serve))
    data_app.command("sync")(_guarded(data_sync))


def station_serve(
    lab: Annotated[str, typer.Argument(help="Lab file (or 'simulated') whose instruments this station holds.")],
    name: Annotated[str, typer.Option("--name", help="Station name (its Redis prefix, its folder).")],
    redis: Annotated[str, typer.Option("--redis", help="Redis host:port for the queue.")] = "127.0.0.1:6379",
    tiled: TiledOpt = None,
    control_port: Annotated[int, typer.Option(help="zmq control port of the RE Manager.")] = 60615,
    info_port: Annotated[int, typer.Option(help="zmq info (console) port of the RE Manager.")] = 60625,
    host: Annotated[str, typer.Option(help="Address to bind the zmq ports to (127.0.0.1 = this PC only).")] = "127.0.0.1",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Journal, spool and station files.")] = None,
    open_environment: Annotated[bool, typer.Option(help="Open the RE environment once the manager answers.")] = True,
    sim_clock: Annotated[
        Path | None,
        typer.Option("--sim-clock", help="Clock file of a `relaxlab sim serve --stepped` serving the lab's "
                     "simulated instruments (they run on while the station is down)."),
    ] = None,
) -> None:
    """Serve a station: a bluesky-queueserver RE Manager whose plans are relaxlab's
    (run_protocol, relaxation_protocol, rest_at_open_circuit) on the lab file's channels."""
    from orchestrator.lab import load_lab
    from orchestrator.station import Station, StationConfig, check_redis, device_name
    from orchestrator.storage import default_data_dir

    parsed = load_lab(lab)  # a bad lab file is one error before anything starts
    try:
        config = StationConfig(name, lab, data_dir or default_data_dir(), redis, tiled,
                               os.environ.get("TILED_API_KEY"), control_port, info_port, host, sim_clock)  # fmt: skip
        if sim_clock is not None:  # every channel's instrument served there
            _on_served_instruments(parsed, [c.instrument for c in parsed.cells], sim_clock)
        check_redis(redis)
    except (ValueError, ConnectionError) as exc:
        _fail(str(exc))
    if tiled:
        from orchestrator.tiled_server import TiledUnavailable, connect

        try:
            connect(tiled)
        except TiledUnavailable as exc:
            typer.echo(f"warning: {exc}; runs are kept in the local journal until it answers", err=True)
    station = Station(config).start()
    devices = ", ".join(f"{device_name(c.name)} ({c.name})" for c in parsed.cells)
    typer.echo(f"station {name}: RE Manager at {config.control_address} (info {config.info_address}), "
               f"Redis {redis} prefix {config.redis_prefix}; devices: {devices}; log {station.log}")  # fmt: skip
    try:
        if open_environment:
            api = station.api()
            api.environment_open()
            api.wait_for_idle(timeout=600)
            if not api.status()["worker_environment_exists"]:
                _fail(f"the station's environment did not open: see {station.log}")
            typer.echo("environment open: ready for plans")
        assert station.process is not None
        station.process.wait()
    except KeyboardInterrupt:
        station.process.send_signal(signal.SIGINT) if station.process else None
    finally:
        station.stop()


def data_sync(
    tiled: Annotated[str, typer.Option("--tiled", help="Tiled server URI; api key from $TILED_API_KEY.")],
    runs: Annotated[list[str] | None, typer.Argument(help="Run uids (default: every run the server lacks).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the runs are stored.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Copy stored runs (the journal, embedded catalog or a station's spool) into a Tiled server:
    the runs it lacks, and those it holds in part (rewritten from the journal)."""
    from orchestrator.storage import TiledStore, default_data_dir
    from orchestrator.tiled_server import TiledUnavailable, sync_runs

    root = data_dir or default_data_dir()
    try:
        store = TiledStore(root, tiled)
    except TiledUnavailable as exc:
        _fail(str(exc))
    try:
        done = sync_runs(store, root, runs or None)
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else "no such run")
    finally:
        store.close()
    lines = [f"{uid[:8]}: {what}" for uid, what in done.items()]
    copied = sum(v in ("copied", "rewritten") for v in done.values())
    failed = [uid for uid, v in done.items() if v.startswith("failed")]
    _print(done, as_json, "\n".join([*lines, f"{copied} run(s) copied to {tiled}"]))
    if failed:
        raise typer.Exit(1)


def dispatch(campaign: Any, stations_file: Path, data_dir: Path, tiled: str | None, resume: bool, rerun: bool,
             interactive: bool) -> Any:  # fmt: skip
    """``campaign run --stations``: the operator mounts each cell (asked at this console when it is
    a terminal, else the campaign's cell mass is used and announced)."""
    import sys

    from orchestrator.station_dispatch import dispatch_campaign
    from orchestrator.stations_file import load_stations

    if not tiled:
        raise ValueError("--stations needs --tiled URI: the Tiled server the stations write to")
    stations = load_stations(stations_file)

    def mount(cell: str, station: str, channel: str) -> float:
        return float(typer.prompt(f"Mount cell {cell} on station {station}, channel {channel}; active mass (mg)",
                                  type=float))  # fmt: skip

    say = (lambda line: typer.echo(line, err=True)) if interactive else (lambda line: None)
    return dispatch_campaign(campaign, stations, data_dir, tiled, mount if interactive and sys.stdin.isatty() else None,
                             resume=resume, rerun=rerun, say=say)  # fmt: skip
