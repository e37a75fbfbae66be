"""Eurotherm 2400/3200 temperature controller over Modbus RTU (the driver under the ``Oven`` device).

Wire protocol: Modbus RTU through :mod:`minimalmodbus` (function 3 to read, 16 to write).
Parameters are scaled integers matching the display's decimals (77.2 C is held as 772, signed
16-bit); with ``float_registers=True`` the driver uses the full-resolution IEEE floats at
``0x8000 + 2 * register`` (two registers, high word first) instead.

The register table (:data:`~drivers.eurotherm.registers.REGISTERS`) reads like the manual's
parameter list; every write is checked against it first and an out-of-range value raises
:class:`ValueError` (nothing is clamped). Connections:

* :meth:`EurothermDriver.from_url` - a pyserial port or URL (``/dev/ttyUSB0``, ``COM3``,
  ``socket://127.0.0.1:PORT`` for a simulator or a terminal server);
* :meth:`EurothermDriver.in_process` - a simulated controller's byte endpoint
  (``receive``/``take_output``) through
  :class:`~drivers.eurotherm.sim_serial_port.SimSerialPort`: no sockets, no waiting.

:class:`drivers.oven.Oven` is the ophyd device: ``set(T_C)`` returns a Status that finishes once
the process value has stayed within ``tolerance_C`` of the target for ``settle_time_s``, found by
polling on the shared clock (``clock.call_later``; no sleeps, no threads of its own). An
over-temperature limit puts the heater in its safe state and fails the Status.

Instrument-side over-temperature limit: :meth:`EurothermDriver.arm_high_limit_C` writes the
limit as alarm 1's threshold (register 13) and reads it back; the controller then watches it
itself, host or no host. This assumes the unit's commissioning, which no Modbus write can check:
alarm 1 configured as an absolute (full-scale) high alarm, latching (manual reset), and its relay
wired to drop the heater's contactor (or the solid-state relay's supply). The status word's bit 0
(register 74 on the 2400, 75 on the 3200) then tells the host the alarm tripped, even one that tripped while no host was
there; :meth:`EurothermDriver.acknowledge_alarms` (register 274) resets it once the process value
is back below the threshold.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import minimalmodbus
import serial

from drivers.clock import Clock
from drivers.eurotherm.config import EurothermConfig
from drivers.eurotherm.registers import (
    AUTO,
    LOCAL,
    MANUAL,
    REGISTERS,
    REMOTE,
    STATUS_ALARM1_BIT,
    Register,
)
from drivers.eurotherm.sim_serial_port import SimSerialPort
from drivers.transport import ByteEndpoint, InstrumentError, InstrumentTimeout

#: Longest block read :meth:`EurothermDriver.read_many` makes (registers).
MAX_BLOCK_REGISTERS = 16


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
            if reg.unit == "C" and reg.writable and reg.minimum is None and reg.maximum is None:
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

    def validate_setpoint_C(self, temperature_C: float) -> float:
        """The contract's set-point check: ``temperature_C`` within the set-point limits."""
        return self.validate("target_setpoint", temperature_C)

    def connect(self, reset: bool = True) -> str:
        """Identify the controller: it answers Modbus at this address (the process value is
        read). Nothing on the controller is changed, with or without ``reset``."""
        value = self.read_process_value_C()
        return f"Eurotherm {self.series} at address {self.instrument.address} ({value:.1f} C)"

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

    def read_many(self, names: Sequence[str]) -> dict[str, float]:
        """Read several parameters in as few Modbus requests as the register map allows.

        Parameters at consecutive registers of this series (1, 2, 3 on the 2400, whose map has
        no register 4; 1..5 on the 3200) come back in one function-3 request, as the real unit
        answers a block read of registers it has (parameters between those asked for are read
        and dropped); a gap in the map starts a new request.
        Values and errors are those of :meth:`read`, parameter by parameter.
        """
        regs = sorted({self.register(name) for name in names}, key=lambda reg: reg.address)
        by_address = {reg.address: reg for reg in self.registers.values()}
        runs: list[list[Register]] = []
        for reg in regs:
            last = runs[-1][-1].address if runs else None
            between = range(last + 1, reg.address) if last is not None else range(0)
            if (
                last is not None
                and reg.address - runs[-1][0].address < MAX_BLOCK_REGISTERS
                and all(address in by_address for address in between)
            ):
                runs[-1].extend(by_address[address] for address in between)  # read, not returned
                runs[-1].append(reg)
            else:
                runs.append([reg])
        values: dict[str, float] = {}
        for run in runs:
            if len(run) == 1:
                values[run[0].name] = self.read(run[0].name)
                continue
            first = run[0]
            what = f"read {', '.join(reg.name for reg in run)} (registers {first.address}..{run[-1].address})"
            if self.float_registers:
                words = self._call(what, self.instrument.read_registers, first.float_address, 2 * len(run), 3)
                raw = struct.pack(f">{len(words)}H", *words)
                floats = struct.unpack(f">{len(run)}f", raw)
                values.update((reg.name, float(value)) for reg, value in zip(run, floats, strict=True))
            else:
                words = self._call(what, self.instrument.read_registers, first.address, len(run), 3)
                for reg, word in zip(run, words, strict=True):
                    assert reg.decimals is not None
                    values[reg.name] = (word - 0x10000 if word & 0x8000 else word) / 10**reg.decimals
        return {name: values[self.register(name).name] for name in names}

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

    def read_readings(self) -> dict[str, float]:
        """Process value, working set point (C) and output power (%) read together: two
        requests on the 2400 (registers 1..3 and 5), one on the 3200 (registers 1..5).

        Returns
        -------
        dict
            ``process_value_C``, ``working_setpoint_C``, ``output_power_pct``.
        """
        values = self.read_many(("process_value", "working_setpoint", "output_power"))
        return {
            "process_value_C": values["process_value"],
            "working_setpoint_C": values["working_setpoint"],
            "output_power_pct": values["output_power"],
        }

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
        """The status word: the 2400's fast status byte (register 74), the 3200's status word
        (register 75); bit 0 alarm 1, bit 4 manual (on the 3200 bit 13 ramping, in the simulator)."""
        return int(self.read("status")) & 0xFFFF

    def read_alarm_active(self) -> bool:
        """Alarm 1 (the instrument-side over-temperature limit) active, or latched since it
        tripped and not yet acknowledged: bit 0 of the status word."""
        return bool(self.read_status_word() & STATUS_ALARM1_BIT)

    def read_high_limit_C(self) -> float:
        """Alarm 1's threshold (register 13), C."""
        return self.read("alarm1_setpoint")

    def arm_high_limit_C(self, limit_C: float) -> float:
        """Write ``limit_C`` as alarm 1's threshold (register 13) and read it back.

        The controller then limits the oven by itself: above the threshold alarm 1 trips and,
        as the unit must be commissioned (alarm 1 an absolute high alarm, latching, its relay
        wired to cut the heater's contactor), the heater stays off until the alarm is
        acknowledged below the threshold. The alarm's type, latching and relay are
        configuration-level parameters this driver never writes.

        Returns
        -------
        float
            The threshold the controller reports (the limit to the display's resolution).

        Raises
        ------
        ValueError
            ``limit_C`` outside the alarm's range (nothing sent).
        InstrumentError
            The controller reports a different threshold after the write (a unit without
            alarm 1, or one that keeps its own): the limit is not armed.
        """
        reg = self.register("alarm1_setpoint")
        limit_C = self.validate("alarm1_setpoint", limit_C)
        self.write("alarm1_setpoint", limit_C)
        back = self.read("alarm1_setpoint")
        assert reg.decimals is not None
        resolution = 1e-3 * max(1.0, abs(limit_C)) if self.float_registers else 0.5 / 10**reg.decimals
        if not abs(back - limit_C) <= resolution:
            raise InstrumentError(
                self.name,
                f"alarm 1 set point reads {back} C after writing {limit_C} C: the instrument-side "
                "over-temperature limit is not armed",
                f"write alarm1_setpoint = {limit_C} (register {reg.address})",
            )
        return back

    def acknowledge_alarms(self) -> None:
        """Acknowledge all alarms (register 274): a latched alarm 1 resets if the process value
        is back below its threshold, and stays latched otherwise."""
        self.write("acknowledge_alarms", 1)

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


def open_driver(
    name: str, config: EurothermConfig, clock: Clock, endpoint: ByteEndpoint | None
) -> EurothermDriver:
    """The driver of a lab file's Eurotherm (not yet connected): ``endpoint`` is the in-process
    simulator (``resource = "sim"``), else None (open ``config.resource``)."""
    options: dict[str, Any] = {"address": config.address, "series": config.series, "name": name}
    if endpoint is not None:
        return EurothermDriver.in_process(endpoint, **options)
    return EurothermDriver.from_url(
        config.resource, baudrate=config.serial_baudrate, timeout_s=config.timeout, **options
    )
