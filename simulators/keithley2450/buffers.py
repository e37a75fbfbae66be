"""Reading buffers of the simulated Keithley 2450: readings into ``defbuffer1``/``2`` and user
buffers, their elements (``READ``, ``REL``, ``SOUR``, ``UNIT``...), the data formats, and the
``READ?``/``MEAS?``/``FETCh?``/``TRACe:*`` handlers."""

from __future__ import annotations

import math
import struct
import time as _time
from typing import Any

from simulators.keithley2450.model import (
    BUFFER_ELEMENTS,
    MAX_BUFFER_POINTS,
    NUMERIC_ELEMENTS,
    OVERFLOW,
    SYMBOLS,
    UNITS,
    _bound,
    _Buffer,
    _e,
    _Reading,
)
from simulators.keithley2450.physics import _Physics
from simulators.scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    PARAMETER_NOT_ALLOWED,
    SETTINGS_CONFLICT,
    Call,
    ScpiError,
    is_string,
    parse_choice,
    parse_number,
    unquote,
)


class _Buffers(_Physics):
    """Readings, buffers and data formats."""

    def _take_readings(self, buffer_name: str, count: int | None = None, at_s: float | None = None) -> _Reading | None:
        """``count`` readings (SENSe:COUNt by default) into a buffer, stamped ``at_s`` (now)."""
        buffer = self._buffer(buffer_name)
        reading = None
        for _ in range(self.sense_count if count is None else count):
            status_bits = (8 if self._in_limit() else 0) | (
                16 if self.sense[self.sense_function].four_wire else 0
            )
            reading = _Reading(
                time_s=self.clock.now() if at_s is None else at_s,
                value=self._measure(self.sense_function),
                function=self.sense_function,
                source=self._source_value(),
                source_function=self.source_function,
                status=0,
                source_status=status_bits
                | (2 if self.source[self.source_function].readback else 0)
                | (32 if self.output_on else 0),
            )
            buffer.add(reading)
        return reading

    def _element(self, element: str, r: _Reading, buffer: _Buffer) -> str | float:
        if element == "READ":
            return r.value
        if element == "SOUR":
            return r.source
        if element == "REL":
            return r.time_s - (buffer.first_time_s if buffer.first_time_s is not None else r.time_s)
        if element == "SEC":
            return float(math.floor(r.time_s))
        if element == "FRAC":
            return r.time_s - math.floor(r.time_s)
        if element == "STAT":
            return float(r.status)
        if element == "SOURSTAT":
            return float(r.source_status)
        if element == "UNIT":
            return UNITS[r.function]
        if element == "SOURUNIT":
            return UNITS[r.source_function]
        if element == "FORM":
            return f"{r.value:+.6g} {SYMBOLS[r.function]}"
        if element == "SOURFORM":
            return f"{r.source:+.6g} {SYMBOLS[r.source_function]}"
        stamp = _time.gmtime(math.floor(r.time_s))
        frac = f"{r.time_s - math.floor(r.time_s):.9f}"[1:]
        if element == "DATE":
            return _time.strftime("%m/%d/%Y", stamp)
        if element == "TIME":
            return _time.strftime("%H:%M:%S", stamp) + frac
        return _time.strftime("%m/%d/%Y %H:%M:%S", stamp) + frac  # TST

    def _elements(self, params: list[str]) -> list[str]:
        words = [unquote(p).strip() for p in params]
        # elements may also come as one quoted list: "READ,SOUR"
        elements = [w.strip().upper() for word in words for w in word.split(",") if w.strip()]
        if len(elements) > 14:
            raise ScpiError(*PARAMETER_NOT_ALLOWED)
        out = []
        for element in elements or ["READ"]:
            if element not in BUFFER_ELEMENTS:
                raise ScpiError(*ILLEGAL_PARAMETER)
            canonical = BUFFER_ELEMENTS[element]
            if self.data_format != "ASC" and canonical not in NUMERIC_ELEMENTS:
                raise ScpiError(*SETTINGS_CONFLICT)
            out.append(canonical)
        return out

    def _format(self, values: list[str | float]) -> str | bytes:
        if self.data_format == "ASC":
            digits = self.ascii_precision
            number = "{:.9e}" if digits == 0 else f"{{:.{digits - 1}E}}"  # 0: automatic
            return ",".join(v if isinstance(v, str) else number.format(v) for v in values)
        order = ">" if self.byte_order == "NORM" else "<"
        code = "d" if self.data_format == "REAL" else "f"
        return b"#0" + struct.pack(f"{order}{len(values)}{code}", *[float(v) for v in values])

    def _report(self, readings: list[_Reading], buffer: _Buffer, params: list[str]) -> str | bytes:
        elements = self._elements(params)
        return self._format([self._element(e, r, buffer) for r in readings for e in elements])

    def _buffer(self, name: str) -> _Buffer:
        try:
            return self.buffers[name]
        except KeyError:
            raise ScpiError(*ILLEGAL_PARAMETER) from None

    @staticmethod
    def _buffer_name(params: list[str], index: int = 0) -> str:
        if len(params) <= index:
            return "defbuffer1"
        if not is_string(params[index]) and params[index].lower() not in ("defbuffer1", "defbuffer2"):
            raise ScpiError(-104, "Data type error")
        return unquote(params[index])

    def _cmd_read(self, c: Call) -> str | bytes:
        name = self._buffer_name(c.params)
        self._elements(c.params[1:])  # refuse bad elements before measuring
        reading = self._take_readings(name)
        assert reading is not None
        return self._report([reading], self.buffers[name], c.params[1:])

    def _cmd_measure_function(self, c: Call) -> str | bytes:
        self.sense_function = c.function
        return self._cmd_read(c)

    def _cmd_fetch(self, c: Call) -> str | bytes:
        name = self._buffer_name(c.params)
        buffer = self._buffer(name)
        if not buffer.readings:
            raise ScpiError(-230, "Data corrupt or stale")
        return self._report([buffer.readings[-1]], buffer, c.params[1:])

    def _cmd_format(self, c: Call) -> None:
        self.data_format = parse_choice(
            c.params, {"ASC": "ASC", "ASCII": "ASC", "REAL": "REAL", "SRE": "SRE", "SREAL": "SRE"}
        )

    def _cmd_border(self, c: Call) -> None:
        self.byte_order = parse_choice(c.params, {"NORM": "NORM", "NORMAL": "NORM", "SWAP": "SWAP",
                                                  "SWAPPED": "SWAP"})  # fmt: skip

    def _cmd_make(self, c: Call) -> None:
        if len(c.params) < 2:
            raise ScpiError(*MISSING_PARAMETER)
        if not is_string(c.params[0]):
            raise ScpiError(-104, "Data type error")
        name = unquote(c.params[0])
        if name in self.buffers or not name or len(name) > 31:
            raise ScpiError(*ILLEGAL_PARAMETER)
        size = int(parse_number(c.params, 1, MAX_BUFFER_POINTS, index=1))
        if len(c.params) > 2:
            parse_choice(c.params, {"STAN": "STAN", "STANDARD": "STAN", "COMP": "COMP", "COMPACT": "COMP",
                                    "FULL": "FULL"}, index=2)  # fmt: skip
        if len(self.buffers) >= 16:
            raise ScpiError(*SETTINGS_CONFLICT)
        self.buffers[name] = _Buffer(size)

    def _cmd_delete(self, c: Call) -> None:
        name = self._buffer_name(c.params)
        if name in ("defbuffer1", "defbuffer2") or not c.params:
            raise ScpiError(*ILLEGAL_PARAMETER)
        self._buffer(name)
        del self.buffers[name]

    def _cmd_clear(self, c: Call) -> None:
        self._buffer(self._buffer_name(c.params)).clear()

    def _cmd_points(self, c: Call) -> None:
        size = int(parse_number(c.params, 1, MAX_BUFFER_POINTS, 100_000))
        buffer = self._buffer(self._buffer_name(c.params, 1))
        buffer.capacity = size
        buffer.clear()

    def _cmd_trace_data(self, c: Call) -> str | bytes:
        if len(c.params) < 2:
            raise ScpiError(*MISSING_PARAMETER)
        buffer = self._buffer(self._buffer_name(c.params, 2))
        n = len(buffer.readings)
        start = int(parse_number(c.params, 1, max(n, 1)))
        end = int(parse_number(c.params, 1, max(n, 1), index=1))
        if n == 0 or end < start:
            raise ScpiError(*DATA_OUT_OF_RANGE)
        readings = [buffer.readings[i] for i in range(start - 1, end)]
        return self._report(readings, buffer, c.params[3:])

    def _cmd_trace_trigger(self, c: Call) -> None:
        self._take_readings(self._buffer_name(c.params), count=1)

    def _cmd_fill_mode(self, c: Call) -> None:
        mode = parse_choice(c.params, {"CONT": "CONT", "CONTINUOUS": "CONT", "ONCE": "ONCE"})
        self._buffer(self._buffer_name(c.params, 1)).fill_once = mode == "ONCE"

    def _statistic(self, fn: Any) -> Any:
        def handler(c: Call) -> str:
            values = [r.value for r in self._buffer(self._buffer_name(c.params)).readings]
            return _e(fn(values)) if values else _e(OVERFLOW)

        return handler

    def _cmd_ascii_precision(self, c: Call) -> None:
        self.ascii_precision = int(parse_number(c.params, 0, 16, 0))

    def _query_ascii_precision(self, c: Call) -> str:
        return str(int(_bound(c.params, 0, 16, 0)) if c.params else self.ascii_precision)
