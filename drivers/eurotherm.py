"""Eurotherm 2400/3200 temperature controller over Modbus RTU, and the ophyd ``Oven`` device.

Wire protocol: Modbus RTU through :mod:`minimalmodbus` (function 3 to read, 16 to write).
Parameters are scaled integers matching the display's decimals (77.2 C is held as 772, signed
16-bit); with ``float_registers=True`` the driver uses the full-resolution IEEE floats at
``0x8000 + 2 * register`` (two registers, high word first) instead.

The register table (:data:`REGISTERS`) reads like the manual's parameter list; every write is
checked against it first and an out-of-range value raises :class:`ValueError` (nothing is
clamped). Connections:

* :meth:`EurothermDriver.from_url` - a pyserial port or URL (``/dev/ttyUSB0``, ``COM3``,
  ``socket://127.0.0.1:PORT`` for a simulator or a terminal server);
* :meth:`EurothermDriver.in_process` - a simulated controller's byte endpoint
  (``receive``/``take_output``) through :class:`SimSerialPort`: no sockets, no waiting.

:class:`Oven` is the ophyd device: ``set(T_C)`` returns a Status that finishes once the
process value has stayed within ``tolerance_C`` of the target for ``settle_time_s``, found by
polling on the shared clock (``clock.call_later``; no sleeps, no threads of its own). An
over-temperature limit puts the heater in its safe state and fails the Status.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import minimalmodbus
import serial
from ophyd import Component as Cpt
from ophyd import Device, Signal, SignalRO
from ophyd.status import Status

from drivers.clock import Clock, TimerHandle
from drivers.transport import ByteEndpoint, InstrumentError, InstrumentTimeout

FLOAT_BASE = 0x8000
AUTO, MANUAL = 0, 1
LOCAL, REMOTE = 0, 1


# ----------------------------------------------------------------------------- register table
@dataclass(frozen=True)
class Register:
    """One controller parameter as the communications manual lists it.

    ``decimals=None`` means "the display's decimals" (temperatures and rates). ``minimum`` and
    ``maximum`` bound writes (inclusive); ``None`` bounds are filled in from the driver's
    configuration (set-point limits).
    """

    name: str
    address: int
    unit: str
    writable: bool
    decimals: int | None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""

    @property
    def float_address(self) -> int:
        """Address of the same parameter as an IEEE float (two registers)."""
        return FLOAT_BASE + 2 * self.address


def _common() -> list[Register]:
    return [
        Register("process_value", 1, "C", False, None, description="measured temperature (PV)"),
        Register("target_setpoint", 2, "C", True, None, None, None, "target set point"),
        Register("working_setpoint", 5, "C", False, None, description="ramping set point"),
        Register("proportional_band", 6, "C", True, 1, 0.1, 999.9, "PID proportional band XP"),
        Register("integral_time", 8, "s", True, 0, 0, 9999, "PID integral time Ti (0 = off)"),
        Register("derivative_time", 9, "s", True, 0, 0, 9999, "PID derivative time Td (0 = off)"),
        Register("output_high", 30, "%", True, 1, 0.0, 100.0, "output high limit"),
        Register("output_low", 31, "%", True, 1, 0.0, 100.0, "output low limit"),
        Register("setpoint_rate_limit", 35, "C/min", True, None, 0.0, 999.9, "0 = off"),
        Register("auto_manual", 273, "", True, 0, AUTO, MANUAL, "0 auto, 1 manual"),
    ]


#: Parameter tables per series, keyed by name.
REGISTERS: dict[str, dict[str, Register]] = {
    "2400": {
        r.name: r
        for r in _common()
        + [Register("output_power", 3, "%", True, 1, 0.0, 100.0, "output (write in manual)")]
    },
    "3200": {
        r.name: r
        for r in _common()
        + [
            Register("manual_output", 3, "%", True, 1, 0.0, 100.0, "output used in manual"),
            Register("output_power", 4, "%", False, 1, description="working output"),
            Register("comms_setpoint", 26, "C", True, None, None, None, "set point in remote"),
            Register("status", 75, "", False, 0, description="status word"),
            Register("local_remote", 276, "", True, 0, LOCAL, REMOTE, "0 local, 1 remote"),
        ]
    },
}


# ----------------------------------------------------------------------------- serial adapter
class SimSerialPort:
    """Serial-port-like adapter over a simulated instrument's byte endpoint.

    Offers what :class:`minimalmodbus.Instrument` uses of a pyserial port (``open``, ``close``,
    ``is_open``, ``port``, ``baudrate``, ``timeout``, ``read``, ``write``, ``flush``,
    ``reset_input_buffer``, ``reset_output_buffer``). ``read`` never waits: what the
    simulator has not produced now will not come without time moving, so it returns what
    there is (minimalmodbus then reports no answer).

    A simulated line has no bus timing, so ``reset_input_buffer`` (called by minimalmodbus
    before every request) also forgets minimalmodbus's record of the previous read on this
    port; otherwise minimalmodbus would wall-clock sleep up to 1.75 ms (the 3.5-character
    silent interval) before each request.
    """

    def __init__(self, endpoint: ByteEndpoint, name: str = "simulated Eurotherm") -> None:
        self.endpoint = endpoint
        self.port = f"sim:{name}:{id(self):x}"
        self.name = name
        self.baudrate = 19200
        self.timeout = 0.0
        self.write_timeout = 0.0
        self.is_open = True
        self._buffer = bytearray()

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise serial.SerialException(f"{self.name}: port is closed")
        self.endpoint.receive(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise serial.SerialException(f"{self.name}: port is closed")
        if len(self._buffer) < size:
            self._buffer += self.endpoint.take_output()
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    @property
    def in_waiting(self) -> int:
        self._buffer += self.endpoint.take_output()
        return len(self._buffer)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self.endpoint.take_output()
        self._buffer.clear()
        minimalmodbus._latest_read_times.pop(self.port, None)

    def reset_output_buffer(self) -> None:
        pass


# ----------------------------------------------------------------------------- driver
class EurothermDriver:
    """Eurotherm 2400/3200 controller over Modbus RTU.

    Parameters
    ----------
    port : serial port-like object
        A pyserial port (``serial.serial_for_url(...)``) or a :class:`SimSerialPort`.
    address : int
        Modbus slave address, 1..247.
    series : {"2400", "3200"}
        Register map variant.
    decimals : int
        Display decimals configured in the unit (temperatures and rates), 0..2.
    setpoint_limits_C : (float, float)
        Allowed set-point range; writes outside raise :class:`ValueError`.
    float_registers : bool
        Use the IEEE float registers (full resolution) instead of scaled integers.
    name : str
        Used in every error message.
    """

    def __init__(
        self,
        port: Any,
        *,
        address: int = 1,
        series: str = "2400",
        decimals: int = 1,
        setpoint_limits_C: tuple[float, float] = (0.0, 300.0),
        float_registers: bool = False,
        name: str = "Eurotherm",
    ) -> None:
        if series not in REGISTERS:
            raise ValueError(f"series must be one of {sorted(REGISTERS)}, got {series!r}")
        if not 1 <= address <= 247:
            raise ValueError(f"slave address must be 1..247, got {address}")
        if decimals not in (0, 1, 2):
            raise ValueError(f"decimals must be 0, 1 or 2, got {decimals}")
        low, high = setpoint_limits_C
        if not low < high:
            raise ValueError(f"set-point limits must be increasing, got {setpoint_limits_C}")
        self.name = name
        self.series = series
        self.decimals = decimals
        self.setpoint_limits_C = (float(low), float(high))
        self.float_registers = float_registers
        table = {}
        for key, reg in REGISTERS[series].items():
            if reg.decimals is None:
                reg = replace(reg, decimals=decimals)
            if reg.unit == "C" and reg.writable:
                reg = replace(reg, minimum=float(low), maximum=float(high))
            table[key] = reg
        #: This instrument's parameter table (decimals and limits resolved).
        self.registers: dict[str, Register] = table
        self._lock = threading.RLock()
        self.instrument = minimalmodbus.Instrument(port, address)
        self.instrument.clear_buffers_before_each_transaction = True
        self.instrument.close_port_after_each_call = False

    # -------------------------------------------------------------- constructors
    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        baudrate: int = 19200,
        timeout_s: float = 0.5,
        **kwargs: Any,
    ) -> EurothermDriver:
        """Open a pyserial port or URL (8N1) and build the driver on it."""
        name = kwargs.pop("name", None) or f"Eurotherm at {url}"
        try:
            port = serial.serial_for_url(
                url, baudrate=baudrate, bytesize=8, parity="N", stopbits=1, timeout=timeout_s
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise InstrumentError(name, f"cannot open {url!r}: {exc}") from exc
        return cls(port, name=name, **kwargs)

    @classmethod
    def in_process(cls, endpoint: ByteEndpoint, **kwargs: Any) -> EurothermDriver:
        """Talk to a simulated controller in this process (deterministic, no waiting)."""
        name = kwargs.pop("name", "simulated Eurotherm")
        return cls(SimSerialPort(endpoint, name), name=name, **kwargs)

    # -------------------------------------------------------------- generic access
    def register(self, name: str) -> Register:
        try:
            return self.registers[name]
        except KeyError:
            raise KeyError(
                f"{self.name}: series {self.series} has no parameter {name!r} "
                f"(known: {', '.join(sorted(self.registers))})"
            ) from None

    def validate(self, name: str, value: float) -> float:
        """Check ``value`` against the table; return it as float or raise ValueError."""
        reg = self.register(name)
        if not reg.writable:
            raise ValueError(f"{self.name}: {name} (register {reg.address}) is read-only")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{self.name}: {name} must be finite, got {value}")
        lo, hi = reg.minimum, reg.maximum
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"{self.name}: {name} = {value} {reg.unit} is outside {lo}..{hi} {reg.unit}")
        assert reg.decimals is not None
        if not self.float_registers and abs(round(value * 10**reg.decimals)) > 32767:
            raise ValueError(
                f"{self.name}: {name} = {value} does not fit a register with {reg.decimals} decimals"
            )
        return value

    def read(self, name: str) -> float:
        """Read one parameter in engineering units."""
        reg = self.register(name)
        assert reg.decimals is not None
        what = f"read {name} (register {reg.address})"
        if self.float_registers:
            return self._call(what, self.instrument.read_float, reg.float_address, 3, 2)
        raw = self._call(what, self.instrument.read_register, reg.address, 0, 3, True)
        return raw / 10**reg.decimals

    def write(self, name: str, value: float) -> None:
        """Validate and write one parameter in engineering units."""
        value = self.validate(name, value)
        reg = self.register(name)
        assert reg.decimals is not None
        what = f"write {name} = {value} (register {reg.address})"
        if self.float_registers:
            self._call(what, self.instrument.write_float, reg.float_address, value, 2)
        else:
            # Scale here with rounding (minimalmodbus would truncate 2.3 * 10 to 22).
            raw = round(value * 10**reg.decimals)
            self._call(what, self.instrument.write_register, reg.address, raw, 0, 16, True)

    def _call(self, what: str, func: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            try:
                return func(*args)
            except minimalmodbus.NoResponseError as exc:
                raise InstrumentTimeout(self.name, "no reply (timeout)", what) from exc
            except minimalmodbus.IllegalRequestError as exc:
                raise InstrumentError(self.name, f"refused: {exc}", what) from exc
            except minimalmodbus.ModbusException as exc:
                raise InstrumentError(self.name, f"garbled reply: {exc}", what) from exc
            except (serial.SerialException, OSError) as exc:
                raise InstrumentError(self.name, f"port error: {exc}", what) from exc

    # -------------------------------------------------------------- named operations
    def read_process_value_C(self) -> float:
        return self.read("process_value")

    def read_target_setpoint_C(self) -> float:
        return self.read("target_setpoint")

    def write_target_setpoint_C(self, temperature_C: float) -> None:
        self.write("target_setpoint", temperature_C)

    def read_working_setpoint_C(self) -> float:
        return self.read("working_setpoint")

    def read_output_power_pct(self) -> float:
        return self.read("output_power")

    def read_rate_limit_C_min(self) -> float:
        return self.read("setpoint_rate_limit")

    def write_rate_limit_C_min(self, rate_C_min: float) -> None:
        """Set-point rate limit in C/min; 0 switches the limit off."""
        self.write("setpoint_rate_limit", rate_C_min)

    def read_manual(self) -> bool:
        return self.read("auto_manual") == MANUAL

    def write_manual(self, manual: bool) -> None:
        self.write("auto_manual", MANUAL if manual else AUTO)

    def write_manual_output_pct(self, output_pct: float) -> None:
        """Output in manual mode (register 3 on both series)."""
        key = "output_power" if self.series == "2400" else "manual_output"
        self.write(key, output_pct)

    def read_pid(self) -> tuple[float, float, float]:
        """(proportional band C, integral time s, derivative time s)."""
        return (
            self.read("proportional_band"),
            self.read("integral_time"),
            self.read("derivative_time"),
        )

    def write_pid(self, band_C: float, integral_s: float, derivative_s: float) -> None:
        for key, value in (
            ("proportional_band", band_C),
            ("integral_time", integral_s),
            ("derivative_time", derivative_s),
        ):
            self.validate(key, value)
        self.write("proportional_band", band_C)
        self.write("integral_time", integral_s)
        self.write("derivative_time", derivative_s)

    def write_output_limits_pct(self, low_pct: float, high_pct: float) -> None:
        if low_pct > high_pct:
            raise ValueError(f"{self.name}: output low {low_pct} % above high {high_pct} %")
        self.validate("output_low", low_pct)
        self.validate("output_high", high_pct)
        if low_pct > self.read("output_high"):
            self.write("output_high", high_pct)
            self.write("output_low", low_pct)
        else:
            self.write("output_low", low_pct)
            self.write("output_high", high_pct)

    def write_remote(self, remote: bool) -> None:
        """3200 only: follow the comms set point (register 26) instead of the local one."""
        self.write("local_remote", REMOTE if remote else LOCAL)

    def write_comms_setpoint_C(self, temperature_C: float) -> None:
        """3200 only: the set point used in remote (safe to write often)."""
        self.write("comms_setpoint", temperature_C)

    def read_status_word(self) -> int:
        """3200 only: the status word (bit 4 manual, bit 13 ramping in the simulator)."""
        return int(self.read("status"))

    def heat_to(self, temperature_C: float) -> None:
        """Automatic mode and a new target set point (validated before anything is sent)."""
        self.validate("target_setpoint", temperature_C)
        if self.read_manual():
            self.write_manual(False)
        self.write_target_setpoint_C(temperature_C)

    def safe_state(self, setpoint_C: float | None = None) -> None:
        """Heater off: manual mode at 0 % output, and the set point lowered.

        Idempotent. ``setpoint_C`` defaults to the low set-point limit.
        """
        safe_sp = self.setpoint_limits_C[0] if setpoint_C is None else setpoint_C
        self.validate("target_setpoint", safe_sp)
        self.write_manual(True)
        self.write_manual_output_pct(0.0)
        self.write_target_setpoint_C(safe_sp)

    def close(self) -> None:
        with self._lock:
            port = self.instrument.serial
            if port is not None and port.is_open:
                port.close()


# ----------------------------------------------------------------------------- ophyd device
class OverTemperatureError(RuntimeError):
    """The oven exceeded its over-temperature limit and was put in its safe state."""


class _OvenSignalMixin:
    parent: Any

    def _stamp(self) -> None:
        self._metadata["timestamp"] = self.parent._clock.now()  # type: ignore[attr-defined]


class _DriverReadback(_OvenSignalMixin, SignalRO):
    """Read-only signal whose value is read from the driver on every ``get``."""

    def __init__(self, *, reader: str, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", 0.0)
        super().__init__(**kwargs)
        self._reader = reader

    def get(self, **kwargs: Any) -> float:
        value = getattr(self.parent._driver, self._reader)()
        self._readback = value
        self._stamp()
        return value


class _DriverSetting(_OvenSignalMixin, Signal):
    """Read/write signal backed by the driver (validated there; ``set`` completes at once)."""

    def __init__(self, *, reader: str, writer: str, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", 0.0)
        super().__init__(**kwargs)
        self._reader = reader
        self._writer = writer

    def get(self, **kwargs: Any) -> float:
        value = getattr(self.parent._driver, self._reader)()
        self._readback = value
        self._stamp()
        return value

    def put(self, value: Any, **kwargs: Any) -> None:
        getattr(self.parent._driver, self._writer)(value)
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


class Oven(Device):
    """An oven under a Eurotherm controller.

    Parameters
    ----------
    driver : EurothermDriver
        Controller driver.
    clock : Clock
        Shared clock; all polling runs on ``clock.call_later``.
    name : str
        ophyd name (prefix of every data key).
    tolerance_C, settle_time_s, over_temperature_C, safe_setpoint_C, poll_interval_s : float
        Initial values of the configuration signals of the same names.
    watch_interval_s : float, optional
        Poll interval once settled (over-temperature watch); defaults to ``poll_interval_s``.

    Notes
    -----
    ``set(T_C)`` switches the controller to automatic, writes the target set point and
    returns a Status that finishes once the process value has stayed within ``tolerance_C``
    of ``T_C`` for ``settle_time_s`` (checked every ``poll_interval_s``, so settling is
    detected to within one poll). Polling continues after that, every ``watch_interval_s``,
    while the heater is in use, watching the over-temperature limit: above it the
    controller is put in its safe state (manual, 0 % output, set point
    ``safe_setpoint_C``), any pending Status fails with :class:`OverTemperatureError`,
    and ``trigger`` fails until :meth:`reset_trip`.
    ``stop()`` puts the controller in its safe state; it is idempotent.
    """

    temperature = Cpt(_DriverReadback, reader="read_process_value_C", kind="hinted")
    working_setpoint = Cpt(_DriverReadback, reader="read_working_setpoint_C", kind="normal")
    output_power = Cpt(_DriverReadback, reader="read_output_power_pct", kind="normal")
    ramp_rate = Cpt(
        _DriverSetting,
        reader="read_rate_limit_C_min",
        writer="write_rate_limit_C_min",
        kind="config",
    )
    tolerance_C = Cpt(_Setting, value=1.0, kind="config")
    settle_time_s = Cpt(_Setting, value=60.0, kind="config")
    over_temperature_C = Cpt(_Setting, value=250.0, kind="config", minimum=-math.inf)
    safe_setpoint_C = Cpt(_Setting, value=25.0, kind="config", minimum=-math.inf)
    poll_interval_s = Cpt(_Setting, value=10.0, kind="config", minimum=1e-3)
    watch_interval_s = Cpt(_Setting, value=10.0, kind="config", minimum=1e-3)

    def __init__(
        self,
        driver: EurothermDriver,
        clock: Clock,
        *,
        name: str = "oven",
        tolerance_C: float = 1.0,
        settle_time_s: float = 60.0,
        over_temperature_C: float = 250.0,
        safe_setpoint_C: float = 25.0,
        poll_interval_s: float = 10.0,
        watch_interval_s: float | None = None,
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
        #: The over-temperature trip, if one happened (cleared by :meth:`reset_trip`).
        self.tripped: OverTemperatureError | None = None
        #: Number of process-value polls made (for benchmarks).
        self.polls = 0

    @property
    def driver(self) -> EurothermDriver:
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
        self._driver.validate("target_setpoint", target)
        status = Status(obj=self)
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
        self._driver.safe_state(self.safe_setpoint_C.get())
        if pending is not None and not pending.done:
            pending.set_exception(RuntimeError(f"{self.name}: stopped before settling"))

    def reset_trip(self) -> None:
        """Acknowledge an over-temperature trip so that :meth:`set` works again."""
        self.tripped = None

    def trigger(self) -> Status:
        """Check the over-temperature limit now; fails once the oven has tripped."""
        status = Status(obj=self)
        if self.tripped is None and self._active:
            self._check_limit(self._driver.read_process_value_C())
        if self.tripped is not None:
            status.set_exception(self.tripped)
        else:
            status.set_finished()
        return status

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
            pv = self._driver.read_process_value_C()
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
        if finished and status is not None:
            status.set_finished()
        self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            if self._active and self._timer is None:
                settling = self._status is not None
                signal = self.poll_interval_s if settling else self.watch_interval_s
                self._timer = self._clock.call_later(signal.get(), self._poll)
