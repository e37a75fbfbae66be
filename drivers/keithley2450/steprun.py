"""A step run host-side on a Keithley 2450: its segments (:mod:`drivers.keithley2450.segments`)
one after another on the shared clock, each read from the instrument's reading buffer."""

from __future__ import annotations

from collections.abc import Callable

from drivers.base import Point, StepProgress
from drivers.keithley2450.segments import Segment, SegmentContext


class HostStepRun:
    """A technique run by polling from the host; segments follow one another."""

    def __init__(
        self,
        ctx: SegmentContext,
        segments: Callable[[], Segment | None],
        resume: StepProgress | None = None,
    ) -> None:
        self._ctx = ctx
        self._next_segment = segments
        self._points: list[Point] = []
        ctx.emit = self._points.append
        self.end_reason: str | None = None
        #: The host starts the step, so its clock stamps the start (kept from the first host).
        self.started_at_s = resume.started_at_s if resume is not None else ctx.clock.now()
        #: Points are read as they are measured; none is numbered, so none can go missing.
        self.missing_points = 0
        if resume is None:
            self._segment = self._next_segment()
            if self._segment is None:
                raise ValueError("a step needs at least one segment")
            self._segment.start()
            return
        last = resume.last
        for _ in range(last.substep if last is not None else 0):  # segments already over
            if self._next_segment() is None:
                raise ValueError(f"the step has no substep {last.substep if last else 0}")
        self._segment = self._next_segment()
        if self._segment is None:
            raise ValueError("a step needs at least one segment")
        t0 = resume.substep_started_s if resume.substep_started_s is not None else resume.started_at_s
        self._segment.resume(t0, last)

    def next_poll_delay_s(self) -> float:
        return self._segment.next_due_s() if self._segment else self._ctx.poll_s

    def poll(self) -> tuple[list[Point], bool]:
        if self.end_reason is None and self._segment is not None and self._segment.poll():
            reason = self._segment.end_reason
            following = self._next_segment()
            self._ctx.inst.stop_logging()
            if following is None:
                self.end_reason = reason
                self._ctx.inst.output_enabled = False
            else:
                self._segment = following
                following.start()
        points, self._points = self._points, []
        self._ctx.emit = self._points.append
        return points, self.end_reason is not None

    def abort(self) -> None:
        self._ctx.inst.stop_logging()
        self._ctx.inst.output_enabled = False
        if self.end_reason is None:
            self.end_reason = "aborted"
