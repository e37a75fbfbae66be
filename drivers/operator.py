"""Devices for what is not an instrument: the operator, and waiting on the clock.

:class:`Operator` turns an instruction ("wash, dry and weigh the electrode") into a Status
that finishes when the operator says it is done, and records what they entered (e.g. the
weighed mass) as readings. Who answers is pluggable: a person at a prompt in a real lab, a
simulated operator in the simulated lab (which also carries out the physical action, e.g.
building a fresh cell from a relaxed powder).

:class:`Timer` is a Status that finishes after a duration of clock time: a wait that blocks
nothing else (one cell rests while another is being charged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ophyd.status import Status

from drivers.clock import Clock


@dataclass(frozen=True)
class OperatorRequest:
    """One instruction for one job (a cell or a powder portion)."""

    job: str
    instruction: str
    record: tuple[tuple[str, str], ...] = ()
    duration_s: float = 0.0
    context: Mapping[str, Any] = field(default_factory=dict)


#: Answers a request: calls ``done(values)`` when the operator has finished (values keyed by
#: the requested record names, in the requested units), or ``failed(message)``.
Responder = Callable[[OperatorRequest, Callable[[dict[str, float]], None], Callable[[str], None]], None]


class Operator:
    """The person (or simulated person) who carries out manual steps, one at a time each.

    ``set(request)`` returns a Status; when it finishes, ``entered[job]`` holds the values the
    operator recorded. The log of every request and answer is in ``log``.
    """

    def __init__(self, clock: Clock, responder: Responder, name: str = "operator") -> None:
        self.clock = clock
        self.responder = responder
        self.name = name
        self.entered: dict[str, dict[str, float]] = {}
        self.log: list[dict[str, Any]] = []

    parent = None

    def set(self, request: OperatorRequest) -> Status:
        """Ask for ``request``; the Status finishes when the operator has done it."""
        status = Status(obj=self)
        asked = self.clock.now()

        def done(values: dict[str, float]) -> None:
            missing = [name for name, _ in request.record if name not in values]
            if missing:
                failed(f"operator did not record {', '.join(missing)}")
                return
            self.entered[request.job] = dict(values)
            self.log.append(
                {"job": request.job, "instruction": request.instruction, "asked_s": asked,
                 "done_s": self.clock.now(), "values": dict(values)}
            )  # fmt: skip
            self.clock.call_later(0.0, lambda: status.done or status.set_finished())

        def failed(message: str) -> None:
            error = RuntimeError(f"{self.name}: {request.job}: {message}")
            self.clock.call_later(0.0, lambda: status.done or status.set_exception(error))

        self.responder(request, done, failed)
        return status

    def stop(self, *, success: bool = False) -> None:
        """Nothing to make safe: a person finishes what they are doing."""


class Timer:
    """Statuses that finish after a duration of clock time."""

    def __init__(self, clock: Clock, name: str = "timer") -> None:
        self.clock = clock
        self.name = name

    parent = None

    def set(self, duration_s: float) -> Status:
        """A Status finishing ``duration_s`` seconds of clock time from now."""
        if duration_s < 0:
            raise ValueError(f"{self.name}: duration_s must be >= 0, got {duration_s}")
        status = Status(obj=self)
        self.clock.call_later(duration_s, lambda: status.done or status.set_finished())
        return status

    def read(self) -> dict[str, dict[str, Any]]:
        """The clock's time now, so a plan learns it through a 'read' message."""
        now = self.clock.now()
        return {self.name: {"value": now, "timestamp": now}}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {self.name: {"source": f"{self.name}:clock", "dtype": "number", "shape": [], "units": "s"}}

    def stop(self, *, success: bool = False) -> None:
        pass
