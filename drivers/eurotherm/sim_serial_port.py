"""A serial-port-like adapter over a simulated instrument's byte endpoint (no sockets, no waiting).

Used by :meth:`drivers.eurotherm.EurothermDriver.in_process` so that minimalmodbus speaks Modbus
RTU to a simulated controller in this process, exactly the bytes it sends down a real port.
"""

from __future__ import annotations

import minimalmodbus
import serial

from drivers.transport import ByteEndpoint


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
