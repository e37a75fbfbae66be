"""Simulated Eurotherm 2400/3200 temperature controller: a Modbus RTU slave on an oven model.

It parses the bytes a real unit parses:

* function codes 3 (read holding registers), 6 (write single register) and 16 (write
  multiple registers); any other function code gets exception 01 (illegal function);
* every frame carries a CRC-16/Modbus (polynomial 0xA001 reflected, initial 0xFFFF, low byte
  first); a frame with a bad CRC is ignored, with no reply, as a real unit does; so are frames
  for other slave addresses; address 0 (broadcast) writes without replying;
* exception 02 (illegal data address) for registers the unit does not have, exception 03
  (illegal data value) for values outside a parameter's range, for writes to read-only
  parameters, and for a bad register count;
* parameters are scaled integers matching the display's decimals (77.2 C held as 772, signed
  16-bit); the same parameters as IEEE-754 single floats live at ``0x8000 + 2 * register``
  (two registers, high word first).

Register map (subset used by relaxlab, from the 2400/3200 communications manuals):

====  ==========================  ======  ====================================================
reg   parameter                   access  notes
====  ==========================  ======  ====================================================
1     process value (PV)          r       C, display decimals
2     target set point            r/w     C, within the set-point limits
3     output power (2400)         r/w     %, 1 decimal; writable only in manual mode
3     manual output (3200)        r/w     %, 1 decimal
4     working output (3200)       r       %, 1 decimal
5     working set point           r       C (follows the rate limit)
6     proportional band XP        r/w     C, 1 decimal, 0.1..999.9
8     integral time Ti            r/w     s, 0 (off)..9999
9     derivative time Td          r/w     s, 0 (off)..9999
13    alarm 1 set point           r/w     C, display decimals, -199.9..999.9: the threshold of
                                          an absolute high alarm, latching, whose relay cuts
                                          the heater (see below)
26    comms set point (3200)      r/w     C; drives the loop while in remote
30    output high limit           r/w     %, 1 decimal
31    output low limit            r/w     %, 1 decimal
35    set-point rate limit        r/w     C/min, display decimals, 0 = off
74    fast status byte (2400)     r       bit 0 alarm 1, bit 4 manual (subset)
75    status word (3200)          r       bit 0 alarm 1, bit 4 manual, bit 13 set point
                                          ramping (subset)
273   auto/manual                 r/w     0 auto, 1 manual
274   acknowledge all alarms      r/w     write 1; reads 0
276   local/remote (3200)         r/w     0 local, 1 remote (comms set point)
====  ==========================  ======  ====================================================

Alarm 1 is modelled as a unit commissioned for instrument-side over-temperature protection:
configured as an absolute high alarm, latching, its relay wired to drop the heater's contactor
(:class:`~simulators.oven.OvenModel` ``alarm_high_C``): above the threshold the heater is cut,
by the model itself at the moment the process value crosses it, whether anyone polls or not,
until a write of 1 to register 274 acknowledges it with the process value back at or below the
threshold. Its threshold starts at the high set-point limit.

Whenever it is addressed (``receive`` or ``take_output``) the simulator first integrates its
oven up to ``clock.now()``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simulators.oven import OvenModel

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
ALARM_RANGE_C = (-199.9, 999.9)
FLOAT_BASE = 0x8000
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_FRAME_BYTES = 256

STATUS_ALARM1_BIT = 1 << 0
STATUS_MANUAL_BIT = 1 << 4
STATUS_RAMPING_BIT = 1 << 13


class ClockLike(Protocol):
    def now(self) -> float: ...


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/Modbus of ``data`` (transmitted low byte first).

    A frame followed by its own CRC has a CRC of 0.
    """
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC, low byte first."""
    return body + struct.pack("<H", crc16_modbus(body))


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Param:
    name: str
    decimals: int
    getter: Callable[[], float]
    setter: Callable[[float], None] | None = None
    minimum: float = -32768.0
    maximum: float = 32767.0


class SimulatedEurotherm:
    """Byte endpoint of a simulated Eurotherm controller driving an :class:`OvenModel`.

    Parameters
    ----------
    clock : object with ``now() -> float``
        Shared time source.
    oven : OvenModel, optional
        The oven it controls (a default oven on ``clock`` when omitted).
    address : int
        Modbus slave address (1..247).
    series : {"2400", "3200"}
        Register map variant.
    decimals : int
        Display decimals for temperatures (0, 1 or 2).
    setpoint_limits_C : (float, float)
        Set-point low/high limits configured in the unit.
    """

    def __init__(
        self,
        clock: ClockLike,
        oven: OvenModel | None = None,
        *,
        address: int = 1,
        series: str = "2400",
        decimals: int = 1,
        setpoint_limits_C: tuple[float, float] = (0.0, 400.0),
    ) -> None:
        if series not in ("2400", "3200"):
            raise ValueError(f"series must be '2400' or '3200', got {series!r}")
        if not 1 <= address <= 247:
            raise ValueError(f"slave address must be 1..247, got {address}")
        if decimals not in (0, 1, 2):
            raise ValueError(f"decimals must be 0, 1 or 2, got {decimals}")
        self.clock = clock
        self.oven = oven if oven is not None else OvenModel(clock)
        self.address = address
        self.series = series
        self.decimals = decimals
        self.setpoint_limits_C = setpoint_limits_C
        self.remote = False
        self.comms_setpoint_C = self.oven.settings.target_setpoint_C
        if self.oven.alarm_high_C is None:
            self.oven.set_alarm_high(setpoint_limits_C[1])
        self._local_setpoint_C = self.oven.settings.target_setpoint_C
        self._inbuf = bytearray()
        self._out = bytearray()
        #: Frames dropped for a bad CRC (a real unit counts nothing; handy in tests).
        self.bad_crc_frames = 0
        #: Frames answered or executed.
        self.frames = 0
        self._params = self._build_map()

    # ------------------------------------------------------------ endpoint
    def receive(self, data: bytes) -> None:
        """Bytes from the host (any chunking); complete frames are executed at once."""
        self.oven.advance()
        self._inbuf += data
        self._parse()

    def take_output(self) -> bytes:
        """Every reply byte produced since the last call."""
        self.oven.advance()
        out = bytes(self._out)
        self._out.clear()
        return out

    # ------------------------------------------------------------ registers
    def _build_map(self) -> dict[int, _Param]:
        oven = self.oven
        s = oven.settings
        d = self.decimals
        lo_sp, hi_sp = self.setpoint_limits_C
        params: dict[int, _Param] = {
            1: _Param("process value", d, lambda: oven.air_C),
            2: _Param(
                "target set point", d, lambda: self._local_setpoint_C, self._set_local_sp, lo_sp, hi_sp
            ),
            5: _Param("working set point", d, lambda: oven.working_setpoint_C),
            6: _Param(
                "proportional band",
                1,
                lambda: s.proportional_band_C,
                lambda v: oven.update_settings(proportional_band_C=v),
                0.1,
                999.9,
            ),
            8: _Param(
                "integral time",
                0,
                lambda: s.integral_time_s,
                lambda v: oven.update_settings(integral_time_s=v),
                0,
                9999,
            ),
            9: _Param(
                "derivative time",
                0,
                lambda: s.derivative_time_s,
                lambda v: oven.update_settings(derivative_time_s=v),
                0,
                9999,
            ),
            30: _Param("output high", 1, lambda: s.output_high_pct, self._set_out_high, 0, 100),
            31: _Param("output low", 1, lambda: s.output_low_pct, self._set_out_low, 0, 100),
            35: _Param("set-point rate limit", d, lambda: s.rate_limit_C_min, oven.set_rate_limit, 0, 999.9),
            13: _Param("alarm 1 set point", d, self._alarm_setpoint, oven.set_alarm_high, *ALARM_RANGE_C),
            273: _Param("auto/manual", 0, lambda: 1.0 if s.manual else 0.0, self._set_manual, 0, 1),
            274: _Param("acknowledge all alarms", 0, lambda: 0.0, self._acknowledge, 0, 1),
        }
        if self.series == "2400":
            params[3] = _Param("output power", 1, lambda: oven.output_pct, self._set_op_2400, 0, 100)
            params[74] = _Param("fast status byte", 0, self._status_word)
        else:
            params[3] = _Param(
                "manual output", 1, lambda: s.manual_output_pct, oven.set_manual_output, 0, 100
            )
            params[4] = _Param("working output", 1, lambda: oven.output_pct)
            params[26] = _Param(
                "comms set point", d, lambda: self.comms_setpoint_C, self._set_comms_sp, lo_sp, hi_sp
            )
            params[75] = _Param("status word", 0, self._status_word)
            params[276] = _Param(
                "local/remote", 0, lambda: 1.0 if self.remote else 0.0, self._set_remote, 0, 1
            )
        return params

    def _apply_setpoint(self) -> None:
        sp = self.comms_setpoint_C if self.remote else self._local_setpoint_C
        if sp != self.oven.settings.target_setpoint_C:
            self.oven.set_target(sp)

    def _set_local_sp(self, value: float) -> None:
        self._local_setpoint_C = value
        self._apply_setpoint()

    def _set_comms_sp(self, value: float) -> None:
        self.comms_setpoint_C = value
        self._apply_setpoint()

    def _set_remote(self, value: float) -> None:
        self.remote = bool(value)
        self._apply_setpoint()

    def _set_manual(self, value: float) -> None:
        self.oven.set_manual(bool(value))

    def _set_op_2400(self, value: float) -> None:
        if not self.oven.settings.manual:
            raise _Refused(ILLEGAL_DATA_VALUE)  # output is read-only in automatic mode
        self.oven.set_manual_output(value)

    def _set_out_high(self, value: float) -> None:
        if value < self.oven.settings.output_low_pct:
            raise _Refused(ILLEGAL_DATA_VALUE)
        self.oven.update_settings(output_high_pct=value)

    def _set_out_low(self, value: float) -> None:
        if value > self.oven.settings.output_high_pct:
            raise _Refused(ILLEGAL_DATA_VALUE)
        self.oven.update_settings(output_low_pct=value)

    def _alarm_setpoint(self) -> float:
        threshold = self.oven.alarm_high_C
        return ALARM_RANGE_C[1] if threshold is None else threshold

    def _acknowledge(self, value: float) -> None:
        if value:
            self.oven.acknowledge_alarm()

    def _status_word(self) -> float:
        word = 0
        if self.oven.alarm_latched:
            word |= STATUS_ALARM1_BIT
        if self.oven.settings.manual:
            word |= STATUS_MANUAL_BIT
        if self.series == "3200" and self.oven.working_setpoint_C != self.oven.settings.target_setpoint_C:
            word |= STATUS_RAMPING_BIT
        return float(word)

    def _lookup(self, register: int) -> _Param:
        param = self._params.get(register)
        if param is None:
            raise _Refused(ILLEGAL_DATA_ADDRESS)
        return param

    def _read_word(self, address: int) -> int:
        if address >= FLOAT_BASE:
            offset = address - FLOAT_BASE
            param = self._lookup(offset // 2)
            raw = struct.pack(">f", float(param.getter()))
            high, low = struct.unpack(">HH", raw)
            return high if offset % 2 == 0 else low
        param = self._lookup(address)
        scaled = round(param.getter() * 10**param.decimals)
        scaled = max(-32768, min(32767, scaled))  # the display saturates like the real unit
        return scaled & 0xFFFF

    def _check_value(self, param: _Param, value: float) -> None:
        if param.setter is None:
            raise _Refused(ILLEGAL_DATA_VALUE)
        if not param.minimum <= value <= param.maximum or value != value:
            raise _Refused(ILLEGAL_DATA_VALUE)

    def _decode_writes(self, start: int, words: list[int]) -> list[tuple[_Param, float]]:
        """Turn written words into (parameter, value) pairs, validating everything first."""
        writes: list[tuple[_Param, float]] = []
        if start >= FLOAT_BASE:
            offset = start - FLOAT_BASE
            if offset % 2 or len(words) % 2:
                raise _Refused(ILLEGAL_DATA_ADDRESS)
            for i in range(0, len(words), 2):
                param = self._lookup(offset // 2 + i // 2)
                (value,) = struct.unpack(">f", struct.pack(">HH", words[i], words[i + 1]))
                writes.append((param, value))
        else:
            for i, word in enumerate(words):
                param = self._lookup(start + i)
                signed = word - 0x10000 if word & 0x8000 else word
                writes.append((param, signed / 10**param.decimals))
        for param, value in writes:
            self._check_value(param, value)
        return writes

    # ------------------------------------------------------------ framing
    def _frame_length(self) -> int | None:
        buf = self._inbuf
        if len(buf) < 2:
            return None
        function = buf[1]
        if function in (3, 6):
            return 8
        if function == 16:
            return 9 + buf[6] if len(buf) >= 7 else None
        # Unknown function: the frame ends where a CRC matches.
        for n in range(4, len(buf) + 1):
            if crc16_modbus(bytes(buf[:n])) == 0:
                return n
        if len(buf) >= MAX_FRAME_BYTES:
            buf.clear()
        return None

    def _parse(self) -> None:
        while True:
            n = self._frame_length()
            if n is None or len(self._inbuf) < n:
                return
            frame = bytes(self._inbuf[:n])
            del self._inbuf[:n]
            if crc16_modbus(frame) != 0:
                # Ignored without reply; resynchronise as after a silent interval.
                self.bad_crc_frames += 1
                self._inbuf.clear()
                return
            if frame[0] not in (0, self.address):
                continue
            self._execute(frame)

    def _execute(self, frame: bytes) -> None:
        slave, function = frame[0], frame[1]
        self.frames += 1
        try:
            reply = self._dispatch(function, frame[2:-2])
        except _Refused as refused:
            reply = bytes([function | 0x80, refused.code])
        if slave != 0:
            self._out += with_crc(bytes([slave]) + reply)

    def _dispatch(self, function: int, pdu: bytes) -> bytes:
        if function == 3:
            start, count = struct.unpack(">HH", pdu)
            if not 1 <= count <= MAX_READ_REGISTERS:
                raise _Refused(ILLEGAL_DATA_VALUE)
            words = [self._read_word(start + i) for i in range(count)]
            return bytes([3, 2 * count]) + struct.pack(f">{count}H", *words)
        if function == 6:
            start, word = struct.unpack(">HH", pdu)
            if start >= FLOAT_BASE:
                raise _Refused(ILLEGAL_DATA_ADDRESS)  # half a float cannot be written
            for param, value in self._decode_writes(start, [word]):
                assert param.setter is not None
                param.setter(value)
            return bytes([6]) + pdu
        if function == 16:
            start, count, nbytes = struct.unpack(">HHB", pdu[:5])
            data = pdu[5:]
            if not 1 <= count <= MAX_WRITE_REGISTERS or nbytes != 2 * count or len(data) != nbytes:
                raise _Refused(ILLEGAL_DATA_VALUE)
            words = list(struct.unpack(f">{count}H", data))
            for param, value in self._decode_writes(start, words):
                assert param.setter is not None
                param.setter(value)
            return bytes([16]) + pdu[:4]
        raise _Refused(ILLEGAL_FUNCTION)
