"""A served lab's simulated time that moves only when told to (``relaxlab sim serve --stepped``).

A free-running served clock (``--speed``) ties simulated time to wall time, so what an
orchestrator in another process sees depends on how fast that process runs: on a busy machine
its polls come late. A :class:`SteppedClock` instead stands still until a client moves it. The
orchestrator that runs on the served lab (``--sim-clock``) moves it exactly as it moves its own
simulated clock, to the next poll it has scheduled and only while its RunEngine waits, so a run on
served instruments gives the same data however busy the machine is. While no orchestrator is
connected (it was killed), the lab stands still until someone - a crash drill, a test - moves it
on: the instruments then run on by that much, as hardware would while the host is away.

:class:`ClockControl` serves the clock on 127.0.0.1 with a line protocol (one reply line each):

``NOW``            -> ``OK <now_s>``
``ADVANCE <t_s>``  -> moves the clock to ``t_s`` (never back), then ``OK <now_s>``; every
                      instrument's output up to then is on the wire before the reply
``HOLD <t_s>``     -> ``OK <now_s>``; from now on an ``ADVANCE`` past ``t_s`` from another
                      connection waits (the lab freezes at a chosen moment, e.g. to kill the
                      orchestrator there); the connection that set the hold is not held
``WAIT_HELD <s>``  -> ``OK <now_s>`` once an ``ADVANCE`` of a live connection waits at the hold
                      (not one whose host has died), ``ERR`` after ``s`` wall seconds (a guard
                      against a hang, not a measurement)
``RELEASE``        -> ``OK <now_s>``; the hold is lifted (advances of closed connections are dropped)
``LEASE <who>``    -> ``OK <now_s>``: this connection drives the lab (an orchestrator, ``<who>`` says
                      which) until it closes; ``ERR`` naming the holder while another live
                      connection holds the lease. While the lab is leased an ``ADVANCE`` from any
                      other connection is refused the same way: one orchestrator moves a stepped lab
                      at a time, as one writer holds a data directory. A holder that has just died
                      (killed, exited) is let go: both wait up to ``LEASE_GRACE_S`` wall seconds for
                      its connection to close before refusing (a guard, not a measurement)

Simulated time is seconds since the POSIX epoch, as everywhere in relaxlab.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from simulators.server import LOOPBACK, _alive

#: How long a lease request (or another connection's move) waits for a leasing connection that
#: is closing to be gone before it is refused.
LEASE_GRACE_S = 2.0

#: Where a served stepped clock starts: 2026-01-01T00:00:00Z, as an orchestrator's simulated clock.
EPOCH_S = 1767225600.0


class SteppedClock:
    """Simulated time that moves only through :meth:`move_to` (instruments only read ``now``)."""

    simulated = True

    def __init__(self, start_s: float = EPOCH_S) -> None:
        self._now = float(start_s)
        self._listeners: list[Callable[[float], None]] = []

    def now(self) -> float:
        return self._now

    def add_listener(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(new_now)`` after each move (the servers push the output produced)."""
        self._listeners.append(listener)

    def move_to(self, when_s: float) -> float:
        if when_s > self._now:
            self._now = float(when_s)
            for listener in self._listeners:
                listener(self._now)
        return self._now


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        control = self.server.control
        holder = False
        try:
            for raw in self.rfile:
                words = raw.decode("ascii", errors="replace").split()
                try:
                    reply = control.command(words, self.request, holder)
                except (ValueError, IndexError) as exc:
                    reply = f"ERR {exc}"
                if reply is None:
                    return  # the client went away while its move was held
                if words and words[0].upper() == "HOLD":
                    holder = True
                try:
                    self.wfile.write((reply + "\n").encode("ascii"))
                    self.wfile.flush()
                except OSError:
                    return
        finally:
            control.unlease(self.request)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, control: ClockControl) -> None:
        self.control = control
        super().__init__((LOOPBACK, port), _Handler)


