"""Serve simulated instruments over TCP on 127.0.0.1 (and nowhere else).

Each instrument gets its own port. Bytes from the host go to the instrument's ``receive``;
whatever the instrument produces (replies, and data streamed by a running script) is sent
back, checked every ``push_interval_s`` of wall time even when the host is silent. One lock
per server serialises access to the simulation, so several connections and the clock owner
never touch a model at the same time.

An endpoint whose ``one_connection`` is true (a serial instrument: one owner per port) takes
one live connection at a time; a second one gets the endpoint's ``refusal`` bytes and is
closed, so it can neither read the owner's data nor abort the owner's script.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from typing import Any, Protocol

LOOPBACK = "127.0.0.1"


class Endpoint(Protocol):
    def receive(self, data: bytes) -> None: ...

    def take_output(self) -> bytes: ...


def _alive(conn: socket.socket) -> bool:
    """Whether a connection's peer is still there (a closed peer reads as EOF at once)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return not (readable and conn.recv(1, socket.MSG_PEEK) == b"")
    except (TimeoutError, BlockingIOError):
        return True  # its owner read the byte first: still there
    except (OSError, ValueError):
        return False


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def setup(self) -> None:
        # An instrument with one owner (a serial port) refuses a second live connection.
        with self.server.lock:
            self.refused = bool(getattr(self.server.endpoint, "one_connection", False)) and any(
                _alive(c) for c in list(self.server.connections)
            )
            if not self.refused:
                self.server.connections.add(self.request)

    def finish(self) -> None:
        self.server.connections.discard(self.request)

    def handle(self) -> None:
        conn: socket.socket = self.request
        if self.refused:
            try:
                conn.sendall(getattr(self.server.endpoint, "refusal", b""))
            except OSError:
                pass
            return
        conn.settimeout(self.server.push_interval_s)
        endpoint, lock = self.server.endpoint, self.server.lock
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
                        conn.sendall(out)
            except OSError:
                return


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, endpoint: Endpoint, lock: Any, push_interval_s: float) -> None:
        self.endpoint = endpoint
        self.lock = lock
        self.push_interval_s = push_interval_s
        self.closing = threading.Event()
        self.connections: set[socket.socket] = set()
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
            out = server.endpoint.take_output()
            if out:
                for conn in list(server.connections):
                    try:
                        conn.sendall(out)
                    except OSError:
                        server.connections.discard(conn)

    def start(self) -> InstrumentServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
