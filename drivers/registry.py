"""The instrument registry: every instrument model a lab file can name, found in one place.

An :class:`InstrumentModel` ties together what the rest of relaxlab needs of a model:

* ``driver`` - the name a lab file gives (``driver = "keithley2450"``);
* ``kind`` - ``"potentiostat"``, ``"oven"`` or ``"diffractometer"``: the contract its driver
  implements (:mod:`drivers.contracts`) and the device the lab builds on it;
* ``config`` - its lab-file table, a subclass of :class:`drivers.lab_config.InstrumentConfig`;
* ``open`` - builds the driver (not yet connected) from its config, the shared clock and either
  an in-process simulator's byte endpoint (``resource = "sim"``) or None (open the resource).

Simulators are registered separately, by the orchestrator's simulated lab
(:func:`register_simulator`): drivers never import a simulator. The built-in models register
in :mod:`drivers.instruments`; a new model calls :func:`register` from its own package (see
``docs/adding-an-instrument.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.clock import Clock
from drivers.contracts import Kind
from drivers.lab_config import InstrumentConfig
from drivers.transport import ByteEndpoint, InProcessTransport, SerialTransport, Transport, VisaTransport

#: What :attr:`InstrumentModel.open` is called with: (instrument name, its config, the shared
#: clock, the in-process simulator's endpoint or None) -> the driver.
Opener = Callable[[str, Any, Clock, ByteEndpoint | None], Any]
#: A simulator factory: (the simulated lab, instrument name, its config, its index) -> endpoint.
SimulatorFactory = Callable[[Any, str, Any, int], Any]


@dataclass(frozen=True)
class InstrumentModel:
    driver: str
    kind: Kind
    config: type[InstrumentConfig]
    open: Opener
    description: str = ""


_MODELS: dict[str, InstrumentModel] = {}
_SIMULATORS: dict[str, SimulatorFactory] = {}


class UnknownInstrumentError(KeyError):
    """No instrument model is registered under that driver name."""


def register(model: InstrumentModel) -> InstrumentModel:
    """Make ``model`` known to lab files (its ``driver`` name must be new, or the same model)."""
    existing = _MODELS.get(model.driver)
    if existing is not None and existing != model:
        raise ValueError(f"instrument model {model.driver!r} is already registered")
    if model.kind not in ("potentiostat", "oven", "diffractometer"):
        raise ValueError(f"{model.driver}: unknown instrument kind {model.kind!r}")
    _MODELS[model.driver] = model
    return model


def unregister(driver: str) -> None:
    """Forget a model and its simulator (tests that register their own)."""
    _MODELS.pop(driver, None)
    _SIMULATORS.pop(driver, None)


def register_simulator(driver: str, factory: SimulatorFactory) -> None:
    """The simulator that serves ``driver``'s instruments when a lab file marks them simulated."""
    _SIMULATORS[driver] = factory


def model(driver: str) -> InstrumentModel:
    try:
        return _MODELS[driver]
    except KeyError:
        raise UnknownInstrumentError(f"unknown driver {driver!r} (known: {', '.join(_MODELS)})") from None


def find(driver: Any) -> InstrumentModel | None:
    return _MODELS.get(driver) if isinstance(driver, str) else None


def models(kind: Kind | None = None) -> list[InstrumentModel]:
    """Registered models (of one kind), in registration order."""
    return [m for m in _MODELS.values() if kind is None or m.kind == kind]


def simulator(driver: str) -> SimulatorFactory:
    try:
        return _SIMULATORS[driver]
    except KeyError:
        raise UnknownInstrumentError(f"no simulator is registered for driver {driver!r}") from None


_SERIAL_URL = re.compile(r"^(socket|rfc2217|loop|spy|alt|hwgrep)://|^COM\d+$|^/dev/", re.IGNORECASE)


def open_transport(name: str, config: InstrumentConfig, endpoint: ByteEndpoint | None = None) -> Transport:
    """The transport to an instrument: the in-process simulator's endpoint when given, a
    pyserial port for serial resources (``COM5``, ``/dev/ttyUSB0``, ``socket://...``), else VISA."""
    if endpoint is not None:
        return InProcessTransport(endpoint, name=f"{name} (simulated)")
    resource = config.resource
    if _SERIAL_URL.search(resource):
        return SerialTransport(
            resource, baudrate=config.serial_baudrate, timeout_s=config.timeout, name=f"{name} ({resource})"
        )
    return VisaTransport(resource, timeout_s=config.timeout, name=f"{name} ({resource})")
