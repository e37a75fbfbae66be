"""The ophyd ``Oven`` device: an oven under a temperature controller, driven through its contract.

``set(T_C)`` returns a Status that finishes once the process value has stayed within
``tolerance_C`` of the target for ``settle_time_s``, found by polling on the shared clock
(``clock.call_later``; no sleeps, no threads of its own). An over-temperature limit puts the
heater in its safe state and fails the Status. The controller is any
:class:`drivers.contracts.OvenDriver` (the Eurotherm 2400/3200 driver ships).

Where the driver offers an instrument-side limit (``arm_high_limit_C``, ``read_alarm_active``,
``acknowledge_alarms``: the Eurotherm's alarm 1, whose relay must be wired to cut the heater),
every ``set`` first checks the controller's alarm (a trip it made while no host watched is an
:class:`OverTemperatureError` with a report, before anything heats) and arms the limit there,
read back; from then on the controller limits the oven itself, host or no host.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device
from ophyd.status import Status

from drivers.clock import Clock, TimerHandle
from drivers.contracts import InstrumentLimit, OvenDriver
from drivers.oven_signals import (
    READBACKS,
    READERS,
    DriverReadback,
    DriverSetting,
    Setting,
    output_power_pct,
    process_value_C,
    rate_limit_C_min,
    working_setpoint_C,
    write_rate_limit_C_min,
)
from drivers.transport import InstrumentError

#: Longest settled watch interval by default once the controller holds the limit itself (s).
ARMED_WATCH_MAX_S = 600.0


class OverTemperatureError(RuntimeError):
    """The oven exceeded its over-temperature limit and was put in its safe state."""


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
        Longest poll interval once settled: while the watched value reads exactly the same,
        poll after poll, the watch interval doubles up to this (never below
        ``watch_interval_s``); any change brings it back to ``watch_interval_s``. Default: while
        the controller holds the over-temperature limit itself (armed and read back for the
        present ``over_temperature_C``), :data:`ARMED_WATCH_MAX_S`; otherwise no stretching
        (``watch_interval_s``), since the host's watch is then the only over-temperature check.
    instrument_limit : bool
        Arm the over-temperature limit on the controller too, where the driver can
        (``arm_high_limit_C``); False keeps the host's watch as the only one. Arming assumes
        the controller's alarm relay cuts the heater (for the Eurotherm: alarm 1 an absolute
        high alarm, latching, its relay wired to the heater's contactor).

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
    and ``trigger`` fails until :meth:`reset_trip`. With the limit armed on the controller,
    the settled watch reads the controller's alarm state instead of the process value (the
    alarm latches, so no excursion between two polls goes unseen; settling polls read both),
    and a tripped alarm is the same fault, reported as the controller's trip.
    ``stop()`` puts the controller in its safe state; it is idempotent.

    ``trigger`` reads the process value, working set point and output power together (one
    block read where the driver offers ``read_readings``, as the Eurotherm does), and a
    ``read`` at the same clock time reuses them: on a simulated clock nothing changes while
    time stands still. Any write through the device forgets them.
    """

    temperature = Cpt(DriverReadback, reader=process_value_C, kind="hinted")
    working_setpoint = Cpt(DriverReadback, reader=working_setpoint_C, kind="normal")
    output_power = Cpt(DriverReadback, reader=output_power_pct, kind="normal")
    ramp_rate = Cpt(DriverSetting, reader=rate_limit_C_min, writer=write_rate_limit_C_min, kind="config")
    tolerance_C = Cpt(Setting, value=1.0, kind="config")
    settle_time_s = Cpt(Setting, value=60.0, kind="config")
    over_temperature_C = Cpt(Setting, value=250.0, kind="config", minimum=-math.inf)
    safe_setpoint_C = Cpt(Setting, value=25.0, kind="config", minimum=-math.inf)
    poll_interval_s = Cpt(Setting, value=10.0, kind="config", minimum=1e-3)
    watch_interval_s = Cpt(Setting, value=10.0, kind="config", minimum=1e-3)

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
        instrument_limit: bool = True,
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
        if watch_max_interval_s is not None and not (
            math.isfinite(watch_max_interval_s) and watch_max_interval_s > 0
        ):
            raise ValueError(f"watch_max_interval_s must be > 0, got {watch_max_interval_s}")
        self._watch_max_s = None if watch_max_interval_s is None else float(watch_max_interval_s)
        #: The driver, where its controller holds the limit itself and that is to be used.
        self._limiter = driver if instrument_limit and isinstance(driver, InstrumentLimit) else None
        #: The over-temperature limit the controller holds itself (armed and read back), if any.
        self.armed_limit_C: float | None = None
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
    def watch_max_interval_s(self) -> float:
        """Longest over-temperature watch interval while the watched value stays the same."""
        if self._watch_max_s is not None:
            return self._watch_max_s
        return ARMED_WATCH_MAX_S if self._armed() else float(self.watch_interval_s.get())

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
        self._arm_instrument_limit(limit)
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
        """Acknowledge an over-temperature trip so that :meth:`set` works again; with the limit
        on the controller its alarm is acknowledged too, which it refuses (the trip stays) while
        the temperature is still above the limit."""
        driver = self._limiter
        if driver is not None:
            driver.acknowledge_alarms()
            if driver.read_alarm_active():
                raise OverTemperatureError(
                    f"{self.name} ({driver.name}): the controller's over-temperature alarm is still "
                    f"latched (temperature {driver.read_process_value_C():.1f} C): acknowledge it once "
                    "the oven is below its limit"
                )
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
            if snapshot is None or any(key not in snapshot for key in READBACKS):
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
            snapshot = {attr: float(values[key]) for attr, key in READBACKS.items()}
        else:
            snapshot = {attr: reader(self._driver) for attr, reader in READERS.items()}
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
        self._trip(f"temperature {pv_C:.1f} C exceeded the over-temperature limit {limit:.1f} C")
        return True

    def _trip(self, what: str, after: str = "") -> OverTemperatureError:
        """Safe state, pending Status failed, ``trigger``/``set`` refused until :meth:`reset_trip`."""
        safe_sp = self.safe_setpoint_C.get()
        self._forget_snapshot()
        with self._lock:
            self._active = False
            self._cancel_timer()
            pending, self._status = self._status, None
            self._target_C = None
        error = OverTemperatureError(
            f"{self.name} ({self._driver.name}): {what}; heater put in safe state (manual, 0 % output, "
            f"set point {safe_sp:.1f} C){after}"
        )
        self.tripped = error
        try:
            self._driver.safe_state(safe_sp)
        finally:
            if pending is not None and not pending.done:
                pending.set_exception(error)
        return error

    # -------------------------------------------------------------- instrument-side limit
    def _armed(self) -> bool:
        """The controller holds the present over-temperature limit itself (armed, read back)."""
        return self.armed_limit_C is not None and self.armed_limit_C == self.over_temperature_C.get()

    def _arm_instrument_limit(self, limit_C: float) -> None:
        """Before heating: a latched controller alarm is a trip (reported, nothing heats);
        otherwise the limit is armed on the controller (written, read back) if it is not yet."""
        driver = self._limiter
        if driver is None:
            return
        if driver.read_alarm_active():
            raise self._instrument_trip(
                "was found latched before heating: the oven went above it since the limit was last "
                "watched (while no host was running it, or between two polls)"
            )
        if self.armed_limit_C != limit_C:
            self.armed_limit_C = None
            driver.arm_high_limit_C(limit_C)
            self.armed_limit_C = limit_C

    def _instrument_trip(self, how: str) -> OverTemperatureError:
        driver = self._limiter
        assert driver is not None  # only a controller holding the limit trips on its own
        threshold = driver.read_high_limit_C()
        pv = driver.read_process_value_C()
        return self._trip(
            f"the controller's own alarm at the over-temperature limit {threshold:.1f} C (alarm 1, its "
            f"relay cuts the heater) {how}; temperature now {pv:.1f} C",
            "; reset_trip() acknowledges the alarm once the oven is below the limit",
        )

    def _poll(self) -> None:
        with self._lock:
            self._timer = None
            if not self._active:
                return
            status, target = self._status, self._target_C
        armed = self._armed()
        try:
            if armed and self._limiter is not None and self._limiter.read_alarm_active():
                self._instrument_trip("tripped")
                return
            if armed and status is None:  # settled: the latched alarm is the watch
                self.polls += 1
                with self._lock:
                    self._watch_factor *= 2.0
                self._schedule()
                return
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
