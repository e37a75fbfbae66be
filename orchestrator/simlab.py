"""The simulated lab: every simulated instrument of a lab file, on the cell physics.

Only :mod:`orchestrator.connect` (in-process, ``resource = "sim"``) and ``relaxlab sim serve``
(over TCP) reach this module: drivers and plans never see a simulator, only bytes.
"""

from __future__ import annotations

from typing import Any

from drivers.transport import InProcessTransport
from orchestrator.lab import Lab
from simulators.cell import Cell, Sample
from simulators.keithley2450 import SimulatedKeithley2450
from simulators.material import load_material


def _material(name: str) -> Any:
    return load_material(None if name in ("x04", "default") else name)


class SimulatedLab:
    """Simulated instruments, one cell each, keyed by instrument name."""

    def __init__(self, lab: Lab, clock: Any, noise: bool = False) -> None:
        self.clock = clock
        self.instruments: dict[str, Any] = {}
        self.cells: dict[str, Cell] = {}
        for index, (name, config) in enumerate(sorted(lab.instruments.items())):
            if not config.simulated:
                continue
            cells = [c for c in lab.cells if c.instrument == name]
            if config.driver == "keithley2450":
                if len(cells) > 1:
                    raise ValueError(f"instrument {name!r}: a Keithley 2450 has one channel")
                cfg = cells[0] if cells else None
                material = _material(cfg.material if cfg else "x04")
                cell = Cell(
                    Sample(material),
                    active_mass_g=cfg.active_mass if cfg else 0.007,
                    temperature_C=cfg.temperature if cfg else 25.0,
                    noise_seed=(lab.lab.seed * 1000 + index) if noise else None,
                )
                self.cells[name] = cell
                self.instruments[name] = SimulatedKeithley2450(cell, clock, serial=f"SIM{index:05d}")

    def transport(self, name: str) -> InProcessTransport:
        return InProcessTransport(self.instruments[name], name=f"{name} (simulated)")
