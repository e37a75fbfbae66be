"""One small transport interface for every instrument driver.

A transport moves bytes; drivers own the protocol. Implementations:

* :class:`VisaTransport` - a pyvisa resource (GPIB, USB, TCPIP INSTR/SOCKET, ASRL) through
  pyvisa or pyvisa-py.
* :class:`SerialTransport` - a pyserial URL (``COM3``, ``/dev/ttyUSB0``, ``socket://host:port``,
  ``rfc2217://host:port``).
* :class:`InProcessTransport` - straight to a simulated instrument's byte interface in the
  same process: deterministic, no sockets, no waiting.

Every failure is raised as :class:`InstrumentTimeout` or :class:`InstrumentError` naming the
instrument and the command that was being answered.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class InstrumentError(RuntimeError):
    """An instrument refused, garbled or could not be reached. The message names both."""

    def __init__(self, instrument: str, message: str, command: str | None = None) -> None:
        self.instrument = instrument
        self.command = command
        where = f" (command {command!r})" if command is not None else ""
        super().__init__(f"{instrument}: {message}{where}")


class InstrumentTimeout(InstrumentError):
    """No (complete) reply arrived in time."""


@runtime_checkable
class ByteEndpoint(Protocol):
    """What a simulated instrument offers an in-process transport.

    ``receive`` takes bytes the host wrote; ``take_output`` returns every byte the instrument
    has produced since the last call (catching its simulation up to the clock first).
    """

    def receive(self, data: bytes) -> None: ...

    def take_output(self) -> bytes: ...


class Transport(Protocol):
    """Byte pipe with line helpers. ``name`` is used in every error message."""

    name: str

    def write(self, data: bytes) -> None: ...

    def read_until(self, terminator: bytes, command: str | None = None) -> bytes:
        """Bytes up to and including ``terminator``; raise InstrumentTimeout otherwise."""
        ...

    def read_exactly(self, size: int, command: str | None = None) -> bytes: ...

    def read_available(self) -> bytes:
        """Whatever has arrived, possibly nothing; never blocks for long."""
        ...

    def write_line(self, line: str, termination: str = "\n") -> None: ...

    def read_line(self, termination: str = "\n", command: str | None = None) -> str: ...

    def close(self) -> None: ...


class _LineHelpers:
    name: str

    def read_until(self, terminator: bytes, command: str | None = None) -> bytes:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def write_line(self, line: str, termination: str = "\n") -> None:
        self.write((line + termination).encode("ascii"))

    def read_line(self, termination: str = "\n", command: str | None = None) -> str:
        raw = self.read_until(termination.encode("ascii"), command)
        try:
            return raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InstrumentError(self.name, f"garbled reply {raw!r}", command) from exc

    def query(self, line: str, termination: str = "\n") -> str:
        self.write_line(line, termination)
        return self.read_line(termination, command=line)


class InProcessTransport(_LineHelpers):
    """Direct connection to a simulated instrument in this process.

    Reads never wait: a reply that is not there now will never come without time moving,
    so a missing reply raises :class:`InstrumentTimeout` at once.
    """

    def __init__(self, endpoint: ByteEndpoint, name: str = "simulated instrument") -> None:
        self.endpoint = endpoint
        self.name = name
        self._buffer = bytearray()
        self._closed = False

    def _fill(self) -> None:
        if self._closed:
            raise InstrumentError(self.name, "connection is closed")
        self._buffer += self.endpoint.take_output()

    def write(self, data: bytes) -> None:
        if self._closed:
            raise InstrumentError(self.name, "connection is closed")
        self.endpoint.receive(data)

    def read_until(self, terminator: bytes, command: str | None = None) -> bytes:
        index = self._buffer.find(terminator)
        if index < 0:
            self._fill()
            index = self._buffer.find(terminator)
        if index < 0:
            partial = bytes(self._buffer)
            what = f"incomplete reply {partial!r}" if partial else "no reply"
            raise InstrumentTimeout(self.name, what, command)
        end = index + len(terminator)
        out = bytes(self._buffer[:end])
        del self._buffer[:end]
        return out

    def read_exactly(self, size: int, command: str | None = None) -> bytes:
        if len(self._buffer) < size:
            self._fill()
        if len(self._buffer) < size:
            raise InstrumentTimeout(self.name, f"expected {size} bytes, got {len(self._buffer)}", command)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def read_available(self) -> bytes:
        self._fill()
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    def close(self) -> None:
        self._closed = True


class SerialTransport(_LineHelpers):
    """A pyserial port or URL (``socket://``, ``rfc2217://``, ``COM3``, ``/dev/ttyUSB0``)."""

    def __init__(
        self,
        url: str,
        baudrate: int = 115200,
        timeout_s: float = 2.0,
        name: str | None = None,
        **serial_kwargs: object,
    ) -> None:
        import serial

        self.name = name or url
        self.url = url
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s, **serial_kwargs)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise InstrumentError(self.name, f"cannot open {url!r}: {exc}") from exc

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            command = data.decode("ascii", errors="replace").strip()
            raise InstrumentError(self.name, f"cannot reach the instrument: {exc}", command) from exc

    def read_until(self, terminator: bytes, command: str | None = None) -> bytes:
        import serial

        try:
            data = self.port.read_until(terminator)
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(self.name, f"read failed: {exc}", command) from exc
        if not data.endswith(terminator):
            what = f"incomplete reply {data!r}" if data else "no reply"
            raise InstrumentTimeout(self.name, f"{what} within timeout", command)
        return bytes(data)

    def read_exactly(self, size: int, command: str | None = None) -> bytes:
        data = self.port.read(size)
        if len(data) < size:
            raise InstrumentTimeout(self.name, f"expected {size} bytes, got {len(data)}", command)
        return bytes(data)

    def read_available(self) -> bytes:
        # Over socket:// pyserial reports in_waiting as 0 or 1, so read with a zero timeout:
        # that returns everything that has arrived, without waiting for more.
        if self.port.in_waiting == 0:
            return b""
        timeout = self.port.timeout
        self.port.timeout = 0
        try:
            return bytes(self.port.read(1 << 20))
        finally:
            self.port.timeout = timeout

    def close(self) -> None:
        self.port.close()


