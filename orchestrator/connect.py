"""From a validated lab file to connected drivers and ophyd devices.

Simulators are reached only from here, and only for instruments marked ``simulated`` with
``resource = "sim"``: :mod:`orchestrator.simlab` builds them in this process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from drivers.clock import Clock
from drivers.device import PotentiostatChannel
from drivers.emstat4 import EmStat4Driver
from drivers.eurotherm import EurothermDriver, Oven
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.transport import InstrumentError, SerialTransport, VisaTransport
from orchestrator.lab import CellConfig, InstrumentConfig, Lab

_SERIAL_URL = re.compile(r"^(socket|rfc2217|loop|spy|alt|hwgrep)://|^COM\d+$|^/dev/", re.IGNORECASE)


def open_transport(name: str, config: InstrumentConfig) -> Any:
    """A transport for a real (or TCP-served simulated) instrument's resource string."""
    resource = config.resource
    if _SERIAL_URL.search(resource):
        return SerialTransport(
            resource, baudrate=config.serial_baudrate, timeout_s=config.timeout, name=f"{name} ({resource})"
        )
    return VisaTransport(resource, timeout_s=config.timeout, name=f"{name} ({resource})")


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
        from orchestrator.simlab import SimulatedLab

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


def _oven(connected: ConnectedLab, name: str) -> Oven:
    """A Eurotherm-controlled oven, reachable and answering before anything moves."""
    config = connected.lab.instruments[name]
    options = {"address": config.address, "series": config.series, "name": name}
    if config.resource == "sim":
        driver = EurothermDriver.in_process(connected.simulation.instruments[name], **options)
    else:
        if config.simulated and connected.simulation is not None:
            connected.simulation.serve(name)
        url = config.resource
        driver = EurothermDriver.from_url(
            url, baudrate=config.serial_baudrate, timeout_s=config.timeout, **options
        )
    connected.drivers[name] = driver
    driver.read_process_value_C()  # reachable, and speaking Modbus at this address
    poll_s = config.poll_interval if "poll_interval" in config.model_fields_set else 10.0
    return Oven(driver, connected.clock, name=name, over_temperature_C=config.over_temperature,
                poll_interval_s=poll_s)  # fmt: skip


def _driver(connected: ConnectedLab, name: str) -> Any:
    if name in connected.drivers:
        return connected.drivers[name]
    config = connected.lab.instruments[name]
    if config.resource == "sim":
        transport = connected.simulation.transport(name)
    else:
        if config.simulated and connected.simulation is not None:
            # Simulated time: serve the simulator here, on the resource's loopback port, and
            # reach it through the real transport, exactly as hardware.
            connected.simulation.serve(name)
        transport = open_transport(name, config)
    driver: Any
    if config.driver == "keithley2450":
        driver = Keithley2450Potentiostat(
            Keithley2450(transport, name),
            connected.clock,
            poll_interval_s=config.poll_interval,
            compliance_V=config.compliance,
        )
        driver.initialise(reset=connected.reset)
    elif config.driver == "emstat4":
        driver = EmStat4Driver(
            transport,
            connected.clock,
            name=name,
            poll_interval_s=config.poll_interval,
            model=config.model,
            sample_interval_s=config.sample_interval,
        )
        if connected.reset:
            driver.firmware_version()  # reachable, and speaking MethodSCRIPT
        else:
            driver.script_running()  # reachable; a running script's output is kept
    else:  # pragma: no cover - the lab schema admits only known drivers
        raise ValueError(f"unknown driver {config.driver!r}")
    connected.drivers[name] = driver
    return driver


def _channel(connected: ConnectedLab, cell: CellConfig) -> PotentiostatChannel:
    driver = _driver(connected, cell.instrument)
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
