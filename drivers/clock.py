"""Clocks shared by drivers, devices and the orchestrator.

Drivers, devices and plans never call ``time.sleep`` or ``time.time``. They take a
:class:`Clock` and ask it for the time (:meth:`Clock.now`) or to run a callback later
(:meth:`Clock.call_later`). Two implementations:

* :class:`WallClock` - real time; callbacks run on timer threads.
* :class:`SimClock` - simulated time. It never moves by itself: the orchestrator advances
  it (:meth:`SimClock.advance_to_next`) only while the RunEngine is blocked waiting, jumping
  straight to the earliest scheduled callback. Identical inputs give identical data.

Times are seconds (float). ``now()`` is a POSIX timestamp in both clocks, so event-model
documents carry plausible times; a :class:`SimClock` starts at a fixed epoch by default.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: Default start of simulated time: 2026-01-01T00:00:00Z.
SIM_EPOCH_S = 1767225600.0


@runtime_checkable
class TimerHandle(Protocol):
    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """What drivers, devices and plans may ask of time."""

    simulated: bool

    def now(self) -> float:
        """Current time, seconds since the POSIX epoch."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` after ``delay_s`` seconds of this clock's time."""
        ...


class WallClock:
    """Real time. Callbacks run, in due order, on one scheduler thread per clock.

    One thread with a queue rather than a timer thread per callback: a lab with hundreds of
    channels polls hundreds of times a second.
    """

    simulated = False

    def __init__(self) -> None:
        self._queue: list[_Timer] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        return time.time()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _Timer(time.time() + max(0.0, delay_s), next(self._seq), callback)  # wall time
        with self._cond:
            heapq.heappush(self._queue, timer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="relaxlab-clock", daemon=True)
                self._thread.start()
            self._cond.notify()
        return timer

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue or self._queue[0].when > time.time():
                    timeout = None if not self._queue else max(0.0, self._queue[0].when - time.time())
                    self._cond.wait(timeout)
                timer = heapq.heappop(self._queue)
            if not timer.cancelled:
                try:
                    timer.callback()
                except Exception:  # a failing callback must not stop the clock
                    import logging

                    logging.getLogger(__name__).exception("clock callback failed")

    def sleep(self, duration_s: float) -> None:
        """Block the calling thread (orchestrator use only, never in a plan)."""
        time.sleep(max(0.0, duration_s))


@dataclass(order=True)
class _Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class SimClockNotDriven(RuntimeError):
    """A plan was run on a simulated clock by a RunEngine that does not move that clock."""


class SimClock:
    """Simulated time that advances only when told to.

    Callbacks scheduled with :meth:`call_later` form a queue ordered by due time (ties in
    scheduling order). :meth:`advance_to_next` jumps to the earliest due time and runs every
    callback due then. Nothing here is threaded: the orchestrator calls it from the thread
    that waits for the RunEngine.
    """

    simulated = True

    def __init__(self, start_s: float = SIM_EPOCH_S) -> None:
        self._now = float(start_s)
        self._queue: list[_Timer] = []
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self._listeners: list[Callable[[float], None]] = []
        self._driving_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    def now(self) -> float:
        return self._now

    def driven_from(self, loop: asyncio.AbstractEventLoop) -> None:
        """Say that the RunEngine running on ``loop`` moves this clock while it waits."""
        self._driving_loops.add(loop)

    def check_driven(self, what: str) -> None:
        """Refuse to start ``what`` for a RunEngine that does not move this clock.

        Called from a device's kickoff: a RunEngine of one's own (``RunEngine()``) would wait
        forever for simulated time that nothing advances. Outside any event loop (a test or a
        script stepping the clock itself) there is nothing to check.

        Raises
        ------
        SimClockNotDriven
            Saying what to use instead.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop not in self._driving_loops:
            raise SimClockNotDriven(
                f"{what} runs on a simulated clock that only its lab's RunEngine moves; this "
                "RunEngine would wait for it forever. Run the plan with session.run(plan) (or "
                "session.RE), not a RunEngine of your own: see docs/python-api.md."
            )

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> _Timer:
        if delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {delay_s}")
        return self.call_at(self._now + delay_s, callback)

    def call_at(self, when_s: float, callback: Callable[[], None]) -> _Timer:
        with self._lock:
            timer = _Timer(max(when_s, self._now), next(self._seq), callback)
            heapq.heappush(self._queue, timer)
            return timer

    def add_listener(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(new_now)`` whenever the clock moves (e.g. a remote simulator)."""
        self._listeners.append(listener)

    def next_due(self) -> float | None:
        """Time of the earliest pending callback, or None when nothing is scheduled."""
        with self._lock:
            while self._queue and self._queue[0].cancelled:
                heapq.heappop(self._queue)
            return self._queue[0].when if self._queue else None

    def pending(self) -> int:
        with self._lock:
            return sum(1 for t in self._queue if not t.cancelled)

    def set_time(self, when_s: float) -> None:
        """Move time forward to ``when_s`` without running callbacks (never backwards)."""
        if when_s < self._now:
            raise ValueError(f"simulated time cannot go backwards ({when_s} < {self._now})")
        if when_s > self._now:
            self._now = when_s
            for listener in self._listeners:
                listener(when_s)

    def advance_to_next(self, limit_s: float | None = None) -> bool:
        """Jump to the earliest scheduled callback and run all callbacks due then.

        Returns False (and does not move) when nothing is scheduled or the next callback
        is later than ``limit_s``.
        """
        due = self.next_due()
        if due is None or (limit_s is not None and due > limit_s):
            return False
        self.set_time(due)
        while True:
            with self._lock:
                if not self._queue or self._queue[0].when > self._now:
                    break
                timer = heapq.heappop(self._queue)
            if not timer.cancelled:
                timer.callback()
        return True

    def advance_by(self, duration_s: float) -> None:
        """Run every callback due within ``duration_s`` and end exactly there."""
        target = self._now + duration_s
        while self.advance_to_next(limit_s=target):
            pass
        self.set_time(target)


class ScaledClock(WallClock):
    """Free-running simulated time: ``speed`` simulated seconds per wall second.

    For simulators served in their own process (demos, crash/resume tests), so a killed
    orchestrator meets instruments that went on without it.
    """

    def __init__(
        self, speed: float = 1.0, start_s: float = SIM_EPOCH_S, wall0_s: float | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        super().__init__()
        self.speed = speed
        self.start_s = start_s
        #: The wall time (POSIX seconds) at which this clock read ``start_s``: two processes
        #: given the same three numbers share one simulated time line.
        self.wall0_s = time.time() if wall0_s is None else wall0_s
        self._start = start_s
        self._wall0 = self.wall0_s

    def now(self) -> float:
        return self._start + (time.time() - self._wall0) * self.speed

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        # The scheduler thread waits in wall seconds; keep its queue in wall time.
        return WallClock.call_later(self, delay_s / self.speed, callback)
