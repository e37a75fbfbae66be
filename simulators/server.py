"""Serve simulated instruments over TCP on 127.0.0.1 (and nowhere else).

Each instrument gets its own port. Bytes from the host go to the instrument's ``receive``;
whatever the instrument produces (replies, and data streamed by a running script) is sent
back, checked every ``push_interval_s`` of wall time even when the host is silent. One lock
per server serialises access to the simulation, so several connections and the clock owner
never touch a model at the same time.

An instrument that offers ``connect()`` (the Keithley 2450) gets one session per connection:
each host has its own input buffer and output queue, as on the real unit's interfaces, and a
connection that closes mid-message takes its half message with it (``close()``, which may be
called more than once); ``connect()`` raising ``OSError`` refuses the connection (closed at
once). Others share one byte stream. A host that stops reading is dropped once a send has waited
``push_interval_s`` (it would otherwise hold the lock), so a stuck client cannot stall the lab.
An endpoint whose ``one_connection`` is true (a serial instrument: one owner per port) takes
one live connection at a time; a second one gets the endpoint's ``refusal`` bytes and is
closed, so it can neither read the owner's data nor abort the owner's script. An owner whose
peer is already gone (killed, reset) is let go when the next host connects, even if its own
handler has not noticed yet, so the next host is not refused and finds none of its input.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from typing import Any, Protocol

LOOPBACK = "127.0.0.1"
SEND_TIMEOUT_S = 2.0  # a host that has not taken a reply within this is dropped


def _send(conn: socket.socket, data: bytes, timeout_s: float) -> None:
    """``sendall`` with a bound on how long a host that does not read may hold us."""
    conn.settimeout(SEND_TIMEOUT_S)
    try:
        conn.sendall(data)
    finally:
        conn.settimeout(timeout_s)


class Endpoint(Protocol):
    def receive(self, data: bytes) -> None: ...

    def take_output(self) -> bytes: ...


_TCP_ESTABLISHED = 1  # tcpi_state of Linux's struct tcp_info


def _alive(conn: socket.socket) -> bool:
    """Whether a connection's peer is still there: the TCP state where the kernel tells it
    (a peer that closed or reset is gone even with bytes of it not yet read), else a peek (a
    closed peer reads as EOF at once)."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is not None:
        try:
            return conn.getsockopt(socket.IPPROTO_TCP, tcp_info, 1)[0] == _TCP_ESTABLISHED
        except OSError:
            return False
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return not (readable and conn.recv(1, socket.MSG_PEEK) == b"")
    except (TimeoutError, BlockingIOError):
        return True  # its owner read the byte first: still there
    except (OSError, ValueError):
        return False


def _session(endpoint: Any) -> Any:
    """The endpoint this connection talks to: its own session if the instrument has them."""
    connect = getattr(endpoint, "connect", None)
    return connect() if callable(connect) else endpoint


def _close_session(endpoint: Any, session: Any) -> None:
    """End a connection's session (its unfinished input goes with it)."""
    close = getattr(session, "close", None)
    if session is not endpoint and callable(close):
        close()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def setup(self) -> None:
        with self.server.lock:
            # An instrument with one owner (a serial port) refuses a second live connection:
            # it gets the endpoint's refusal bytes and is closed. An owner already gone (its
            # handler has not noticed yet) is let go first, so its successor is not refused.
            one_owner = bool(getattr(self.server.endpoint, "one_connection", False))
            if one_owner:
                for conn, session in list(self.server.connections.items()):
                    if not _alive(conn):
                        self.server.connections.pop(conn, None)
                        _close_session(self.server.endpoint, session)
            self.refused = one_owner and bool(self.server.connections)
            if self.refused:
                self.session = None
                return
            try:
                self.session = _session(self.server.endpoint)
            except OSError:  # the instrument refuses another connection (e.g. a port has one owner)
                self.session = None
                return
            self.server.connections[self.request] = self.session

    def finish(self) -> None:
        if self.session is None:
            return
        with self.server.lock:
            self.server.connections.pop(self.request, None)
            _close_session(self.server.endpoint, self.session)  # closing twice is harmless

    def handle(self) -> None:
        conn: socket.socket = self.request
        if self.refused:
            try:
                conn.sendall(getattr(self.server.endpoint, "refusal", b""))
            except OSError:
                pass
            return
        if self.session is None:
            return  # closes the connection
        conn.settimeout(self.server.push_interval_s)
        endpoint, lock = self.session, self.server.lock
        while not self.server.closing.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                data = None
            except OSError:
                return
            if data == b"":
                return  # host closed the connection
            try:
                with lock:  # send under the lock too, so pushes never reorder output
                    if data:
                        endpoint.receive(data)
                    out = endpoint.take_output()
                    if out:
                        _send(conn, out, self.server.push_interval_s)
            except OSError:
                return


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256  # many hosts may connect at once

    def __init__(self, port: int, endpoint: Endpoint, lock: Any, push_interval_s: float) -> None:
        self.endpoint = endpoint
        self.lock = lock
        self.push_interval_s = push_interval_s
        self.closing = threading.Event()
        self.connections: dict[socket.socket, Any] = {}  # connection -> its session
        super().__init__((LOOPBACK, port), _Handler)


class InstrumentServer:
    """A simulated instrument listening on ``127.0.0.1:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        endpoint: Endpoint,
        port: int = 0,
        lock: Any = None,
        push_interval_s: float = 0.01,
        name: str = "instrument",
    ) -> None:
        self.name = name
        self._server = _Server(port, endpoint, lock or threading.RLock(), push_interval_s)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def push_now(self, _now: float | None = None) -> None:
        """Send whatever the instrument has produced by now to every connected host.

        A shared simulated clock calls this each time it moves, so output produced at a
        simulated instant is on the wire before anything else happens at that instant: the
        host sees the same bytes at the same simulated time as in-process.
        """
        server = self._server
        with server.lock:
            tick = getattr(server.endpoint, "tick", None)
            if callable(tick):
                tick()  # an instrument that runs on its own (a 2450's trigger model) moves with the clock
            if not server.connections:
                return  # nobody to send to: what the instrument produces stays in its buffer
            shared = server.endpoint.take_output()
            for conn, session in list(server.connections.items()):
                if not _alive(conn):  # its host is gone: what it would have read stays buffered
                    continue
                out = shared if session is server.endpoint else session.take_output()
                if not out:
                    continue
                try:
                    # no Nagle: the host's next read (after the clock's reply) must find it all,
                    # not wait for an ACK the host delays (what was in transit at a kill varied)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    _send(conn, out, server.push_interval_s)
                except OSError:
                    server.connections.pop(conn, None)

    def live_hosts(self) -> int:
        """How many connected hosts are still there: a killed host's connections count until
        its kernel has closed them, which on a loaded machine may be a moment after it died."""
        with self._server.lock:
            return sum(_alive(conn) for conn in self._server.connections)

    def start(self) -> InstrumentServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
