"""The technique set every potentiostat driver runs, as small immutable value objects.

Each technique validates itself at construction and raises :class:`TechniqueError` with a
valid example. Quantities are SI-ish plain floats with the unit in the name; specific
quantities are per gram of active material (``mA/g``, ``mAh/g``). Sign convention:
positive current charges the working electrode (oxidation).

Drivers either run a technique host-side (Keithley 2450: the host polls and ends the step)
or compile it to an on-instrument program (EmStat4 MethodSCRIPT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal


class TechniqueError(ValueError):
    """A technique was given an impossible value. The message shows a valid example."""


def _check(cond: bool, message: str, example: str) -> None:
    if not cond:
        raise TechniqueError(f"{message}. A valid example: {example}")


def _positive(value: float | None, name: str, example: str) -> None:
    if value is not None:
        _check(math.isfinite(value) and value > 0, f"{name} must be > 0, got {value!r}", example)


def _volts(value: float, name: str, example: str) -> None:
    _check(math.isfinite(value) and 0.0 <= value <= 6.0, f"{name} must be within 0-6 V, got {value!r}", example)


def _current(value: float, example: str) -> None:
    _check(
        math.isfinite(value) and value != 0,
        f"current_mA_g must be finite and non-zero (positive = charge), got {value!r}",
        example,
    )


def _any_cutoff(cutoffs: Cutoffs, names: tuple[str, ...], step: str, example: str) -> None:
    given = any(getattr(cutoffs, name) is not None for name in names)
    _check(given, f"{step} needs a cut-off: one of {', '.join(names)}", example)


@dataclass(frozen=True)
class Cutoffs:
    """Stop conditions; the first one met ends the step. ``None`` means not used.

    ``voltage_V`` is reached from below on charge (current > 0) and from above on
    discharge. ``capacity_mAh_g`` is the magnitude of charge passed within the step.
    ``dvdt_V_s`` ends a rest when |dV/dt| falls below it.
    """

    voltage_V: float | None = None
    capacity_mAh_g: float | None = None
    duration_s: float | None = None
    current_mA_g: float | None = None
    dvdt_V_s: float | None = None

    def __post_init__(self) -> None:
        ex = "Cutoffs(voltage_V=4.8, capacity_mAh_g=300, duration_s=72000)"
        if self.voltage_V is not None:
            _volts(self.voltage_V, "voltage_V", ex)
        for name in ("capacity_mAh_g", "duration_s", "current_mA_g", "dvdt_V_s"):
            _positive(getattr(self, name), name, ex)

    def any(self) -> bool:
        return any(
            v is not None
            for v in (
                self.voltage_V,
                self.capacity_mAh_g,
                self.duration_s,
                self.current_mA_g,
                self.dvdt_V_s,
            )
        )


@dataclass(frozen=True)
class ConstantCurrent:
    """Constant specific current until the first cut-off (voltage, capacity or time)."""

    current_mA_g: float
    cutoffs: Cutoffs
    record_interval_s: float = 10.0
    kind: Literal["cc"] = field(default="cc", init=False)

    def __post_init__(self) -> None:
        ex = "ConstantCurrent(current_mA_g=20, cutoffs=Cutoffs(voltage_V=4.8))"
        _current(self.current_mA_g, ex)
        _any_cutoff(self.cutoffs, ("voltage_V", "capacity_mAh_g", "duration_s"), "a constant-current step", ex)
        _positive(self.record_interval_s, "record_interval_s", ex)

    @property
    def charging(self) -> bool:
        return self.current_mA_g > 0


@dataclass(frozen=True)
class ConstantVoltage:
    """Hold a voltage until |specific current| falls below a value or a time passes."""

    voltage_V: float
    cutoffs: Cutoffs
    record_interval_s: float = 10.0
    kind: Literal["cv"] = field(default="cv", init=False)

    def __post_init__(self) -> None:
        ex = "ConstantVoltage(voltage_V=4.8, cutoffs=Cutoffs(current_mA_g=2, duration_s=7200))"
        _volts(self.voltage_V, "voltage_V", ex)
        _any_cutoff(self.cutoffs, ("current_mA_g", "duration_s"), "a voltage hold", ex)
        _positive(self.record_interval_s, "record_interval_s", ex)


@dataclass(frozen=True)
class Rest:
    """Open circuit for a duration, recording every ``record_interval_s``.

    Optionally ends early when |dV/dt| falls below ``cutoffs.dvdt_V_s``.
    """

    duration_s: float
    record_interval_s: float = 60.0
    dvdt_V_s: float | None = None
    kind: Literal["rest"] = field(default="rest", init=False)

    def __post_init__(self) -> None:
        ex = "Rest(duration_s=86400, record_interval_s=60)"
        _positive(self.duration_s, "duration_s", ex)
        _positive(self.record_interval_s, "record_interval_s", ex)
        _positive(self.dvdt_V_s, "dvdt_V_s", ex)


@dataclass(frozen=True)
class Sweep:
    """Linear (cycles=0.5 semantics: one leg) or cyclic voltammetry between two vertices."""

    start_V: float
    vertex1_V: float
    vertex2_V: float
    scan_rate_mV_s: float
    cycles: int = 1
    record_interval_s: float = 10.0
    linear: bool = False
    kind: Literal["sweep"] = field(default="sweep", init=False)

    def __post_init__(self) -> None:
        ex = "Sweep(start_V=3.0, vertex1_V=4.8, vertex2_V=1.5, scan_rate_mV_s=0.05, cycles=2)"
        for name in ("start_V", "vertex1_V", "vertex2_V"):
            _volts(getattr(self, name), name, ex)
        _positive(self.scan_rate_mV_s, "scan_rate_mV_s", ex)
        _check(self.cycles >= 1, f"cycles must be >= 1, got {self.cycles}", ex)
        _positive(self.record_interval_s, "record_interval_s", ex)


@dataclass(frozen=True)
class GITT:
    """Current pulses with rests, repeated until the voltage cut-off (or ``max_pulses``)."""

    current_mA_g: float
    pulse_s: float
    rest_s: float
    cutoff_voltage_V: float
    max_pulses: int = 1000
    record_interval_s: float = 60.0
    kind: Literal["gitt"] = field(default="gitt", init=False)

    def __post_init__(self) -> None:
        ex = "GITT(current_mA_g=20, pulse_s=1800, rest_s=28800, cutoff_voltage_V=4.8)"
        _current(self.current_mA_g, ex)
        _positive(self.pulse_s, "pulse_s", ex)
        _positive(self.rest_s, "rest_s", ex)
        _volts(self.cutoff_voltage_V, "cutoff_voltage_V", ex)
        _check(self.max_pulses >= 1, "max_pulses must be >= 1", ex)
        _positive(self.record_interval_s, "record_interval_s", ex)


Technique = ConstantCurrent | ConstantVoltage | Rest | Sweep | GITT


@dataclass(frozen=True)
class Loop:
    """Repeat ``steps`` ``count`` times (or until a step's cut-off says ``until``)."""

    steps: tuple[Technique, ...]
    count: int
    kind: Literal["loop"] = field(default="loop", init=False)

    def __post_init__(self) -> None:
        ex = "Loop(steps=(ConstantCurrent(...), Rest(...)), count=10)"
        _check(len(self.steps) > 0, "a loop needs at least one step", ex)
        _check(self.count >= 1, f"count must be >= 1, got {self.count}", ex)


def technique_from_dict(data: dict[str, object]) -> Technique | Loop:
    """Rebuild a technique from its plain-data form (``dataclasses.asdict``, as stored in a run's
    start document)."""
    fields = {k: v for k, v in data.items() if k != "kind"}
    kind = data.get("kind")
    if kind == "cc":
        cutoffs = Cutoffs(**fields.pop("cutoffs"))  # type: ignore[arg-type]
        return ConstantCurrent(cutoffs=cutoffs, **fields)  # type: ignore[arg-type]
    if kind == "cv":
        cutoffs = Cutoffs(**fields.pop("cutoffs"))  # type: ignore[arg-type]
        return ConstantVoltage(cutoffs=cutoffs, **fields)  # type: ignore[arg-type]
    if kind == "loop":
        steps = tuple(technique_from_dict(s) for s in fields.pop("steps"))  # type: ignore[attr-defined]
        return Loop(steps=steps, **fields)  # type: ignore[arg-type]
    classes: dict[object, type] = {"rest": Rest, "sweep": Sweep, "gitt": GITT}
    if kind not in classes:
        raise TechniqueError(f"unknown technique kind {kind!r}. A valid example: {{'kind': 'rest', ...}}")
    return classes[kind](**fields)  # type: ignore[no-any-return]
