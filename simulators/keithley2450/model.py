"""The simulated Keithley 2450's data: ranges and limits from the reference manual, the
per-function source and sense settings, readings and reading buffers, and :class:`_State`,
the instrument's settings (``*RST`` values) shared by the simulator's parts."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulators.scpi import (
    ILLEGAL_PARAMETER,
    ScpiError,
    ScpiParser,
    parse_number,
)

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04567890,1.7.12b"
CURRENT_RANGES_A = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
VOLTAGE_RANGES_V = (20e-3, 200e-3, 2.0, 20.0, 200.0)
RESISTANCE_RANGES_OHM = (20.0, 200.0, 2e3, 20e3, 200e3, 2e6, 20e6, 200e6)
RANGES = {"CURR": CURRENT_RANGES_A, "VOLT": VOLTAGE_RANGES_V, "RES": RESISTANCE_RANGES_OHM}
MAX_CURRENT_A = 1.05
MAX_VOLTAGE_V = 210.0
ERROR_QUEUE_SIZE = 32
MAX_MESSAGE_BYTES = 65536
"""Longest program message accepted (bytes, terminator excluded); longer ones are refused
with -223 "Too much data" and discarded up to their terminator."""
AUTORANGE_LIMITS = {"CURR": (1e-8, 1.0), "VOLT": (0.02, 200.0), "RES": (2.0, 2e8)}
"""RANGe:AUTO:LLIMit values each measure function accepts; ULIMit is settable for RES only
(20 ohm-200 Mohm) and a query for CURR and VOLT."""
OVERFLOW = 9.9e37  # what the 2450 returns for an overrange reading
MAX_BUFFER_POINTS = 11_000_020
BUFFER_ELEMENTS = {
    "READ": "READ", "READING": "READ", "REL": "REL", "RELATIVE": "REL", "SEC": "SEC",
    "SECONDS": "SEC", "FRAC": "FRAC", "FRACTIONAL": "FRAC", "DATE": "DATE", "TIME": "TIME",
    "TST": "TST", "TSTAMP": "TST", "UNIT": "UNIT", "SOUR": "SOUR", "SOURCE": "SOUR",
    "SOURUNIT": "SOURUNIT", "SOURSTAT": "SOURSTAT", "SOURSTATUS": "SOURSTAT", "STAT": "STAT",
    "STATUS": "STAT", "FORM": "FORM", "FORMATTED": "FORM", "SOURFORM": "SOURFORM",
    "SOURFORMATTED": "SOURFORM",
}  # fmt: skip
NUMERIC_ELEMENTS = {"READ", "REL", "SEC", "FRAC", "SOUR", "STAT", "SOURSTAT"}
UNITS = {"CURR": "Amp DC", "VOLT": "Volt DC", "RES": "Ohm"}
SYMBOLS = {"CURR": "A", "VOLT": "V", "RES": "Ohm"}
SOURCE_FUNCTIONS = {"CURR": "CURRent", "VOLT": "VOLTage"}
SENSE_FUNCTIONS = {"CURR": "CURRent", "VOLT": "VOLTage", "RES": "RESistance"}
OFF_MODES = {"HIMP": "HIMP", "HIMPEDANCE": "HIMP", "NORM": "NORM", "NORMAL": "NORM", "ZERO": "ZERO",
             "GUAR": "GUAR", "GUARD": "GUAR"}  # fmt: skip
FILTER_TYPES = {"REP": "REP", "REPEAT": "REP", "MOV": "MOV", "MOVING": "MOV"}
OVP_LEVELS = ("NONE", "PROT2", "PROT5", "PROT10", "PROT20", "PROT40", "PROT60", "PROT80", "PROT100",
              "PROT120", "PROT140", "PROT160", "PROT180")  # fmt: skip
# status byte bits (IEEE 488.2 and the 2450's status model)
MSB, EAV, QSB, MAV, ESB, MSS, OSB = 1, 4, 8, 16, 32, 64, 128
# standard event status register bits
OPC, QYE, DDE, EXE, CME, PON = 1, 4, 8, 16, 32, 128


class ClockLike(Protocol):
    def now(self) -> float: ...


def _range_for(value: float, ranges: tuple[float, ...]) -> float:
    """Smallest range whose full scale (with the 5 % over-range) holds ``|value|``."""
    for rng in ranges:
        if abs(value) <= rng * 1.05:
            return rng
    return ranges[-1]


def _current_range_for(level_A: float) -> float:
    return _range_for(level_A, CURRENT_RANGES_A)


def _e(value: float) -> str:
    return f"{value:.6E}"


@dataclass
class _Sense:
    """Per-function measurement settings."""

    range: float
    auto: bool = True
    nplc: float = 1.0
    average: bool = False
    average_count: int = 10
    average_type: str = "REP"
    four_wire: bool = False
    autozero: bool = True
    offset_compensated: bool = False  # RES only
    digits: int = 5  # front-panel display resolution (DISPlay:<function>:DIGits)
    low: float = 0.0  # autorange lower limit (RANGe:AUTO:LLIMit)
    high: float = math.inf  # autorange upper limit (RANGe:AUTO:ULIMit)


@dataclass
class _Source:
    """Per-function source settings."""

    level: float = 0.0
    range: float = 0.0
    auto: bool = True
    delay_s: float = 0.0
    delay_auto: bool = True
    readback: bool = True
    off_mode: str = "NORM"


@dataclass(frozen=True, slots=True)
class _Reading:
    time_s: float
    value: float
    function: str
    source: float
    source_function: str
    status: int
    source_status: int


@dataclass
class _Buffer:
    capacity: int
    fill_once: bool = False
    readings: deque[_Reading] = field(default_factory=deque)
    first_time_s: float | None = None

    def add(self, reading: _Reading) -> None:
        if len(self.readings) >= self.capacity:
            if self.fill_once:
                return
            self.readings.popleft()
        if self.first_time_s is None:
            self.first_time_s = reading.time_s
        self.readings.append(reading)

    def clear(self) -> None:
        self.readings.clear()
        self.first_time_s = None


def _bound(params: list[str], low: float, high: float, default: float) -> float:
    """A query's MIN/MAX/DEF parameter: the bound it names."""
    if params[0].upper() not in ("MIN", "MINIMUM", "MAX", "MAXIMUM", "DEF", "DEFAULT"):
        raise ScpiError(*ILLEGAL_PARAMETER)
    return parse_number(params, low, high, default)


