"""The Eurotherm 2400/3200 parameter table, as the communications manuals list it.

Parameters are scaled integers matching the display's decimals (77.2 C is held as 772, signed
16-bit), or full-resolution IEEE floats at ``0x8000 + 2 * register`` (two registers, high word
first). :class:`~drivers.eurotherm.EurothermDriver` checks every write against this table.

Alarms (2000-series communications handbook HA026230, as vendors' and beamlines' drivers use it,
and the 3200 handbook): register 13 is the alarm 1 set point (its threshold, in display units),
274 acknowledges all alarms, and bit 0 of the status word is alarm 1's state, bit 4 manual mode:
on the 2400 the fast status byte at register 74 (bits 0..3 alarms 1..4), on the 3200 the status
word at register 75. The alarm's *type*
(absolute high), its latching and which relay it drives are configuration-level parameters
(the 2400 only writes them in configuration mode, register 199 = 2, which stops control), so
the driver never writes them: they are the unit's commissioning, see
:meth:`~drivers.eurotherm.EurothermDriver.arm_high_limit_C`.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT_BASE = 0x8000
AUTO, MANUAL = 0, 1
LOCAL, REMOTE = 0, 1
#: Status word (register 75) bits: alarm 1 active, manual mode.
STATUS_ALARM1_BIT = 1 << 0
STATUS_MANUAL_BIT = 1 << 4
#: Display range of a 4-digit, one-decimal display: bounds of an alarm threshold.
ALARM_RANGE_C = (-199.9, 999.9)


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
        Register("alarm1_setpoint", 13, "C", True, None, *ALARM_RANGE_C, "alarm 1 threshold"),
        Register("integral_time", 8, "s", True, 0, 0, 9999, "PID integral time Ti (0 = off)"),
        Register("derivative_time", 9, "s", True, 0, 0, 9999, "PID derivative time Td (0 = off)"),
        Register("output_high", 30, "%", True, 1, 0.0, 100.0, "output high limit"),
        Register("output_low", 31, "%", True, 1, 0.0, 100.0, "output low limit"),
        Register("setpoint_rate_limit", 35, "C/min", True, None, 0.0, 999.9, "0 = off"),
        Register("auto_manual", 273, "", True, 0, AUTO, MANUAL, "0 auto, 1 manual"),
        Register("acknowledge_alarms", 274, "", True, 0, 0, 1, "1 acknowledges all alarms"),
    ]


#: Parameter tables per series, keyed by name.
REGISTERS: dict[str, dict[str, Register]] = {
    "2400": {
        r.name: r
        for r in _common()
        + [
            Register("output_power", 3, "%", True, 1, 0.0, 100.0, "output (write in manual)"),
            Register("status", 74, "", False, 0, description="fast status (bit 0 alarm 1, bit 4 manual)"),
        ]
    },
    "3200": {
        r.name: r
        for r in _common()
        + [
            Register("manual_output", 3, "%", True, 1, 0.0, 100.0, "output used in manual"),
            Register("output_power", 4, "%", False, 1, description="working output"),
            Register("comms_setpoint", 26, "C", True, None, None, None, "set point in remote"),
            Register("status", 75, "", False, 0, description="status word (bit 0 alarm 1, bit 4 manual)"),
            Register("local_remote", 276, "", True, 0, LOCAL, REMOTE, "0 local, 1 remote"),
        ]
    },
}
