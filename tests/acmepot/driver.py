"""Driver of the Acme POT-1: implements :class:`drivers.base.PotentiostatDriver`."""

from __future__ import annotations

from typing import Literal

from drivers.base import Point, PotentiostatDriver, StepProgress
from drivers.clock import Clock
from drivers.lab_config import InstrumentConfig
from drivers.registry import open_transport
from drivers.techniques import Loop, Rest, Technique
from drivers.transport import ByteEndpoint, InstrumentError, Transport


class AcmeConfig(InstrumentConfig):
    driver: Literal["acmepot"]


class AcmeRest:
    """A rest at open circuit, measured every ``record_interval_s`` from the host."""

    def __init__(self, driver: AcmePot, step: Rest, started_at_s: float, substep_started_s: float) -> None:
        self.driver = driver
        self.step = step
        self.started_at_s = started_at_s
        self.missing_points = 0
        self.end_reason: str | None = None
        self._next_s = substep_started_s

    def next_poll_delay_s(self) -> float:
        return max(0.0, self._next_s - self.driver.clock.now())

    def poll(self) -> tuple[list[Point], bool]:
        now = self.driver.clock.now()
        points = []
        if self.end_reason is None and now >= self._next_s:
            voltage_V, current_A = self.driver.measure()
            points.append(Point(now, voltage_V, current_A, 0.0))
            self._next_s = now + self.step.record_interval_s
            if now - self.started_at_s >= self.step.duration_s:
                self.end_reason = "time"
        return points, self.end_reason is not None

    def abort(self) -> None:
        self.end_reason = self.end_reason or "aborted"


class AcmePot:
    def __init__(self, transport: Transport, clock: Clock, name: str, poll_interval_s: float) -> None:
        self.transport = transport
        self.clock = clock
        self.name = name
        self.poll_interval_s = poll_interval_s

    def _query(self, command: str) -> str:
        self.transport.write_line(command)
        return self.transport.read_line(command=command)

    def connect(self, reset: bool = True) -> str:
        identity = self._query("*IDN?")
        if not identity.startswith("ACME,POT-1"):
            raise InstrumentError(self.name, f"expected an Acme POT-1, got {identity!r}", "*IDN?")
        if reset:
            self._query("RST")
        return identity

    def set_cell_limits(self, voltage_min_V: float, voltage_max_V: float) -> None:
        pass  # at open circuit the cell cannot be driven past them

    def measure(self) -> tuple[float, float]:
        volts, amps = self._query("MEAS?").split(",")
        return float(volts), float(amps)

    def start_step(self, step: Technique | Loop, active_mass_g: float, step_index: int) -> AcmeRest:
        if not isinstance(step, Rest):
            raise ValueError(f"{self.name}: the Acme POT-1 only rests (got a {step.kind} step)")
        now = self.clock.now()
        return AcmeRest(self, step, now, now)

    def reattach(self, step: Technique | Loop, active_mass_g: float, progress: StepProgress) -> AcmeRest:
        if not isinstance(step, Rest):
            raise InstrumentError(self.name, "only rests run on an Acme POT-1")
        last = progress.last.time_s + step.record_interval_s if progress.last else progress.started_at_s
        return AcmeRest(self, step, progress.started_at_s, last)

    def safe_state(self) -> None:
        self._query("OFF")

    def measure_voltage_V(self) -> float:
        return self.measure()[0]

    def close(self) -> None:
        self.transport.close()


def open_driver(name: str, config: AcmeConfig, clock: Clock, endpoint: ByteEndpoint | None) -> AcmePot:
    return AcmePot(open_transport(name, config, endpoint), clock, name, config.poll_interval)


def _contract(driver: AcmePot) -> PotentiostatDriver:
    """Never called: mypy checks here that the driver implements the potentiostat contract."""
    return driver
