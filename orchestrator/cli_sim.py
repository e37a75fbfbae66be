"""The simulated lab's commands (``sim calibrate``, ``sim serve``) and ``monitor``."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli_common import (
    JsonOpt,
    _fail,
    _guarded,
    _os_error,
    _print,
    app,
    sim_app,
)


@sim_app.command("calibrate")
@_guarded
def sim_calibrate(
    material: Annotated[
        str | None, typer.Option("--material", help="Shipped material (x04, x05) or a material TOML file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run calibration targets T1-T15 on the cell model and report each one."""
    from simulators.calibrate import format_table, results_to_json, run_calibration
    from simulators.material import MaterialError

    try:
        from simulators.material import resolve_material

        results = run_calibration(resolve_material(material) if material else None)
    except MaterialError as exc:
        _fail(str(exc))
    typer.echo(results_to_json(results) if as_json else format_table(results))
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def _lab_lines(lab: Any, resources: dict[str, str]) -> str:
    """TOML lab-file blocks that reach each served instrument at ``resources``."""
    blocks = []
    for name, resource in resources.items():
        config = lab.instruments[name]
        lines = [f"[instruments.{name}]", f'driver = "{config.driver}"', f'resource = "{resource}"']
        lines.append("simulated = true")
        if config.driver == "emstat4":
            lines.append(f'model = "{config.model}"')
        if config.driver == "eurotherm":
            lines += [f"address = {config.address}", f'series = "{config.series}"']
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@sim_app.command("serve")
@_guarded
def sim_serve(
    lab_file: Annotated[
        str, typer.Argument(help="Lab file whose simulated instruments to serve.")
    ] = "simulated",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second (> 0).")] = 1.0,
    base_port: Annotated[
        int, typer.Option(help="First port for instruments without a TCP resource.", min=1, max=65535)
    ] = 5025,
    duration_s: Annotated[
        float | None, typer.Option(help="Stop after this many wall seconds.", min=0)
    ] = None,
    clock_file: Annotated[
        Path, typer.Option(help="Where to publish the clock, for `campaign run --sim-clock`.")
    ] = Path("relaxlab-sim-clock.json"),
    stepped: Annotated[
        bool,
        typer.Option(
            "--stepped",
            help="Simulated time moves only when the orchestrator (--sim-clock) waits for its next "
            "poll, so runs are deterministic; between orchestrators the lab stands still.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Serve the lab's simulated instruments over TCP on 127.0.0.1 only.

    On a free-running clock (--speed) the instruments go on running whether or not an
    orchestrator is connected; with --stepped the orchestrator started with ``--sim-clock
    CLOCK_FILE`` moves this lab's simulated time as it waits, exactly as in-process."""
    from drivers.clock import ScaledClock
    from orchestrator.lab import load_lab
    from orchestrator.simlab import SimulatedLab
    from orchestrator.simtime import write_clock_file
    from simulators.clockserver import ClockControl, SteppedClock

    if not (math.isfinite(speed) and 0 < speed <= 1e7):
        _fail(
            f"--speed must be above 0 and at most 1e7 simulated seconds per second, got {speed:g} (example: --speed 2000)"
        )
    if stepped and speed != 1.0:
        _fail("--speed sets a free-running clock; --stepped moves with the orchestrator: give one of them "
              "(example: --stepped)")  # fmt: skip
    lab = load_lab(lab_file)
    if base_port + len(lab.instruments) - 1 > 65535:
        _fail(f"--base-port {base_port} leaves no room for {len(lab.instruments)} instrument port(s) below 65536 "
              "(example: --base-port 5025)")  # fmt: skip
    clock: Any = SteppedClock() if stepped else ScaledClock(speed)
    simulation = SimulatedLab(lab, clock)
    control: Any = None
    try:
        ports = simulation.serve_all(base_port)
        if stepped:
            control = ClockControl(clock, simulation.lock).start()
        write_clock_file(clock, clock_file, control=control.address if control else None)
    except OSError as exc:
        if control is not None:
            control.stop()
        simulation.close()
        if exc.filename:
            _fail(f"cannot write the clock file: {_os_error(exc)}")
        _fail(f"cannot serve the simulated instruments on 127.0.0.1: {exc} (is another `sim serve` running?)")
    except OverflowError as exc:
        simulation.close()
        _fail(f"cannot serve the simulated instruments: {exc}")

    def resource(name: str, port: int) -> str:
        config = lab.instruments[name]
        if config.resource != "sim":
            return config.resource
        if config.driver == "keithley2450":  # VISA
            return f"TCPIP0::127.0.0.1::{port}::SOCKET"
        return f"socket://127.0.0.1:{port}"  # serial instruments: a pyserial URL

    info = {name: resource(name, port) for name, port in ports.items()}
    write_clock_file(clock, clock_file, info, control.address if control else None)  # and where they are
    lab_lines = _lab_lines(lab, info)
    pace = (
        "on a stepped clock (it moves as the orchestrator waits)"
        if stepped
        else f"at {speed:g} simulated s per s"
    )
    human = (
        f"# serving {lab.source} on 127.0.0.1 {pace}; clock: {clock_file}\n"
        "# lab-file lines that reach each served instrument:\n"
        f"{lab_lines}\n"
        f"# run a protocol on it: relaxlab run PROTOCOL --lab {lab_file} --sim-clock {clock_file}\n"
        f"# or a campaign: relaxlab campaign run CAMPAIGN --lab {lab_file} --sim-clock {clock_file}"
    )
    _print({"instruments": info, "speed": None if stepped else speed, "stepped": stepped,
            "clock_file": str(clock_file), "lab_lines": lab_lines}, as_json, human)  # fmt: skip
    sys.stdout.flush()
    try:
        wall0 = time.monotonic()
        while duration_s is None or time.monotonic() - wall0 < duration_s:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if control is not None:
            control.stop()
        simulation.close()


@app.command()
@_guarded
def monitor(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            "--data",
            help="Data folder to watch (default $RELAXLAB_DATA or ~/.local/share/relaxlab).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to serve on; other than loopback needs --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8765,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Key every request must carry (X-API-Key header or ?key=); default $RELAXLAB_MONITOR_KEY."
        ),
    ] = None,
    campaign: Annotated[
        list[Path] | None,
        typer.Option(
            "--campaign", help="Campaign file for the Gantt and ETA (shipped campaigns are found by name)."
        ),
    ] = None,
    station: Annotated[str | None, typer.Option(help="Name of this station on the page.")] = None,
    redis: Annotated[
        str | None,
        typer.Option(help="Follow a lab of stations: their live streams on this Redis (HOST:PORT), not a data folder."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve a live web page of the lab: every station, channel and cell with its step, live
    voltage-time curves, ETA, the campaign Gantt (planned vs ran) and alarms (safety faults,
    failed cells). Read-only; loopback only unless an API key is given."""
    import socket

    from orchestrator.campaign_file import load_campaign
    from orchestrator.monitor import MonitorConfigError, check_binding, serve
    from orchestrator.storage import default_data_dir

    key = api_key or os.environ.get("RELAXLAB_MONITOR_KEY") or None
    try:
        check_binding(host, key)
    except MonitorConfigError as exc:
        _fail(str(exc))
    files = {load_campaign(path).name: path for path in campaign or []}
    folder = data_dir or default_data_dir()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(
                f"cannot serve on {host}:{port}: {exc.strerror or exc} (another monitor? try --port {port + 1})"
            )
    if redis:
        from orchestrator.live_bus import redis_client

        try:
            redis_client(redis).ping()
        except Exception as exc:
            _fail(f"Redis not reached at {redis} ({type(exc).__name__}: {exc}): is it running?")
    elif not (folder / "journal").is_dir():
        typer.echo(f"note: {folder} holds no runs yet; the page fills in as relaxlab writes there", err=True)
    url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    what = f"the stations on Redis {redis}" if redis else str(folder)
    _print({"url": url, "data_dir": str(folder), "api_key": bool(key), "redis": redis}, as_json,
           f"relaxlab monitor of {what} on {url}" + ("?key=..." if key else "") + " (Ctrl-C stops it)")  # fmt: skip
    sys.stdout.flush()
    serve(folder, host=host, port=port, api_key=key, campaign_files=files, station=station, redis=redis)
