"""Progress that tells the truth: where each cell is, in simulated and in wall time.

Three modes (:func:`progress_mode`): ``"live"`` redraws a rich display on a terminal; ``"lines"``
prints one plain line per event (a run starts, a step starts, a tenth of the planned time has
passed, a run ends) when stdout is not a terminal (piped into ``tee``, a log file, CI), so a log shows what happened and when; ``"off"``
with ``--json`` (stdout is the JSON document).

Every line says the step a cell is on (``step 2/3 rest``), the simulated time of the cell and of
the whole session, the wall time, and the ETA both in simulated time (from the schedule's
estimates, the same model ``campaign plan`` uses) and in wall-clock time (the simulated time left
at the speed observed so far).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

Mode = str  # "live" | "lines" | "off"


def progress_mode(as_json: bool = False, stream: TextIO | None = None) -> Mode:
    """``off`` for ``--json``, ``live`` on a terminal, else ``lines``."""
    if as_json:
        return "off"
    stream = sys.stdout if stream is None else stream
    try:
        return "live" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


def as_mode(progress: bool | str) -> Mode:
    """Accept the old boolean (True = live on the terminal) as well as a mode."""
    if progress is True:
        return "live"
    if progress is False or progress is None:
        return "off"
    if progress not in ("live", "lines", "off"):
        raise ValueError(f"progress must be 'live', 'lines' or 'off', not {progress!r}")
    return str(progress)


def _duration_text(seconds: float, minutes: Callable[[float], str], hours: Callable[[float], str]) -> str:
    """``seconds`` (negative counts as 0) as ``12.3 s`` under a minute, else as ``minutes`` or,
    from an hour on, ``hours`` formats it."""
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    return minutes(seconds) if seconds < 3600 else hours(seconds)


def sim_text(seconds: float) -> str:
    """Simulated time: ``12.3 s``, ``4.5 min``, ``3.20 h``."""
    return _duration_text(seconds, lambda s: f"{s / 60:.1f} min", lambda s: f"{s / 3600:.2f} h")


def wall_text(seconds: float) -> str:
    """Wall time: ``0.4 s``, ``1 min 05 s``, ``2 h 03 min``."""
    return _duration_text(
        seconds,
        lambda s: f"{int(s // 60)} min {int(s % 60):02d} s",
        lambda s: f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min",
    )


#: The share of the simulated work done before a wall-clock ETA is extrapolated from the pace.
MIN_DONE = 0.05


class Pace:
    """Simulated seconds per wall second so far (from the first event), to turn simulated time
    left into wall time left."""

    def __init__(self, sim_now_s: float) -> None:
        self.sim0 = sim_now_s
        self.wall0 = time.perf_counter()

    def wall_s(self) -> float:
        return time.perf_counter() - self.wall0

    def wall_left_s(self, sim_now_s: float, sim_left_s: float) -> float | None:
        """Wall seconds for ``sim_left_s`` more simulated seconds at the pace so far (None before
        :data:`MIN_DONE` of the work is done: the first moments, start-up included, are no pace
        to extrapolate; a 2807 h GITT showed "~47 s wall" at its start and took 7 s)."""
        done = sim_now_s - self.sim0
        wall = self.wall_s()
        if done <= 0 or wall <= 0 or done < MIN_DONE * (done + max(sim_left_s, 0.0)):
            return None
        return max(sim_left_s, 0.0) * wall / done

    def eta(self, sim_now_s: float, sim_left_s: float | None) -> str:
        """``ETA 3.20 h simulated, ~12.0 s wall``"""
        if sim_left_s is None:
            return "ETA unknown"
        wall = self.wall_left_s(sim_now_s, sim_left_s)
        wall_part = f", ~{wall_text(wall)} wall" if wall is not None else ""
        return f"ETA {sim_text(max(sim_left_s, 0.0))} simulated{wall_part}"


class Tenths:
    """The tenths of a planned time that have passed, each told once (lines mode: a long step is
    not silent until it ends)."""

    def __init__(self, planned_s: float) -> None:
        self.planned_s = planned_s
        self._said = 0

    def passed(self, done_s: float) -> int | None:
        """The tenth (1-9) ``done_s`` has newly passed, or None."""
        if self.planned_s <= 0:
            return None
        tenths = min(int(10 * done_s / self.planned_s), 9)
        if tenths <= self._said:
            return None
        self._said = tenths
        return tenths


class LinePrinter:
    """One plain line per event, flushed at once: ``[wall 1.2 s | sim 3.20 h] text``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def __call__(self, wall_s: float, sim_s: float, text: str) -> None:
        out = self.stream if self.stream is not None else sys.stdout
        out.write(f"[wall {wall_text(wall_s):>10s} | sim {sim_text(sim_s):>9s}] {text}\n")
        out.flush()


class StepTracker:
    """Which step of its run a cell is on, from the points: the channel numbers the steps it
    runs, a run's steps are numbered from 1 in the order they come."""

    def __init__(self, step_types: list[str]) -> None:
        self.types = list(step_types)
        self.seen: list[Any] = []

    def update(self, raw_step: Any) -> bool:
        """Record the step of the latest point; True when it is a new step."""
        if self.seen and self.seen[-1] == raw_step:
            return False
        if raw_step in self.seen:
            return False
        self.seen.append(raw_step)
        return True

    @property
    def index(self) -> int:
        """0-based index of the current step (-1 before the first point)."""
        return len(self.seen) - 1

    def text(self) -> str:
        """``step 2/3 rest`` (``starting`` before the first point)."""
        i = self.index
        if i < 0:
            return "starting"
        kind = self.types[i] if i < len(self.types) else ""
        total = f"/{len(self.types)}" if self.types else ""
        return f"step {i + 1}{total} {kind}".rstrip()
