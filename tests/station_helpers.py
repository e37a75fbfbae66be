"""What the multi-station tests share: lab files of simulated instruments, station configs on the
shared Tiled server and the stations file the dispatcher reads, stations started and closed
around a dispatch, a dispatch in a thread, and a station killed at a held moment of its served
instruments and brought back while the dispatcher waits.

The shared Tiled server (with the API key set) is the ``stations_tiled`` fixture of
``tests/conftest.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks.drill_random_kills import lab_toml
from tests.test_tiled_server import forget_station, station_name


def station_lab(
    name: str, cells: Sequence[str], *, oven: bool = False, tcp: bool = False, active_mass: str = "5 mg"
) -> str:
    """A lab file: one simulated Keithley 2450 per cell (served on a free port of 127.0.0.1 with
    ``tcp``, else in-process), with ``oven`` a simulated Eurotherm ``oven1`` (always over TCP)."""
    from orchestrator.tiled_server import free_port

    def served() -> str:
        return f"socket://127.0.0.1:{free_port()}"

    instruments: dict[str, dict[str, Any]] = {
        f"smu-{cell}": {"driver": "keithley2450", "resource": served() if tcp else "sim", "simulated": True}
        for cell in cells
    }
    if oven:
        instruments["oven1"] = {"driver": "eurotherm", "resource": served(), "simulated": True, "address": 3}
    return lab_toml({
        "lab": {"name": name},
        "instruments": instruments,
        "cells": [{"name": cell, "instrument": f"smu-{cell}", "material": "x04", "active_mass": active_mass,
                   "voltage_max": "4.95 V", "voltage_min": "1.0 V"} for cell in cells],
    })  # fmt: skip


def portion_protocol(log_interval: str = "5 min") -> str:
    """The titration's portion protocol, every step bounded in time: the portion weighed into the
    oven, heated (the oven logged every ``log_interval``), a fresh cell built from it, rested and
    discharged. On a lab file in simulated mode the simulated operator builds each cell from its
    portion as the portion's run recorded it (orchestrator.sim_operator)."""
    return f"""\
name: portion
parameters: {{temperature: 140 degC, time: 1 h}}
steps:
  - manual: {{instruction: Weigh the portion into a boat and load it into the oven, record: {{portion_mass: mg}}}}
  - heat: {{temperature: $temperature, hold: $time, cool_to: 25 degC, log_interval: {log_interval}}}
  - manual: {{instruction: Build a fresh cell from the relaxed powder, record: {{active_mass: mg}}}}
  - rest: {{duration: 15 min, record_interval: 60 s}}
  - discharge: {{current: 100 mA/g, until: {{voltage: 1.85 V, time: 4 h}}, record_interval: 60 s}}
"""


def portion_campaign(name: str, cell_prefix: str, replicates: int, times: Sequence[str]) -> str:
    """A titration campaign on :func:`portion_protocol` (in ``portion.yaml``): 20 mg of powder
    charged to 4.8 V, a portion of it held at 140 C for each of ``times``, 5 mg cells."""
    return f"""\
name: {name}
protocol: portion.yaml
replicates: {replicates}
cell_prefix: {cell_prefix}
samples:
  batch: {{id: B1, material: x04}}
  powder: {{id: B1-c4.8V, charged_to: 4.8 V, mass: 20 mg}}
  cell_mass: 5 mg
matrix:
  temperature: [140 degC]
  time: [{", ".join(times)}]
"""


def station_config(kind: str, lab: str | Path, data_dir: Path, tiled: Any, **options: Any) -> Any:
    """A :class:`~orchestrator.station.StationConfig` writing to the shared server ``tiled``, with
    a name of its own (its Redis prefix) and free ports."""
    from orchestrator.station import StationConfig
    from orchestrator.tiled_server import free_port

    return StationConfig(station_name(kind), str(lab), data_dir, tiled=tiled.uri, control_port=free_port(),
                         info_port=free_port(), **options)  # fmt: skip


def write_stations(path: Path, entries: Mapping[str, tuple[Any, Sequence[str], Sequence[str]]]) -> Any:
    """Write the stations file (station name -> its config, channels, ovens) and load it."""
    from orchestrator.stations_file import load_stations

    text = ""
    for name, (config, channels, ovens) in entries.items():
        text += f'[stations.{name}]\ncontrol = "{config.control_address}"\ninfo = "{config.info_address}"\n'
        text += f"channels = {json.dumps(list(channels))}\n" + (f"ovens = {json.dumps(list(ovens))}\n" if ovens else "")
        text += "\n"
    path.write_text(text)
    return load_stations(path)