class ClockControl:
    """Serve a :class:`SteppedClock` on ``127.0.0.1:port`` (0 picks a free port).

    ``lock`` is the lock the instrument servers hold while they touch a model: a move takes it,
    so no host's command is ever handled halfway through a move.
    """

    def __init__(self, clock: SteppedClock, lock: Any, port: int = 0) -> None:
        self.clock = clock
        self.lock = lock
        self._cond = threading.Condition()
        self._hold_s: float | None = None
        self._waiting: dict[int, socket.socket | None] = {}  # moves waiting at the hold: their connections
        self._lessee: tuple[socket.socket, str] | None = None  # (connection, who) driving the lab
        self._server = _Server(port, self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> ClockControl:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._hold_s = None
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def _leased_to_other(self, conn: socket.socket | None) -> str | None:
        """Who holds the lease, if a live connection other than ``conn`` does (call under
        ``_cond``); waits up to ``LEASE_GRACE_S`` for a holder whose connection is closing."""
        for _ in range(int(LEASE_GRACE_S / 0.05)):
            if self._lessee is None or self._lessee[0] is conn:
                return None
            if not _alive(self._lessee[0]):
                self._lessee = None
                return None
            self._cond.wait(0.05)
        return None if self._lessee is None or self._lessee[0] is conn else self._lessee[1]

    def lease(self, who: str, conn: socket.socket) -> str:
        with self._cond:
            other = self._leased_to_other(conn)
            if other is not None:
                return _refusal(other)
            self._lessee = (conn, who)
        return f"OK {self.clock.now()!r}"

    def unlease(self, conn: socket.socket) -> None:
        """Let the lab go if ``conn`` (closing) holds it."""
        with self._cond:
            if self._lessee is not None and self._lessee[0] is conn:
                self._lessee = None
                self._cond.notify_all()

    def advance(self, when_s: float, conn: socket.socket | None = None, held: bool = True) -> float | None:
        """Move the clock to ``when_s``; None when ``conn`` closed while the move was held."""
        with self._cond:
            while held and self._hold_s is not None and when_s > self._hold_s:
                key = threading.get_ident()
                self._waiting[key] = conn
                self._cond.notify_all()
                self._cond.wait(0.05)
                del self._waiting[key]
                if conn is not None and not _alive(conn):
                    return None
        with self.lock:
            return self.clock.move_to(when_s)

    def _live_waiting(self) -> bool:
        """Whether a move from a live connection waits at the hold (call under ``_cond``)."""
        return any(conn is None or _alive(conn) for conn in self._waiting.values())

    def command(self, words: list[str], conn: socket.socket, holder: bool) -> str | None:
        verb = words[0].upper() if words else ""
        if verb == "NOW":
            return f"OK {self.clock.now()!r}"
        if verb == "LEASE":
            return self.lease(" ".join(words[1:]) or "an unnamed client", conn)
        if verb == "ADVANCE":
            when_s = _seconds(words[1])
            with self._cond:
                other = self._leased_to_other(conn)
            if other is not None:
                return _refusal(other)
            now = self.advance(when_s, conn, held=not holder)
            return None if now is None else f"OK {now!r}"
        if verb == "HOLD":
            with self._cond:
                self._hold_s = _seconds(words[1])
                self._cond.notify_all()
            return f"OK {self.clock.now()!r}"
        if verb == "RELEASE":
            with self._cond:
                self._hold_s = None
                self._cond.notify_all()
            return f"OK {self.clock.now()!r}"
        if verb == "WAIT_HELD":
            # the timeout only guards against a hang (Condition.wait_for measures it)
            # a move whose host has died is no host waiting (a killed orchestrator's move, until
            # its thread notices the closed connection, must not pass for the next one's)
            with self._cond:
                if not self._cond.wait_for(self._live_waiting, timeout=_seconds(words[1])):
                    return "ERR nothing is held"
            return f"OK {self.clock.now()!r}"
        return f"ERR unknown command {verb!r} (NOW, ADVANCE t, HOLD t, RELEASE, WAIT_HELD s, LEASE who)"


def _refusal(who: str) -> str:
    return (
        f"ERR this simulated lab is driven by another orchestrator ({who}): one orchestrator at a time "
        "moves a stepped lab and its instruments; stop that one (or let it end) first"
    )


def _seconds(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"not a time: {text}")
    return value
