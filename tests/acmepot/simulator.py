"""The simulated Acme POT-1: its line protocol over the simulated cell (registered from the
test's orchestrator side, as the shipped models' simulators are in orchestrator.sim_instruments)."""

from __future__ import annotations

from typing import Any


class SimulatedAcmePot:
    def __init__(self, cell: Any, clock: Any) -> None:
        self.cell = cell
        self.clock = clock
        self.commands: list[str] = []
        self._out = bytearray()
        self._t = clock.now()

    def _catch_up(self) -> None:
        now = self.clock.now()
        if now > self._t:
            self.cell.rest(now - self._t)
            self._t = now

    def receive(self, data: bytes) -> None:
        for line in data.decode("ascii").splitlines():
            self.commands.append(line)
            self._catch_up()
            if line == "*IDN?":
                reply = "ACME,POT-1,0001,1.0"
            elif line == "MEAS?":
                reply = f"{self.cell.voltage_V():.6f},0.0"
            elif line in ("RST", "OFF"):
                reply = "OK"
            else:
                reply = "ERR unknown command"
            self._out += (reply + "\n").encode("ascii")

    def take_output(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out


def simulator(sim: Any, name: str, config: Any, index: int) -> SimulatedAcmePot:
    return SimulatedAcmePot(sim.cell_for(name, index), sim.clock)
