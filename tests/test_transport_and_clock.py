"""Transports fail with messages naming the instrument and command; the clocks behave."""

from __future__ import annotations

import socket
import threading
from contextlib import closing

import pytest

from drivers.clock import SimClock
from drivers.transport import InstrumentError, InstrumentTimeout, SerialTransport, VisaTransport


@pytest.fixture
def silent_server():
    """A loopback TCP server that accepts a connection and answers a fixed reply (or nothing)."""
    replies: dict[str, bytes] = {"reply": b""}
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.1)
                while not stop.is_set():
                    try:
                        data = conn.recv(1024)
                    except OSError:
                        continue
                    if not data:
                        break
                    if replies["reply"]:
                        conn.sendall(replies["reply"])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], replies
    stop.set()
    thread.join(1)
    srv.close()


@pytest.mark.tcp
def test_visa_timeout_names_instrument_and_command(silent_server) -> None:
    port, _ = silent_server
    visa = VisaTransport(f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=0.3, name="smu1")
    with closing(visa), pytest.raises(InstrumentTimeout, match=r"smu1: no reply within timeout.*\*IDN\?"):
        visa.query("*IDN?")


@pytest.mark.tcp
def test_serial_socket_incomplete_reply_is_reported(silent_server) -> None:
    port, replies = silent_server
    replies["reply"] = b"KEITHLEY INSTR"  # no terminator
    serial = SerialTransport(f"socket://127.0.0.1:{port}", timeout_s=0.3, name="smu2")
    with closing(serial), pytest.raises(InstrumentTimeout, match=r"smu2: incomplete reply b'KEITHLEY INSTR'.*\*IDN\?"):
        serial.query("*IDN?")


def test_unreachable_serial_port_is_a_clear_error() -> None:
    with pytest.raises(InstrumentError, match="oven: cannot open '/dev/ttyNOPE0'"):
        SerialTransport("/dev/ttyNOPE0", name="oven")


def test_unreachable_tcp_instrument_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    # pyvisa-py connects a SOCKET resource lazily: the first command reports it.
    with pytest.raises(InstrumentError, match=r"smu3: cannot reach the instrument: .*refused.*\*IDN\?"):
        VisaTransport(f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=0.3, name="smu3").query("*IDN?")


def test_sim_clock_runs_callbacks_in_time_order_and_jumps() -> None:
    clock = SimClock(start_s=100.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(5, lambda: seen.append(("b", clock.now())))
    clock.call_later(2, lambda: seen.append(("a", clock.now())))
    handle = clock.call_later(3, lambda: seen.append(("cancelled", clock.now())))
    handle.cancel()
    clock.call_later(5, lambda: seen.append(("c", clock.now())))
    while clock.advance_to_next():
        pass
    assert seen == [("a", 102.0), ("b", 105.0), ("c", 105.0)]
    with pytest.raises(ValueError):
        clock.set_time(50.0)


def test_sim_clock_advance_by_ends_exactly() -> None:
    clock = SimClock(start_s=0.0)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock.now())
        clock.call_later(10, tick)

    clock.call_later(10, tick)
    clock.advance_by(35)
    assert ticks == [10.0, 20.0, 30.0] and clock.now() == 35.0
