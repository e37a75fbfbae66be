"""The ophyd ``Oven`` device: an oven under a temperature controller, driven through its contract.

``set(T_C)`` returns a Status that finishes once the process value has stayed within
``tolerance_C`` of the target for ``settle_time_s``, found by polling on the shared clock
(``clock.call_later``; no sleeps, no threads of its own). An over-temperature limit puts the
heater in its safe state and fails the Status. The controller is any
:class:`drivers.contracts.OvenDriver` (the Eurotherm 2400/3200 driver ships).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Signal, SignalRO
from ophyd.status import Status

from drivers.clock import Clock, TimerHandle
from drivers.contracts import OvenDriver
from drivers.transport import InstrumentError


class OverTemperatureError(RuntimeError):
    """The oven exceeded its over-temperature limit and was put in its safe state."""


class _OvenSignalMixin:
    parent: Any
    attr_name: str

    def _stamp(self) -> None:
        self._metadata["timestamp"] = self.parent._clock.now()  # type: ignore[attr-defined]


class _DriverValue(_OvenSignalMixin):
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


class _DriverReadback(_DriverValue, SignalRO):
    """Read-only signal read from the driver."""


class _DriverSetting(_DriverValue, Signal):
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


class _Setting(_OvenSignalMixin, Signal):
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
def _process_value_C(driver: OvenDriver) -> float:
    return driver.read_process_value_C()


def _working_setpoint_C(driver: OvenDriver) -> float:
    return driver.read_working_setpoint_C()


def _output_power_pct(driver: OvenDriver) -> float:
    return driver.read_output_power_pct()


def _rate_limit_C_min(driver: OvenDriver) -> float:
    return driver.read_rate_limit_C_min()


def _write_rate_limit_C_min(driver: OvenDriver, rate_C_min: float) -> None:
    driver.write_rate_limit_C_min(rate_C_min)


#: Oven attribute -> key of the driver's ``read_readings()`` (the readings taken together).
_READBACKS = {
    "temperature": "process_value_C",
    "working_setpoint": "working_setpoint_C",
    "output_power": "output_power_pct",
}
_READERS: dict[str, Callable[[OvenDriver], float]] = {
    "temperature": _process_value_C,
    "working_setpoint": _working_setpoint_C,
    "output_power": _output_power_pct,
}


class Oven(Device):
    """An oven under a Eurotherm controller.

    Parameters
    ----------
    driver : OvenDriver
        The controller's driver (any :class:`drivers.contracts.OvenDriver`, e.g.
        :class:`drivers.eurotherm.EurothermDriver`).
    clock : Clock
        Shared clock; all polling runs on ``clock.call_later``.
    name : str
        ophyd name (prefix of every data key).
    tolerance_C, settle_time_s, over_temperature_C, safe_setpoint_C, poll_interval_s : float
        Initial values of the configuration signals of the same names.
    watch_interval_s : float, optional
        Poll interval once settled (over-temperature watch); defaults to ``poll_interval_s``.
    watch_max_interval_s : float, optional
        Longest poll interval once settled: while the process value reads exactly the same,
        poll after poll, the watch interval doubles up to this (never below
        ``watch_interval_s``); any change brings it back to ``watch_interval_s``. Default: no
        stretching (``watch_interval_s``): the host's over-temperature watch is the only one, so
        it is not relaxed unless asked for.

    Notes
    -----
    ``set(T_C)`` switches the controller to automatic, writes the target set point and
    returns a Status that finishes once the process value has stayed within ``tolerance_C``
    of ``T_C`` for ``settle_time_s`` (checked every ``poll_interval_s``, so settling is
    detected to within one poll). Polling continues after that, every ``watch_interval_s``
    (stretched up to ``watch_max_interval_s`` while the process value does not change at all),
    while the heater is in use, watching the over-temperature limit: above it the
    controller is put in its safe state (manual, 0 % output, set point
    ``safe_setpoint_C``), any pending Status fails with :class:`OverTemperatureError`,
    and ``trigger`` fails until :meth:`reset_trip`.
    ``stop()`` puts the controller in its safe state; it is idempotent.

    ``trigger`` reads the process value, working set point and output power together (one
    block read where the driver offers ``read_readings``, as the Eurotherm does), and a
    ``read`` at the same clock time reuses them: on a simulated clock nothing changes while
    time stands still. Any write through the device forgets them.
    """

    temperature = Cpt(_DriverReadback, reader=_process_value_C, kind="hinted")
    working_setpoint = Cpt(_DriverReadback, reader=_working_setpoint_C, kind="normal")
    output_power = Cpt(_DriverReadback, reader=_output_power_pct, kind="normal")
    ramp_rate = Cpt(_DriverSetting, reader=_rate_limit_C_min, writer=_write_rate_limit_C_min, kind="config")
    tolerance_C = Cpt(_Setting, value=1.0, kind="config")
    settle_time_s = Cpt(_Setting, value=60.0, kind="config")
    over_temperature_C = Cpt(_Setting, value=250.0, kind="config", minimum=-math.inf)
    safe_setpoint_C = Cpt(_Setting, value=25.0, kind="config", minimum=-math.inf)
    poll_interval_s = Cpt(_Setting, value=10.0, kind="config", minimum=1e-3)
    watch_interval_s = Cpt(_Setting, value=10.0, kind="config", minimum=1e-3)

    def __init__(
        self,
        driver: OvenDriver,
        clock: Clock,
        *,
        name: str = "oven",
        tolerance_C: float = 1.0,
        settle_time_s: float = 60.0,
        over_temperature_C: float = 250.0,
        safe_setpoint_C: float = 25.0,
        poll_interval_s: float = 10.0,
        watch_interval_s: float | None = None,
        watch_max_interval_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        self._driver = driver
        self._clock = clock
        super().__init__(name=name, **kwargs)
        self.tolerance_C.put(tolerance_C)
        self.settle_time_s.put(settle_time_s)
        self.over_temperature_C.put(over_temperature_C)
        self.safe_setpoint_C.put(safe_setpoint_C)
        self.poll_interval_s.put(poll_interval_s)
        self.watch_interval_s.put(poll_interval_s if watch_interval_s is None else watch_interval_s)
        self._lock = threading.RLock()
        self._timer: TimerHandle | None = None
        self._status: Status | None = None
        self._target_C: float | None = None
        self._in_band_since: float | None = None
        self._active = False
        if watch_max_interval_s is None:  # no stretching unless asked for
            watch_max_interval_s = float(self.watch_interval_s.get())
        if not (math.isfinite(watch_max_interval_s) and watch_max_interval_s > 0):
            raise ValueError(f"watch_max_interval_s must be > 0, got {watch_max_interval_s}")
        #: Longest over-temperature watch interval while the process value stays the same.
        self.watch_max_interval_s = float(watch_max_interval_s)
        self._watch_factor = 1.0
        self._watch_pv: float | None = None
        self._snapshot: dict[str, float] = {}
        self._snapshot_at: float | None = None
        self._pinned: dict[str, float] | None = None
        #: The over-temperature trip, if one happened (cleared by :meth:`reset_trip`).
        self.tripped: OverTemperatureError | None = None
        #: Number of process-value polls made (for benchmarks).
        self.polls = 0

    @property
    def driver(self) -> OvenDriver:
        return self._driver

    @property
    def target_C(self) -> float | None:
        """Last set point requested through :meth:`set` (None when idle/safe)."""
        return self._target_C

    # -------------------------------------------------------------- movable
    def set(self, temperature_C: float, **kwargs: Any) -> Status:
        """Heat (or cool) to ``temperature_C``; the Status finishes once settled."""
        target = float(temperature_C)
        limit = self.over_temperature_C.get()
        if self.tripped is not None:
            raise OverTemperatureError(
                f"{self.name}: tripped earlier ({self.tripped}); call reset_trip() first"
            )
        if not target < limit:
            raise ValueError(
                f"{self.name}: set point {target} C is not below the over-temperature limit {limit} C"
            )
        self._driver.validate_setpoint_C(target)
        status = Status(obj=self)
        self._forget_snapshot()
        with self._lock:
            previous = self._status
            self._status = status
            self._target_C = target
            self._in_band_since = None
            if previous is not None and not previous.done:
                previous.set_exception(RuntimeError(f"{self.name}: superseded by set({target})"))
            self._driver.heat_to(target)
            self._active = True
            self._cancel_timer()
        self._poll()
        return status

    def stop(self, *, success: bool = False) -> None:
        """Safe state (heater off, set point lowered); idempotent."""
        with self._lock:
            self._active = False
            self._cancel_timer()
            pending, self._status = self._status, None
            self._target_C = None
            self._in_band_since = None
        self._forget_snapshot()
        self._driver.safe_state(self.safe_setpoint_C.get())
        if pending is not None and not pending.done:
            pending.set_exception(RuntimeError(f"{self.name}: stopped before settling"))

    def reset_trip(self) -> None:
        """Acknowledge an over-temperature trip so that :meth:`set` works again."""
        self.tripped = None

    def trigger(self) -> Status:
        """Read the oven (see :meth:`read`) and check the over-temperature limit; fails once
        the oven has tripped."""
        # Status(obj=self) would build this device's repr for a tracing attribute on every
        # reading (most of a trigger's cost); the object is the same, given after.
        status = Status()
        status.obj = self
        if self.tripped is None and self._active:
            self._check_limit(self._take_snapshot()["temperature"])
        if self.tripped is not None:
            status.set_exception(self.tripped)
        else:
            status.set_finished()
        return status

    def read(self) -> dict[str, Any]:
        """The readings, all from one read of the controller (the one :meth:`trigger` made at
        this clock time, if any)."""
        with self._lock:
            snapshot = self._snapshot_now()
            if snapshot is None or any(key not in snapshot for key in _READBACKS):
                snapshot = self._take_snapshot()
            self._pinned = snapshot
            try:
                return dict(super().read())
            finally:
                self._pinned = None

    # -------------------------------------------------------------- snapshots
    def _take_snapshot(self) -> dict[str, float]:
        """Process value, working set point and output power, read now (stamped with the clock)."""
        read_readings = getattr(self._driver, "read_readings", None)
        if read_readings is not None:
            values = read_readings()
            snapshot = {attr: float(values[key]) for attr, key in _READBACKS.items()}
        else:
            snapshot = {attr: reader(self._driver) for attr, reader in _READERS.items()}
        with self._lock:
            self._snapshot, self._snapshot_at = snapshot, self._clock.now()
        return snapshot

    def _snapshot_now(self) -> dict[str, float] | None:
        """The readings pinned by :meth:`read`, or taken at this very clock time; else None."""
        if self._pinned is not None:
            return self._pinned
        if self._snapshot_at is not None and self._snapshot_at == self._clock.now():
            return self._snapshot
        return None

    def _forget_snapshot(self) -> None:
        with self._lock:
            self._snapshot, self._snapshot_at = {}, None

    # -------------------------------------------------------------- polling
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_limit(self, pv_C: float) -> bool:
        limit = self.over_temperature_C.get()
        if pv_C <= limit:
            return False
        safe_sp = self.safe_setpoint_C.get()
        self._forget_snapshot()
        with self._lock:
            self._active = False
            self._cancel_timer()
            pending, self._status = self._status, None
            self._target_C = None
        error = OverTemperatureError(
            f"{self.name} ({self._driver.name}): temperature {pv_C:.1f} C exceeded the "
            f"over-temperature limit {limit:.1f} C; heater put in safe state (manual, 0 % output, set point "
            f"{safe_sp:.1f} C)"
        )
        self.tripped = error
        try:
            self._driver.safe_state(safe_sp)
        finally:
            if pending is not None and not pending.done:
                pending.set_exception(error)
        return True

    def _poll(self) -> None:
        with self._lock:
            self._timer = None
            if not self._active:
                return
            status, target = self._status, self._target_C
        try:
            snapshot = self._snapshot_now()
            pv = snapshot["temperature"] if snapshot and "temperature" in snapshot else self._read_pv()
        except InstrumentError as exc:
            if status is not None and not status.done:
                with self._lock:
                    self._status = None
                status.set_exception(exc)
            self._schedule()
            return
        self.polls += 1
        if self._check_limit(pv):
            return
        now = self._clock.now()
        finished = False
        with self._lock:
            if status is not None and status is self._status and target is not None:
                if abs(pv - target) <= self.tolerance_C.get():
                    if self._in_band_since is None:
                        self._in_band_since = now
                    if now - self._in_band_since >= self.settle_time_s.get():
                        finished = True
                        self._status = None
                else:
                    self._in_band_since = None
            # The watch stretches while the process value does not move at all.
            if self._status is None and pv == self._watch_pv:
                self._watch_factor *= 2.0
            else:
                self._watch_factor = 1.0
            self._watch_pv = pv
        if finished and status is not None:
            status.set_finished()
        self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            if self._active and self._timer is None:
                if self._status is not None:
                    interval = self.poll_interval_s.get()
                else:
                    watch = self.watch_interval_s.get()
                    interval = min(watch * self._watch_factor, max(watch, self.watch_max_interval_s))
                self._timer = self._clock.call_later(interval, self._poll)

    def _read_pv(self) -> float:
        """The process value, read now (kept as this clock time's reading)."""
        pv = self._driver.read_process_value_C()
        with self._lock:
            if self._snapshot_at != self._clock.now():
                self._snapshot, self._snapshot_at = {}, self._clock.now()
            self._snapshot = {**self._snapshot, "temperature": pv}
        return pv
