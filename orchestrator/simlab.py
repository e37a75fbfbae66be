"""The simulated lab: every simulated instrument of a lab file, on the cell physics.

Only the orchestrator reaches this module (in simulated mode, and for ``relaxlab sim
serve``): drivers and plans never see a simulator, only the bytes it speaks. Instruments with
``resource = "sim"`` are reached in-process; instruments with a TCP resource on 127.0.0.1 are
served on that port by :class:`simulators.server.InstrumentServer`, and the driver connects
to them through pyvisa-py or pyserial exactly as to hardware.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from drivers.transport import InProcessTransport
from orchestrator.lab import Lab
from simulators.cell import Cell, Sample
from simulators.emstat4 import SimulatedEmStat4
from simulators.keithley2450 import SimulatedKeithley2450
from simulators.material import load_material
from simulators.server import InstrumentServer

_PORT = re.compile(
    r"(?:TCPIP\d*::127\.0\.0\.1::(\d+)::SOCKET)|(?:(?:socket|ASRLsocket)://127\.0\.0\.1:(\d+))", re.I
)


def tcp_port(resource: str) -> int | None:
    """The loopback port of a TCP resource string, or None for other resources."""
    match = _PORT.search(resource)
    if not match:
        return None
    return int(match.group(1) or match.group(2))


def _material(name: str) -> Any:
    return load_material(None if name in ("x04", "default") else name)


class SimulatedLab:
    """Simulated instruments, one cell each, keyed by instrument name."""

    def __init__(self, lab: Lab, clock: Any, noise: bool = False) -> None:
        self.clock = clock
        self.lab = lab
        self.lock = threading.RLock()
        self.instruments: dict[str, Any] = {}
        self.cells: dict[str, Cell] = {}
        self.servers: dict[str, InstrumentServer] = {}
        for index, (name, config) in enumerate(sorted(lab.instruments.items())):
            if not config.simulated:
                continue
            cells = [c for c in lab.cells if c.instrument == name]
            if len(cells) > 1:
                raise ValueError(f"instrument {name!r}: a simulated {config.driver} has one channel")
            cfg = cells[0] if cells else None
            material = _material(cfg.material if cfg else "x04")
            cell = Cell(
                Sample(material),
                active_mass_g=cfg.active_mass if cfg else 0.007,
                temperature_C=cfg.temperature if cfg else 25.0,
                noise_seed=(lab.lab.seed * 1000 + index) if noise else None,
            )
            self.cells[name] = cell
            if config.driver == "keithley2450":
                self.instruments[name] = SimulatedKeithley2450(cell, clock, serial=f"SIM{index:05d}")
            else:
                self.instruments[name] = SimulatedEmStat4(
                    cell, clock, serial=f"ES4{config.model}SIM{index:04d}", model=config.model
                )

    def transport(self, name: str) -> InProcessTransport:
        return InProcessTransport(self.instruments[name], name=f"{name} (simulated)")

    def serve(self, name: str, port: int | None = None) -> InstrumentServer:
        """Serve one instrument on 127.0.0.1 (its resource's port, else ``port``, else free)."""
        if name in self.servers:
            return self.servers[name]
        config = self.lab.instruments[name]
        chosen = tcp_port(config.resource) or port or 0
        server = InstrumentServer(self.instruments[name], chosen, self.lock, name=name).start()
        self.servers[name] = server
        if hasattr(self.clock, "add_listener"):  # simulated time shared with the host
            self.clock.add_listener(server.push_now)
        return server

    def serve_all(self, base_port: int = 0) -> dict[str, int]:
        ports = {}
        for offset, name in enumerate(sorted(self.instruments)):
            port = base_port + offset if base_port else None
            ports[name] = self.serve(name, port).port
        return ports

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
