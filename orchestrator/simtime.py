"""Simulated time for the RunEngine.

The RunEngine runs its plan on an event-loop thread while the calling thread blocks in
``during_task.block``. :class:`SimulatedTime` takes that blocking thread and advances the
shared :class:`~drivers.clock.SimClock` only while the RunEngine is waiting:

* on statuses (a 'wait' message: the public ``waiting_hook`` reports them), or
* in a 'sleep' message (replaced through ``RE.register_command``).

Each advance jumps straight to the earliest callback due on the clock (a device poll, the
end of a sleep) and runs every callback due then. When all the statuses the RunEngine waits
for are done, time stands still until the RunEngine waits again, so a step hand-over costs no
simulated time beyond the poll that noticed the end of the step.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bluesky.run_engine import RunEngine
from bluesky.utils import DuringTask, Msg
from ophyd.status import Status

from drivers.clock import Clock, ScaledClock, SimClock
from orchestrator import doc_validation


class SimulatedTimeStall(RuntimeError):
    """The RunEngine waits for something that no scheduled event will ever finish."""


class SimulatedTime(DuringTask):
    """Drive a :class:`SimClock` from the RunEngine's blocking thread."""

    def __init__(self, clock: SimClock, stall_timeout_s: float = 30.0) -> None:
        self.clock = clock
        self.stall_timeout_s = stall_timeout_s
        self._cond = threading.Condition()
        self._waiting: list[Any] | None = None
        self._generation = 0
        self.advances = 0

    # --- hooks called from the RunEngine's loop thread ----------------------------------
    def waiting_hook(self, statuses: Iterable[Any] | None) -> None:
        with self._cond:
            self._waiting = None if statuses is None else list(statuses)
            self._generation += 1
            self._cond.notify_all()

    async def _sleep(self, msg: Msg) -> None:
        (duration_s,) = msg.args
        status = Status()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        status.add_callback(lambda st: loop.call_soon_threadsafe(_resolve, future))
        self.clock.call_later(float(duration_s), status.set_finished)
        self.waiting_hook([status])
        try:
            await future
        finally:
            self.waiting_hook(None)

    def install(self, RE: RunEngine) -> None:
        """Hook into a RunEngine (which must have been created with this during_task)."""
        RE.waiting_hook = self.waiting_hook  # type: ignore[assignment]
        RE.register_command("sleep", self._sleep)
        self.clock.driven_from(RE.loop)

    # --- the blocking thread --------------------------------------------------------------
    def block(self, blocking_event: threading.Event) -> None:
        stalled_for = 0.0
        while not blocking_event.is_set():
            with self._cond:
                waiting = self._waiting
                generation = self._generation
            if not waiting:
                self._wait_for_change(generation, blocking_event, 0.05)
                continue
            if all(getattr(st, "done", False) for st in waiting):
                # The RunEngine is about to move on: let it, without moving time.
                self._wait_for_change(generation, blocking_event, 0.05)
                continue
            if self.clock.advance_to_next():
                self.advances += 1
                stalled_for = 0.0
                continue
            # Nothing scheduled, yet the RunEngine waits: something outside simulated time
            # (a thread) may finish it; give it a moment, then report a stall.
            self._wait_for_change(generation, blocking_event, 0.05)
            stalled_for += 0.05
            if stalled_for > self.stall_timeout_s:
                names = ", ".join(repr(st) for st in waiting)
                raise SimulatedTimeStall(
                    f"simulated time stalled: the RunEngine waits for {names} "
                    "but nothing is scheduled on the clock"
                )

    def _wait_for_change(self, generation: int, blocking_event: threading.Event, timeout: float) -> None:
        with self._cond:
            if self._generation == generation and not blocking_event.is_set():
                self._cond.wait(timeout)


def sim_run_engine(clock: SimClock) -> tuple[RunEngine, SimulatedTime]:
    """A RunEngine in simulated time on ``clock``, and the :class:`SimulatedTime` that drives it."""
    doc_validation.install()  # event pages validated without the schema's no-op items
    simtime = SimulatedTime(clock)
    RE = RunEngine({}, during_task=simtime)
    simtime.install(RE)
    return RE, simtime


def run_engine(clock: Clock) -> tuple[RunEngine, SimulatedTime | None]:
    """A RunEngine on ``clock``: in simulated time on a :class:`SimClock` (its
    :class:`SimulatedTime` returned beside it), a plain one on any other clock."""
    if isinstance(clock, SimClock):
        return sim_run_engine(clock)
    doc_validation.install()
    return RunEngine({}), None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# --- simulated time shared with a `relaxlab sim serve` process ------------------------------