class VisaTransport(_LineHelpers):
    """A pyvisa resource; ``backend='@py'`` selects pyvisa-py (no vendor VISA needed)."""

    def __init__(
        self,
        resource: str,
        backend: str = "@py",
        timeout_s: float = 2.0,
        termination: str = "\n",
        name: str | None = None,
    ) -> None:
        import pyvisa

        self.name = name or resource
        self.resource_name = resource
        self.inst: Any = None
        try:
            self.rm = pyvisa.ResourceManager(backend)
            self.inst = self.rm.open_resource(resource)
        except (pyvisa.Error, ValueError, OSError) as exc:
            raise InstrumentError(self.name, f"cannot open VISA resource {resource!r}: {exc}") from exc
        self.inst.timeout = int(timeout_s * 1000)
        self.inst.read_termination = termination
        self.inst.write_termination = termination
        self._termination = termination

    def write(self, data: bytes) -> None:
        import pyvisa

        try:
            self.inst.write_raw(data)
        except (pyvisa.Error, OSError) as exc:
            command = data.decode("ascii", errors="replace").strip()
            raise InstrumentError(self.name, f"cannot reach the instrument: {exc}", command) from exc

    def read_until(self, terminator: bytes, command: str | None = None) -> bytes:
        import pyvisa

        try:
            text = self.inst.read()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(self.name, "no reply within timeout", command) from exc
            raise InstrumentError(self.name, f"read failed: {exc}", command) from exc
        except (UnicodeDecodeError, OSError) as exc:
            raise InstrumentError(self.name, f"garbled reply: {exc}", command) from exc
        return text.encode("ascii", errors="replace") + terminator

    def read_exactly(self, size: int, command: str | None = None) -> bytes:
        return bytes(self.inst.read_bytes(size))

    def read_available(self) -> bytes:
        """Whatever has arrived: lines read with an immediate timeout until none is left."""
        import pyvisa

        timeout = self.inst.timeout
        out = bytearray()
        try:
            self.inst.timeout = 0  # VI_TMO_IMMEDIATE: what is there, without waiting
            while True:
                try:
                    out += self.inst.read_raw()
                except pyvisa.errors.VisaIOError:
                    return bytes(out)  # nothing more (a timeout), or a failure the next read meets
        except (pyvisa.Error, OSError):
            return bytes(out)
        finally:
            self.inst.timeout = timeout

    def close(self) -> None:
        try:
            self.inst.close()
        finally:
            self.rm.close()