def _b(flag: bool) -> str:
    return "1" if flag else "0"


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _stddev(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def sweep_list_name(function: str) -> str:
    """The source configuration list a linear sweep of ``function`` ("VOLT", "CURR") makes."""
    return "VoltLinearSweepList" if function == "VOLT" else "CurrLinearSweepList"


@dataclass(frozen=True)
class _Template:
    """A loaded trigger-model template: a SimpleLoop's count, or a sweep's source levels."""

    buffer: str
    count: int = 1
    delay_s: float = 0.0
    function: str = ""
    levels: tuple[float, ...] = ()
    fail_abort: bool = True


class _State:
    """The instrument's settings and status (what ``*RST`` and power-on set)."""

    cell: Any
    idn: str
    clock: ClockLike
    _t: float
    errors: list[tuple[int, str]]
    esr: int
    ese: int
    sre: int
    status_enable: dict[str, int]
    language: str
    bus_triggers: int
    beeps: deque[tuple[float, float]]
    _last_drive: tuple[str, float, float] | None
    _connection: Any
    _parser: ScpiParser

    def _reset_state(self) -> None:
        self.source_function = "VOLT"
        self.source = {"CURR": _Source(range=1e-4), "VOLT": _Source(range=20.0)}
        self.vlim_V = 21.0
        self.ilim_A = 105e-6
        self.ovp = "NONE"
        self.output_on = False
        self.sense_function = "CURR"
        self.sense = {
            "CURR": _Sense(1e-4, low=CURRENT_RANGES_A[0], high=CURRENT_RANGES_A[-1]),
            "VOLT": _Sense(20.0, low=VOLTAGE_RANGES_V[0], high=VOLTAGE_RANGES_V[-1]),
            "RES": _Sense(200e3, low=RESISTANCE_RANGES_OHM[0], high=RESISTANCE_RANGES_OHM[-1]),
        }
        self.sense_count = 1
        self.terminals = "FRON"
        self.data_format = "ASC"
        self.byte_order = "SWAP"
        self.ascii_precision = 0  # FORMat:ASCii:PRECision: 0 = automatic
        self.trigger_model: _Template | None = None  # a loaded SOURce:SWEep
        #: Source configuration lists by name: each index's (source function, level). A sweep
        #: command makes "VoltLinearSweepList" (or "CurrLinearSweepList") of its levels.
        self.config_lists: dict[str, list[tuple[str, float]]] = {}
        self.trigger_list_index: dict[str, int] = {}  # the index each list's blocks recalled last
        self.blocks: dict[int, Any] = {}  # the trigger model's blocks (TRIGger:BLOCk, TRIGger:LOAD)
        self.trigger_state, self.trigger_pc = "IDLE", 1
        self.trigger_counts: dict[int, int] = {}
        self.trigger_values: dict[int, tuple[float | None, float | None]] = {}  # a measure block's last two
        self.trigger_cursor_s = 0.0  # the trigger model's instant
        self.trigger_wake_s: float | None = None  # when the delay it waits in ends
        self.trigger_end_s: float | None = None  # a duration loop's end
        self.trigger_capped_at_s: float | None = None  # an instant a loop with no delay filled
        self.buffers = {"defbuffer1": _Buffer(100_000), "defbuffer2": _Buffer(10)}
        self._tripped = False
        self._clamp_V = 0.0
        self._voltage_limited = True
        self._last_drive = None
        self._hold_sign = 1.0
        self._hold_current_A = 0.0

    # the source levels keep their historical attribute names
    @property
    def current_A(self) -> float:
        return self.source["CURR"].level

    @property
    def voltage_V(self) -> float:
        return self.source["VOLT"].level

    @property
    def off_mode(self) -> str:
        return self.source[self.source_function].off_mode
