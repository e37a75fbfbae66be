"""From a validated lab file to connected drivers and ophyd devices.

Every instrument is opened through the model its ``driver`` names in the registry
(:mod:`drivers.registry`): the model builds the driver, the driver's ``connect`` identifies it
(reset or not), and the lab builds the device of its kind (a potentiostat channel, an oven).
Simulators are reached only through :mod:`orchestrator.simlab`, for instruments marked
``simulated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers import registry
from drivers.clock import Clock
from drivers.contracts import OvenDriver, PotentiostatDriver
from drivers.device import PotentiostatChannel
from drivers.lab_config import OvenConfig
from drivers.oven import Oven
from drivers.registry import open_transport
from drivers.transport import InstrumentError
from orchestrator.lab import CellConfig, Lab
from orchestrator.simlab import SimulatedLab

__all__ = ["ConnectedLab", "connect_lab", "open_transport"]


@dataclass
class ConnectedLab:
    lab: Lab
    clock: Clock
    drivers: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, PotentiostatChannel] = field(default_factory=dict)
    ovens: dict[str, Oven] = field(default_factory=dict)
    simulation: Any = None
    #: Reset instruments on connecting; False leaves steps the instruments run undisturbed.
    reset: bool = True

    def close(self) -> None:
        for driver in self.drivers.values():
            try:
                driver.close()
            except InstrumentError:
                pass
        if self.simulation is not None:
            self.simulation.close()


def connect_lab(
    lab: Lab,
    clock: Clock,
    cells: list[str] | None = None,
    noise: bool = False,
    reset: bool = True,
    ovens: bool = False,
) -> ConnectedLab:
    """Open every instrument the chosen cells need, identify it, and build their devices.

    ``reset=False`` (resuming after the orchestrator went away) identifies the instruments
    without resetting them or discarding what they buffered, so running steps can be
    re-attached. ``ovens=True`` connects the lab's ovens too. Raises
    :class:`~drivers.transport.InstrumentError` naming the instrument and its resource when one
    cannot be reached; no step has started by then.
    """
    chosen = [lab.cell(name) for name in cells] if cells else list(lab.cells)
    connected = ConnectedLab(lab, clock, reset=reset)
    used = [lab.instruments[c.instrument] for c in chosen] + [lab.instruments[o] for o in lab.ovens if ovens]
    served = getattr(clock, "served", False)  # a `sim serve --stepped` lab: its instruments are there
    in_process = (clock.simulated and not served) or any(config.resource == "sim" for config in used)
    if in_process and any(config.simulated for config in used):
        connected.simulation = SimulatedLab(lab, clock, noise=noise)
    try:
        for cell in chosen:
            connected.channels[cell.name] = _channel(connected, cell)
        for name in lab.ovens if ovens else []:
            connected.ovens[name] = _oven(connected, name)
    except BaseException:
        connected.close()
        raise
    return connected


def _open(connected: ConnectedLab, name: str) -> Any:
    """The driver of instrument ``name``, opened through its registered model and connected
    (identified; reset unless the lab is re-attaching to running steps)."""
    if name in connected.drivers:
        return connected.drivers[name]
    config = connected.lab.instruments[name]
    model = registry.model(config.driver)
    endpoint = None
    if config.resource == "sim":
        endpoint = connected.simulation.instruments[name]
    elif config.simulated and connected.simulation is not None:
        # Simulated time: serve the simulator here, on the resource's loopback port, and
        # reach it through the real transport, exactly as hardware.
        connected.simulation.serve(name)
    driver = model.open(name, config, connected.clock, endpoint)
    connected.drivers[name] = driver
    driver.connect(reset=connected.reset)
    return driver


def _oven(connected: ConnectedLab, name: str) -> Oven:
    """An oven device on its controller, reachable and answering before anything moves."""
    config = connected.lab.instruments[name]
    driver: OvenDriver = _open(connected, name)
    poll_s = config.poll_interval if "poll_interval" in config.model_fields_set else 10.0
    over_C = config.over_temperature if isinstance(config, OvenConfig) else 250.0
    on_controller = config.instrument_limit if isinstance(config, OvenConfig) else False
    return Oven(
        driver,
        connected.clock,
        name=name,
        over_temperature_C=over_C,
        poll_interval_s=poll_s,
        instrument_limit=on_controller,
    )


def _channel(connected: ConnectedLab, cell: CellConfig) -> PotentiostatChannel:
    driver: PotentiostatDriver = _open(connected, cell.instrument)
    return PotentiostatChannel(
        name=cell.name.replace("-", "_"),
        driver=driver,
        clock=connected.clock,
        active_mass_g=cell.active_mass,
        channel=cell.channel,
        voltage_max_V=cell.voltage_max,
        voltage_min_V=cell.voltage_min,
        temperature_C=cell.temperature,
    )
