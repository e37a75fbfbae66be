"""Protocol steps the orchestrator runs itself (heat, XRD, manual), the step union, the
bounds of a protocol file, and the compiled :class:`Protocol` with its errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drivers.techniques import (
    Loop,
    Technique,
)

# ---------------------------------------------------------------------------------------------
# bounds: what no experiment needs is refused before anything moves

#: Longest duration of any step, cut-off or hold: 10 years.
MAX_DURATION_S = 10 * 365.25 * 86400.0
#: Shortest record interval in a protocol file; the instrument may need more (checked with the lab).
MIN_RECORD_INTERVAL_S = 1e-3
#: Largest specific current: 500C (100 A/g).
MAX_SPECIFIC_CURRENT_MA_G = 1e5
#: Largest loop count, GITT pulse count, sweep cycle count and scan count.
MAX_COUNT = 10_000
#: Most steps a protocol may expand to (loops over values unrolled).
MAX_STEPS = 10_000
#: Longest protocol name.
MAX_NAME = 200

# ---------------------------------------------------------------------------------------------
# relaxlab-level steps (executed by the orchestrator, not by a potentiostat)


@dataclass(frozen=True)
class Heat:
    """Heat in an oven: ramp to ``temperature_C``, hold ``hold_s``, cool to ``cool_to_C``.

    ``ramp_C_min`` ``None`` means as fast as the oven goes; the temperature is logged every
    ``log_interval_s`` (5 min by default) during the hold.
    """

    temperature_C: float
    hold_s: float
    ramp_C_min: float | None = None
    cool_to_C: float = 25.0
    atmosphere: str = "Ar"
    log_interval_s: float = 300.0
    kind: Literal["heat"] = field(default="heat", init=False)


@dataclass(frozen=True)
class Xrd:
    """X-ray diffraction: every ``every_s`` during the next step, or ``scans`` scans now."""

    every_s: float | None = None
    scans: int = 1
    scan_time_s: float = 600.0
    two_theta_deg: tuple[float, float] = (15.0, 70.0)
    kind: Literal["xrd"] = field(default="xrd", init=False)

    @property
    def during_next_step(self) -> bool:
        return self.every_s is not None


@dataclass(frozen=True)
class Manual:
    """An operator instruction; ``record`` lists (name, unit) values to enter when done."""

    instruction: str
    record: tuple[tuple[str, str], ...] = ()
    duration_s: float = 0.0
    kind: Literal["manual"] = field(default="manual", init=False)


Step = Technique | Loop | Heat | Xrd | Manual
ELECTROCHEMICAL = ("cc", "charge", "discharge", "cv", "rest", "gitt", "sweep")
STEP_KINDS = (*ELECTROCHEMICAL, "heat", "xrd", "manual", "loop")


@dataclass(frozen=True)
class ProtocolIssue:
    """One problem in a protocol file: where it is, what is wrong and a valid example."""

    file: str
    location: str
    message: str
    example: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}: " if self.location else f"{self.file}: "
        tail = f" (example: {self.example})" if self.example else ""
        return f"{where}{self.message}{tail}"


class ProtocolError(ValueError):
    """A protocol file is invalid; ``issues`` holds every problem found."""

    def __init__(self, issues: Sequence[ProtocolIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class Protocol:
    """A compiled protocol: its steps as technique objects or relaxlab-level steps."""

    name: str
    description: str
    steps: tuple[Step, ...]
    source: Path | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def step_kinds(self) -> list[str]:
        return [s.kind for s in self.steps]