def configure_stations(
    folder: Path, holds: Mapping[str, tuple[Sequence[str], bool]], tiled: Any, **lab: Any
) -> tuple[dict[str, Any], Any]:
    """Stations on one machine: for each station name -> (its channels, whether it holds the oven
    ``oven1``) a lab file (:func:`station_lab` with ``lab`` options) and a config (its data in
    ``folder / name``), and the stations file. Returns the configs by name and the loaded file."""
    configs = {}
    for name, (cells, oven) in holds.items():
        (folder / f"{name}.toml").write_text(station_lab(name, cells, oven=oven, **lab))
        configs[name] = station_config(name, folder / f"{name}.toml", folder / name, tiled)
    entries = {name: (configs[name], cells, ["oven1"] if oven else []) for name, (cells, oven) in holds.items()}
    return configs, write_stations(folder / "stations.toml", entries)


def close_station(station: Any) -> None:
    """Close a station's RunEngine environment and wait until its manager is idle."""
    api = station.api()
    api.environment_close()
    api.wait_for_idle(timeout=120)
    api.close()


@contextmanager
def running_stations(configs: Sequence[Any]) -> Iterator[list[Any]]:
    """The stations of ``configs``, started; closed (:func:`close_station`) when the block ends
    normally, stopped and their Redis keys deleted in any case."""
    from orchestrator.station import Station

    try:
        with ExitStack() as stack:
            stations = [stack.enter_context(Station(config)) for config in configs]
            yield stations
            for station in stations:
                close_station(station)
    finally:
        for config in configs:
            forget_station(config.name)


class Dispatch:
    """``dispatch_campaign`` in a daemon thread, its operator lines in :attr:`said`.

    Parameters
    ----------
    campaign, stations, data_dir
        As :func:`orchestrator.station_dispatch.dispatch_campaign`'s.
    tiled
        The shared server.
    **options
        More keyword arguments of ``dispatch_campaign`` (``poll_s``, ``patience``, ...).
    """

    def __init__(self, campaign: Any, stations: Any, data_dir: Path, tiled: Any, **options: Any) -> None:
        self.said: list[str] = []
        self._out: dict[str, Any] = {}
        self._args = (campaign, stations, data_dir, tiled.uri)
        self._options = options
        self.thread = threading.Thread(target=self._dispatch, daemon=True)

    def _dispatch(self) -> None:
        from orchestrator.station_dispatch import dispatch_campaign

        try:
            self._out["result"] = dispatch_campaign(*self._args, say=self.said.append, **self._options)
        except Exception as exc:  # reported by :attr:`result`
            self._out["error"] = exc

    def start(self) -> Dispatch:
        self.thread.start()
        return self

    def assert_alive(self) -> None:
        assert self.thread.is_alive(), self._out

    def join(self, timeout_s: float = 900) -> None:
        self.thread.join(timeout=timeout_s)
        assert not self.thread.is_alive()

    @property
    def result(self) -> Any:
        """The dispatch's result (the error it raised fails the test)."""
        assert "error" not in self._out, self._out
        return self._out["result"]


def dispatch_through_a_kill(served: Any, config: Any, dispatch: Dispatch, kill_at_s: float, dead_s: float) -> Any:
    """Run ``dispatch`` to the station of ``config``, whose instruments ``served`` (a
    :class:`benchmarks.drill_random_kills.ServedLab`) serves: the lab holds at simulated
    ``kill_at_s``, the station is killed once its run waits there, the instruments run on alone
    for ``dead_s``, the station comes back and the dispatcher queues its work again. Returns the
    dispatch's result."""
    from orchestrator.station import Station

    served.mover.request(f"HOLD {kill_at_s!r}")  # the lab stops there: the station waits at that moment
    station = Station(config).start()
    try:
        dispatch.start()
        while True:  # until the station's run waits at the held moment
            try:
                served.mover.request("WAIT_HELD 1")
                break
            except ConnectionError:
                dispatch.assert_alive()
        station.kill()
        served._hosts_gone()
        served.mover.request("RELEASE")
        served.run_alone(dead_s)
        station = Station(config).start()  # back: the dispatcher queues the work again
        dispatch.join()
        close_station(station)
    finally:
        station.stop()
        served.close()
        forget_station(config.name)
    return dispatch.result
