"""Protocol tests from ``(sent, reply)`` pairs, for every driver (lines, bytes, Modbus frames).

In the spirit of pymeasure's ``pymeasure.test.expected_protocol``: the driver is built on a
scripted byte endpoint (the ``receive``/``take_output`` interface every simulator offers, so
any driver that can talk to a simulator in-process can be tested this way) and must send
exactly the scripted bytes in order; each reply is queued the moment its request is complete.

::

    from tests.protocol import expected_protocol

    def keithley(io):
        return Keithley2450(InProcessTransport(io, name="k"), "k")

    with expected_protocol(keithley, [("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,1,1")]) as k:
        assert "2450" in k.identity

A pair is ``(sent, reply)``:

* ``str`` - one line; ``termination`` (``"\\n"`` by default) is appended. A reply may hold
  several lines (``"a\\nb"`` gives ``a\\nb\\n``).
* ``bytes`` - exact bytes, nothing appended (binary protocols; see :func:`modbus_frame`).
* ``reply=None`` - the instrument answers nothing (a setting, or a test of a timeout).
* ``sent=None`` - the instrument sends ``reply`` unprompted, once the previous request is
  complete (data streamed by a running script).

The driver may write a request in one call or in pieces; the first byte that differs from
the script fails the test at once, showing both. Leaving the block asserts that every pair
was sent and every reply was read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
Pair = tuple["str | bytes | None", "str | bytes | None"]

__all__ = ["ScriptedEndpoint", "crc16_modbus", "expected_protocol", "modbus_frame", "run_script"]


def _as_bytes(item: str | bytes | None, termination: str) -> bytes:
    if item is None:
        return b""
    if isinstance(item, bytes):
        return item
    return (item + termination).encode("ascii")


class ScriptedEndpoint:
    """A byte endpoint that checks the host's bytes against ``(sent, reply)`` pairs."""

    def __init__(self, pairs: Sequence[Pair], termination: str = "\n") -> None:
        self.pairs: list[tuple[bytes, bytes]] = []
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TypeError(f"each pair must be (sent, reply), got {pair!r}")
            sent, reply = pair
            self.pairs.append((_as_bytes(sent, termination), _as_bytes(reply, termination)))
        self.received = bytearray()  # everything the host sent, for failure messages
        self._pending = bytearray()  # bytes of the current request received so far
        self._out = bytearray()
        self._emit_unprompted()

    def _emit_unprompted(self) -> None:
        while self.pairs and self.pairs[0][0] == b"":
            self._out += self.pairs.pop(0)[1]

    # --- the ByteEndpoint interface -----------------------------------------------------
    def receive(self, data: bytes) -> None:
        self.received += data
        for byte in bytes(data):
            if not self.pairs:
                raise AssertionError(
                    f"unexpected bytes {bytes(self._pending) + bytes([byte])!r}: the script is finished"
                )
            expected = self.pairs[0][0]
            self._pending.append(byte)
            if not expected.startswith(bytes(self._pending)):
                raise AssertionError(f"sent {bytes(self._pending)!r}..., expected {expected!r}")
            if len(self._pending) == len(expected):
                self._out += self.pairs.pop(0)[1]
                self._pending.clear()
                self._emit_unprompted()

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # --- checks ---------------------------------------------------------------------------
    def check_done(self) -> None:
        if self._pending:
            raise AssertionError(f"incomplete request {bytes(self._pending)!r}")
        if self.pairs:
            raise AssertionError(f"never sent: {[sent for sent, _ in self.pairs]!r}")
        if self._out:
            raise AssertionError(f"reply never read: {bytes(self._out)!r}")


@contextmanager
def expected_protocol(
    driver_factory: Callable[[ScriptedEndpoint], T],
    pairs: Sequence[Pair],
    termination: str = "\n",
) -> Iterator[T]:
    """Yield ``driver_factory(endpoint)`` on a scripted endpoint; check the script on exit.

    ``driver_factory`` gets a byte endpoint (``receive``/``take_output``); wrap it the way
    the driver talks to a simulator in-process, e.g. ``InProcessTransport(io)`` or
    ``EurothermDriver.in_process(io)``. The exit checks are skipped if the block raised, so
    the block's own error is what the test reports.
    """
    endpoint = ScriptedEndpoint(pairs, termination)
    driver = driver_factory(endpoint)
    yield driver
    endpoint.check_done()


def crc16_modbus(data: bytes) -> bytes:
    """CRC-16/Modbus (polynomial 0xA001 reflected, initial 0xFFFF), low byte first.

    Written bit by bit from the Modbus over Serial Line specification, independently of
    minimalmodbus and of the simulator, so frames in tests are checked against the outside.
    """
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return bytes([crc & 0xFF, crc >> 8])


def modbus_frame(hexbody: str) -> bytes:
    """A Modbus RTU frame from its hex body (spaces allowed) with the CRC appended."""
    body = bytes.fromhex(hexbody.replace(" ", ""))
    return body + crc16_modbus(body)


def run_script(
    driver_factory: Callable[[ScriptedEndpoint], Any],
    pairs: Sequence[Pair],
    action: Callable[[Any], T],
    termination: str = "\n",
) -> T:
    """``action(driver)`` inside :func:`expected_protocol`; returns what it returned."""
    with expected_protocol(driver_factory, pairs, termination) as driver:
        return action(driver)