class ServedClock(SimClock):
    """The simulated time of a ``relaxlab sim serve --stepped`` lab, driven by this orchestrator.

    A :class:`SimClock` (the RunEngine moves it through :class:`SimulatedTime`, to the next poll
    and only while it waits) whose every move is made on the served lab first: the served clock
    is moved to the same time and every instrument's output up to then is on the wire before any
    poll due then runs here. So a run on served instruments is as deterministic as in-process,
    however busy the machine. It starts at the served lab's present time (a resumed orchestrator
    meets instruments that ran on while it was away).

    ``lease`` (what an orchestrator gives, naming itself): take the lab's lease first, so a second
    orchestrator on the same lab is refused (ValueError naming the holder) before it touches an
    instrument; the lease ends when this clock is closed or its process dies. Without it (a test,
    the crash drill) the clock may watch, hold and - while no orchestrator leases the lab - move it.
    """

    served = True

    def __init__(self, address: str, timeout_s: float = 600.0, lease: str | None = None) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"cannot reach the clock of `relaxlab sim serve` at {address}: {exc} (is it running?)"
            ) from None
        self._reader = self._sock.makefile("rb")
        try:
            now = self.request(f"LEASE {lease}" if lease else "NOW")
        except ConnectionError as exc:
            self.close()
            reason = str(exc).partition(" answered ")[2].strip("'\"").removeprefix("ERR ") or str(exc)
            raise ValueError(
                f"cannot drive the simulated lab of `relaxlab sim serve` at {address}: {reason}"
            ) from None
        super().__init__(now)
        self.add_listener(self._move_served)

    def request(self, line: str) -> float:
        """Send one control line, return the served time it answers with."""
        try:
            self._sock.sendall((line + "\n").encode("ascii"))
            reply = self._reader.readline().decode("ascii", errors="replace").split()
        except OSError as exc:
            raise ConnectionError(
                f"lost the clock of `relaxlab sim serve` at {self.address}: {exc}"
            ) from None
        if len(reply) != 2 or reply[0] != "OK":
            raise ConnectionError(
                f"the clock of `relaxlab sim serve` at {self.address} answered {' '.join(reply) or 'nothing'!r}"
            )
        return float(reply[1])

    def _move_served(self, when_s: float) -> None:
        self.request(f"ADVANCE {float(when_s)!r}")

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def __enter__(self) -> ServedClock:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def write_clock_file(
    clock: Any, path: Path, instruments: dict[str, str] | None = None, control: str | None = None
) -> None:
    """Publish a served lab's clock (``relaxlab sim serve``) for orchestrators in other processes.

    A free-running :class:`~drivers.clock.ScaledClock` is published as its speed and origin; a
    stepped one (``control``: its ``host:port``) as where to move it. ``instruments`` (name ->
    resource on 127.0.0.1) tells them where each served instrument is.
    """
    data: dict[str, object]
    if control is not None:
        data = {"mode": "stepped", "control": control, "start_s": clock.now()}
    else:
        data = {"speed": clock.speed, "start_s": clock.start_s, "wall0_s": clock.wall0_s}
    if instruments:
        data["instruments"] = instruments
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def read_served_instruments(path: Path) -> dict[str, str]:
    """Name -> resource of each instrument the ``sim serve`` process behind ``path`` serves."""
    try:
        served = json.loads(Path(path).read_text()).get("instruments", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in served.items()} if isinstance(served, dict) else {}


def read_clock_file(path: Path) -> ScaledClock | ServedClock:
    """The clock a ``relaxlab sim serve`` process published (ValueError if unusable): its
    free-running clock, or (``--stepped``) a :class:`ServedClock` that drives the served one."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("mode") == "stepped":  # this process drives the lab: it takes its lease
            return ServedClock(str(data["control"]), lease=f"pid {os.getpid()} on {socket.gethostname()}")
        return ScaledClock(float(data["speed"]), float(data["start_s"]), float(data["wall0_s"]))
    except FileNotFoundError:
        raise ValueError(f"no simulated-lab clock file {path}: is `relaxlab sim serve` running?") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ValueError) and "sim serve" in str(exc):
            raise
        raise ValueError(f"simulated-lab clock file {path} is not usable: {exc}") from None
