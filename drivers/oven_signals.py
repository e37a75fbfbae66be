"""The signals of the ophyd ``Oven`` device (:mod:`drivers.oven`): values read from the
controller's driver on every ``get`` (or from the oven's snapshot of one block read), settings
written through it, and soft configuration values, all stamped with the oven's clock."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ophyd import Signal, SignalRO
from ophyd.status import Status

from drivers.contracts import OvenDriver


class OvenSignalMixin:
    parent: Any
    attr_name: str

    def _stamp(self) -> None:
        self._metadata["timestamp"] = self.parent._clock.now()  # type: ignore[attr-defined]


class DriverValue(OvenSignalMixin):
    """A signal whose value is read from the driver on every ``get``."""

    def __init__(self, *, reader: Callable[[OvenDriver], float], **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", 0.0)
        super().__init__(**kwargs)
        self._reader = reader

    def get(self, **kwargs: Any) -> float:
        snapshot = self.parent._snapshot_now()
        if snapshot is not None and self.attr_name in snapshot:
            value = snapshot[self.attr_name]
        else:
            value = self._reader(self.parent._driver)
        self._readback = value
        self._stamp()
        return value


class DriverReadback(DriverValue, SignalRO):
    """Read-only signal read from the driver."""


class DriverSetting(DriverValue, Signal):
    """Read/write signal backed by the driver (validated there; ``set`` completes at once)."""

    def __init__(self, *, writer: Callable[[OvenDriver, float], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._writer = writer

    def put(self, value: Any, **kwargs: Any) -> None:
        self.parent._forget_snapshot()
        self._writer(self.parent._driver, float(value))
        self._readback = float(value)
        self._stamp()

    def set(self, value: Any, **kwargs: Any) -> Status:
        self.put(value)
        status = Status(obj=self)
        status.set_finished()
        return status


class Setting(OvenSignalMixin, Signal):
    """Soft configuration value stamped with the oven's clock; ``set`` completes at once."""

    def __init__(self, *, minimum: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", 0.0)
        super().__init__(**kwargs)
        self._minimum = minimum

    def put(self, value: Any, **kwargs: Any) -> None:
        value = float(value)
        if not math.isfinite(value) or value < self._minimum:
            raise ValueError(f"{self.name} must be >= {self._minimum}, got {value}")
        kwargs["timestamp"] = self.parent._clock.now()
        super().put(value, **kwargs)

    def set(self, value: Any, **kwargs: Any) -> Status:
        self.put(value)
        status = Status(obj=self)
        status.set_finished()
        return status


# The controller values the signals read and write, through the oven contract.
def process_value_C(driver: OvenDriver) -> float:
    return driver.read_process_value_C()


def working_setpoint_C(driver: OvenDriver) -> float:
    return driver.read_working_setpoint_C()


def output_power_pct(driver: OvenDriver) -> float:
    return driver.read_output_power_pct()


def rate_limit_C_min(driver: OvenDriver) -> float:
    return driver.read_rate_limit_C_min()


def write_rate_limit_C_min(driver: OvenDriver, rate_C_min: float) -> None:
    driver.write_rate_limit_C_min(rate_C_min)


#: Oven attribute -> key of the driver's ``read_readings()`` (the readings taken together).
READBACKS = {
    "temperature": "process_value_C",
    "working_setpoint": "working_setpoint_C",
    "output_power": "output_power_pct",
}
READERS: dict[str, Callable[[OvenDriver], float]] = {
    "temperature": process_value_C,
    "working_setpoint": working_setpoint_C,
    "output_power": output_power_pct,
}
