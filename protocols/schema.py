"""Protocol files: YAML descriptions of an experiment, validated and compiled to step objects.

A protocol file names its steps in order; quantities are written as people write them and
parsed with :func:`drivers.quantities.parse_quantity`::

    name: relaxation-4.8V-24h
    description: charge to 4.8 V, 24 h open circuit, discharge to 1.85 V
    defaults: {record_interval: 10 s}
    steps:
      - charge: {current: 20 mA/g, until: 4.8 V}
      - rest: {duration: 24 h, record_interval: 60 s}
      - discharge: {current: 20 mA/g, until: {voltage: 1.85 V}}

Step kinds (one key per list item):

``cc``
    constant specific current, signed (positive = charge): ``{current: -C/10, until: ...}``.
``charge`` / ``discharge``
    ``cc`` with the sign set by the name; ``current`` is a magnitude.
``cv``
    voltage hold: ``{voltage: 4.8 V, until: {current: 2 mA/g, time: 2 h}}``.
``rest``
    open circuit: ``{duration: 24 h, until: {dvdt: 1 mV/h}}``.
``gitt``
    ``{current: C/10, pulse: 30 min, rest: 8 h, until: 4.8 V, max_pulses: 100}``.
``sweep``
    voltammetry: ``{start: 3 V, vertices: [4.8 V, 1.5 V], rate: 0.05 mV/s, cycles: 2}``
    (cyclic) or ``{start: 3 V, to: 4.8 V, rate: 0.05 mV/s}`` (linear).
``heat``
    oven step: ``{temperature: 140 degC, hold: 24 h, ramp: 5 degC/min, atmosphere: Ar}``.
``xrd``
    ``{every: 10 min}`` scans repeatedly during the next step; ``{scans: 1}`` scans now.
``manual``
    operator instruction: ``{instruction: "Weigh the electrode", record: {mass: mg}}``.
``loop``
    ``{count: 2, steps: [...]}`` repeats electrochemical steps;
    ``{over: {upper: [4.2 V, 4.6 V]}, steps: [...]}`` runs them once per value, with ``$upper``
    replaced by the value (unrolled into plain steps).

``until`` takes a mapping of cut-offs (the first one met ends the step) or one quantity whose
unit says what it is (``4.8 V``, ``200 mAh/g``, ``10 h``). ``cc``/``charge``/``discharge``
accept ``voltage``, ``capacity`` and ``time``; ``cv`` accepts ``current`` and ``time``;
``rest`` accepts ``dvdt``; ``gitt`` accepts ``voltage``.

``parameters: {temperature: 140 degC}`` declares values (with defaults) that steps use as
``$temperature``; a campaign overrides them per condition. A bare number is read in the
field's unit (V, mA/g, mAh/g, degC, mV/s), except durations, which need a unit.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from drivers.quantities import UREG, QuantityError, parse_quantity
from drivers.techniques import (
    GITT,
    ConstantCurrent,
    ConstantVoltage,
    Cutoffs,
    Loop,
    Rest,
    Sweep,
    Technique,
    TechniqueError,
)
from protocols.textfiles import InputFileError, load_yaml, read_text_file, yaml_problem

EXAMPLES_DIR = Path(__file__).parent / "examples"

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


# ---------------------------------------------------------------------------------------------
# quantity fields


def _quantity(
    unit: str,
    what: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    nonzero: bool = False,
    needs_unit: bool = False,
) -> BeforeValidator:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{value!r} is not a {what}")
        if needs_unit and not isinstance(value, str):
            raise ValueError(f"{value!r} has no unit; a {what} needs one")
        try:
            number = parse_quantity(value, unit)
        except QuantityError:
            raise ValueError(f"{value!r} is not a {what}") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite {what}")
        if nonzero and number == 0:
            raise ValueError(f"{value!r}: a {what} must not be zero")
        if lo is not None and (number < lo or (lo_open and number == lo)):
            sign = ">" if lo_open else ">="
            raise ValueError(f"{value!r}: a {what} must be {sign} {lo:g} {unit}")
        if hi is not None and number > hi:
            readable = f" ({hi / (365.25 * 86400):g} years)" if unit == "s" and hi >= 365.25 * 86400 else ""
            raise ValueError(f"{value!r}: a {what} must be <= {hi:g} {unit}{readable}")
        return number

    return BeforeValidator(convert)


_10Y = MAX_DURATION_S
Duration = Annotated[float, _quantity("s", "duration", lo=0, lo_open=True, hi=_10Y, needs_unit=True)]
DurationOrZero = Annotated[float, _quantity("s", "duration", lo=0, hi=_10Y, needs_unit=True)]
RecordInterval = Annotated[
    float, _quantity("s", "record interval", lo=MIN_RECORD_INTERVAL_S, hi=30 * 86400.0, needs_unit=True)
]
Voltage = Annotated[float, _quantity("V", "voltage (V)", lo=0, lo_open=True, hi=6)]
SignedCurrent = Annotated[
    float,
    _quantity(
        "mA/g", "specific current (mA/g or C-rate)", nonzero=True,
        lo=-MAX_SPECIFIC_CURRENT_MA_G, hi=MAX_SPECIFIC_CURRENT_MA_G,
    ),
]  # fmt: skip
CurrentMagnitude = Annotated[
    float,
    _quantity(
        "mA/g", "current magnitude (mA/g or C-rate; the step name sets the sign)",
        lo=0, lo_open=True, hi=MAX_SPECIFIC_CURRENT_MA_G,
    ),
]  # fmt: skip
Capacity = Annotated[float, _quantity("mAh/g", "specific capacity (mAh/g)", lo=0, lo_open=True, hi=10_000)]
DvDt = Annotated[float, _quantity("V/s", "voltage slope (mV/h, V/s)", lo=0, lo_open=True, hi=1.0)]
ScanRate = Annotated[float, _quantity("mV/s", "scan rate (mV/s)", lo=1e-6, hi=10_000)]
Temperature = Annotated[float, _quantity("degC", "temperature (degC)", lo=-50, hi=400)]
RampRate = Annotated[float, _quantity("degC/min", "heating rate (degC/min)", lo=0, lo_open=True, hi=1000)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]

_CUTOFF_UNITS = (("voltage", "V"), ("capacity", "mAh/g"), ("time", "s"), ("current", "mA/g"), ("dvdt", "V/s"))


def _until_shorthand(value: Any) -> Any:
    """``until: 4.8 V`` -> ``{voltage: 4.8 V}`` (kind from the unit)."""
    if isinstance(value, str):
        for name, unit in _CUTOFF_UNITS:
            try:
                parse_quantity(value, unit)
            except QuantityError:
                continue
            if name == "voltage":
                try:
                    float(value)
                    break  # a bare number says nothing about its kind
                except ValueError:
                    pass
            return {name: value}
        raise ValueError(
            f"{value!r} is not a cut-off; write a voltage (4.8 V), a capacity (200 mAh/g), a time (10 h) "
            "or a mapping of them"
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit, so it is not clear which cut-off it is")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class CcUntil(_Strict):
    voltage: Voltage | None = None
    capacity: Capacity | None = None
    time: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> CcUntil:
        if self.voltage is None and self.capacity is None and self.time is None:
            raise ValueError("give at least one cut-off: voltage, capacity or time")
        return self


class CvUntil(_Strict):
    current: CurrentMagnitude | None = None
    time: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> CvUntil:
        if self.current is None and self.time is None:
            raise ValueError("give at least one cut-off: current or time")
        return self


class RestUntil(_Strict):
    dvdt: DvDt


class GittUntil(_Strict):
    voltage: Voltage


class Defaults(_Strict):
    record_interval: RecordInterval | None = None


class _StepModel(_Strict):
    def build(self, defaults: Defaults) -> Step:  # pragma: no cover - overridden
        raise NotImplementedError


def _record(own: float | None, defaults: Defaults, fallback: float) -> float:
    if own is not None:
        return own
    return defaults.record_interval if defaults.record_interval is not None else fallback


class CcStep(_StepModel):
    current: SignedCurrent
    until: Annotated[CcUntil, BeforeValidator(_until_shorthand)]
    record_interval: RecordInterval | None = None

    def signed_current(self) -> float:
        return self.current

    def build(self, defaults: Defaults) -> Step:
        u = self.until
        cutoffs = Cutoffs(voltage_V=u.voltage, capacity_mAh_g=u.capacity, duration_s=u.time)
        return ConstantCurrent(self.signed_current(), cutoffs, _record(self.record_interval, defaults, 10.0))


class ChargeStep(CcStep):
    current: CurrentMagnitude  # type: ignore[assignment]


class DischargeStep(CcStep):
    current: CurrentMagnitude  # type: ignore[assignment]

    def signed_current(self) -> float:
        return -self.current


class CvStep(_StepModel):
    voltage: Voltage
    until: Annotated[CvUntil, BeforeValidator(_until_shorthand)]
    record_interval: RecordInterval | None = None

    def build(self, defaults: Defaults) -> Step:
        cutoffs = Cutoffs(current_mA_g=self.until.current, duration_s=self.until.time)
        return ConstantVoltage(self.voltage, cutoffs, _record(self.record_interval, defaults, 10.0))


class RestStep(_StepModel):
    duration: Duration
    until: Annotated[RestUntil | None, BeforeValidator(_until_shorthand)] = None
    record_interval: RecordInterval | None = None

    def build(self, defaults: Defaults) -> Step:
        dvdt = self.until.dvdt if self.until is not None else None
        return Rest(self.duration, _record(self.record_interval, defaults, 60.0), dvdt)


class GittStep(_StepModel):
    current: SignedCurrent
    pulse: Duration
    rest: Duration
    until: Annotated[GittUntil, BeforeValidator(_until_shorthand)]
    max_pulses: int = Field(default=1000, ge=1, le=MAX_COUNT * 10)
    record_interval: RecordInterval | None = None

    def build(self, defaults: Defaults) -> Step:
        return GITT(
            self.current,
            self.pulse,
            self.rest,
            self.until.voltage,
            self.max_pulses,
            _record(self.record_interval, defaults, 60.0),
        )


class SweepStep(_StepModel):
    start: Voltage
    vertices: tuple[Voltage, Voltage] | None = None
    to: Voltage | None = None
    rate: ScanRate
    cycles: int = Field(default=1, ge=1, le=MAX_COUNT)
    record_interval: RecordInterval | None = None

    @model_validator(mode="after")
    def _shape(self) -> SweepStep:
        if (self.vertices is None) == (self.to is None):
            raise ValueError("give either vertices (cyclic voltammetry) or to (linear sweep), not both")
        return self

    def build(self, defaults: Defaults) -> Step:
        record = _record(self.record_interval, defaults, 10.0)
        if self.vertices is not None:
            v1, v2 = self.vertices
            return Sweep(self.start, v1, v2, self.rate, self.cycles, record)
        assert self.to is not None
        return Sweep(self.start, self.to, self.to, self.rate, 1, record, linear=True)


class HeatStep(_StepModel):
    temperature: Temperature
    hold: DurationOrZero
    ramp: RampRate | None = None
    cool_to: Temperature = 25.0
    atmosphere: Literal["Ar", "N2", "vacuum", "air"] = "Ar"
    log_interval: RecordInterval = 300.0

    def build(self, defaults: Defaults) -> Step:
        return Heat(self.temperature, self.hold, self.ramp, self.cool_to, self.atmosphere, self.log_interval)


class XrdStep(_StepModel):
    every: Duration | None = None
    scans: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    scan_time: Duration = 600.0
    two_theta: tuple[float, float] = (15.0, 70.0)

    @model_validator(mode="after")
    def _shape(self) -> XrdStep:
        if self.every is not None and self.scans is not None:
            raise ValueError("give either every (scans during the next step) or scans (scans now), not both")
        lo, hi = self.two_theta
        if not 0 < lo < hi < 180:
            raise ValueError(
                f"two_theta must be [low, high] degrees with 0 < low < high < 180, got {lo}, {hi}"
            )
        return self

    def build(self, defaults: Defaults) -> Step:
        return Xrd(self.every, self.scans or 1, self.scan_time, self.two_theta)


def _record_fields(value: Any) -> Any:
    if isinstance(value, list):
        return {str(v): "" for v in value}
    return value


def _unit_name(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value:
        try:
            UREG.parse_units(value)
        except Exception:  # pint raises several kinds
            raise ValueError(f"{value!r} is not a unit") from None
    return value


class ManualStep(_StepModel):
    instruction: str = Field(min_length=1)
    record: Annotated[
        dict[str, Annotated[str, BeforeValidator(_unit_name)]], BeforeValidator(_record_fields)
    ] = Field(default_factory=dict)
    duration: DurationOrZero = 0.0

    def build(self, defaults: Defaults) -> Step:
        return Manual(self.instruction, tuple(self.record.items()), self.duration)


STEP_MODELS: dict[str, type[_StepModel]] = {
    "cc": CcStep,
    "charge": ChargeStep,
    "discharge": DischargeStep,
    "cv": CvStep,
    "rest": RestStep,
    "gitt": GittStep,
    "sweep": SweepStep,
    "heat": HeatStep,
    "xrd": XrdStep,
    "manual": ManualStep,
}

STEP_EXAMPLES: dict[str, str] = {
    "cc": "cc: {current: 20 mA/g, until: {voltage: 4.8 V}}",
    "charge": "charge: {current: C/10, until: {voltage: 4.8 V, capacity: 300 mAh/g}}",
    "discharge": "discharge: {current: 20 mA/g, until: 1.85 V}",
    "cv": "cv: {voltage: 4.8 V, until: {current: 2 mA/g, time: 2 h}}",
    "rest": "rest: {duration: 24 h, record_interval: 60 s}",
    "gitt": "gitt: {current: C/10, pulse: 30 min, rest: 8 h, until: 4.8 V}",
    "sweep": "sweep: {start: 3 V, vertices: [4.8 V, 1.5 V], rate: 0.05 mV/s, cycles: 2}",
    "heat": "heat: {temperature: 140 degC, hold: 24 h, ramp: 5 degC/min}",
    "xrd": "xrd: {every: 10 min}",
    "manual": "manual: {instruction: Weigh the electrode, record: {mass: mg}}",
    "loop": "loop: {count: 2, steps: [{charge: {current: 20 mA/g, until: 4.8 V}}]}",
}

FIELD_EXAMPLES: dict[str, str] = {
    "current": "current: 20 mA/g",
    "until": "until: {voltage: 4.8 V}",
    "voltage": "voltage: 4.8 V",
    "capacity": "capacity: 200 mAh/g",
    "time": "time: 10 h",
    "dvdt": "dvdt: 1 mV/h",
    "duration": "duration: 24 h",
    "record_interval": "record_interval: 10 s",
    "pulse": "pulse: 30 min",
    "rest": "rest: 8 h",
    "max_pulses": "max_pulses: 100",
    "start": "start: 3 V",
    "vertices": "vertices: [4.8 V, 1.5 V]",
    "to": "to: 4.8 V",
    "rate": "rate: 0.05 mV/s",
    "cycles": "cycles: 2",
    "temperature": "temperature: 140 degC",
    "hold": "hold: 24 h",
    "ramp": "ramp: 5 degC/min",
    "cool_to": "cool_to: 25 degC",
    "atmosphere": "atmosphere: Ar",
    "log_interval": "log_interval: 5 min",
    "every": "every: 10 min",
    "scans": "scans: 1",
    "scan_time": "scan_time: 10 min",
    "two_theta": "two_theta: [15, 70]",
    "instruction": "instruction: Weigh the electrode",
    "record": "record: {mass: mg}",
    "count": "count: 2",
    "over": "over: {upper: [4.4 V, 4.6 V, 4.8 V]}",
    "steps": "steps: [{rest: {duration: 1 h}}]",
    "name": "name: relaxation-4.8V-24h",
    "description": "description: charge, rest, discharge",
    "defaults": "defaults: {record_interval: 10 s}",
    "parameters": "parameters: {temperature: 140 degC}",
}
_TOP_EXAMPLE = "name: relax, description: charge and rest, steps: [{rest: {duration: 24 h}}]"
_GITT_EXAMPLES = {"current": "current: C/10", "until": "until: {voltage: 4.8 V}"}
_CV_EXAMPLES = {"until": "until: {current: 2 mA/g, time: 2 h}", "current": "current: 2 mA/g"}
_REST_EXAMPLES = {"until": "until: {dvdt: 1 mV/h}"}


def _example_for(kind: str, path: Sequence[str | int]) -> str:
    names = [p for p in path if isinstance(p, str)]
    if not names:
        return STEP_EXAMPLES.get(kind, "")
    key = names[-1]
    special = {"gitt": _GITT_EXAMPLES, "cv": _CV_EXAMPLES, "rest": _REST_EXAMPLES}.get(kind, {})
    if key == "rest" and kind != "gitt":
        return STEP_EXAMPLES["rest"]
    return special.get(key) or FIELD_EXAMPLES.get(key, STEP_EXAMPLES.get(kind, ""))


# ---------------------------------------------------------------------------------------------
# error formatting


def _loc(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _unwrap(annotation: Any) -> Any:
    """The model class inside ``Annotated[X | None, ...]`` (or the annotation itself)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


def _fields_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    current: Any = model
    for part in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        if isinstance(part, int) or part not in current.model_fields:
            break
        current = _unwrap(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _issues_from(
    exc: ValidationError, model: type[BaseModel], file: str, prefix: str, kind: str
) -> list[ProtocolIssue]:
    issues = []
    for err in exc.errors():
        path = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # pydantic names union branches in the location; keep only field names and indices
        path = [p for p in path if isinstance(p, int) or "[" not in p]
        where = _loc([prefix, *path]) if path else prefix
        given = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, path[:-1])
            message = f"{path[-1]!r} is not a field here (fields: {', '.join(allowed)})"
            example = _example_for(kind, path[:-1]) if path[:-1] else STEP_EXAMPLES.get(kind, _TOP_EXAMPLE)
            issues.append(ProtocolIssue(file, where, message, example))
            continue
        if err["type"] == "missing":
            message = "missing"
        elif err["type"] not in ("value_error",) and not isinstance(given, dict | list) and given is not None:
            message = f"{given!r}: {message}"
        issues.append(ProtocolIssue(file, where, message, _example_for(kind, path)))
    return issues


# ---------------------------------------------------------------------------------------------
# parameters ($name substitution)

_WHOLE_VAR = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_INNER_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _substitute(value: Any, env: Mapping[str, Any], missing: list[str]) -> Any:
    """``value`` with every ``$name`` replaced from ``env``; unknown names go to ``missing``."""
    if isinstance(value, str):
        whole = _WHOLE_VAR.match(value.strip())
        if whole:
            name = whole.group(1)
            if name in env:
                return env[name]
            missing.append(name)
            return value

        def inner(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name in env:
                return str(env[name])
            missing.append(name)
            return m.group(0)

        return _INNER_VAR.sub(inner, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, missing) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# compilation


class _Header(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=r"^[^\x00-\x1f]+$")
    description: str = ""
    defaults: Defaults = Defaults()
    parameters: dict[str, Any] = Field(default_factory=dict)
    steps: list[Any] = Field(min_length=1)


@dataclass
class _Context:
    file: str
    defaults: Defaults
    issues: list[ProtocolIssue]

    def add(self, location: str, message: str, example: str = "") -> None:
        issue = ProtocolIssue(self.file, location, message, example)
        if issue not in self.issues:
            self.issues.append(issue)


def _step_kind(raw: Any, where: str, ctx: _Context) -> tuple[str, Any] | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        shown = list(raw) if isinstance(raw, dict) else raw
        ctx.add(
            where,
            f"a step is one of {', '.join(STEP_KINDS)} with its fields, got {shown!r}",
            "- rest: {duration: 24 h}",
        )
        return None
    ((kind, body),) = raw.items()
    if kind not in STEP_KINDS:
        ctx.add(where, f"unknown step {kind!r} (steps: {', '.join(STEP_KINDS)})", "- rest: {duration: 24 h}")
        return None
    if body is None:
        body = {}
    if not isinstance(body, dict):
        ctx.add(
            f"{where}.{kind}", f"expected the step's fields as a mapping, got {body!r}", STEP_EXAMPLES[kind]
        )
        return None
    return kind, body


def _compile_one(raw: Any, where: str, env: Mapping[str, Any], ctx: _Context, in_loop: bool) -> list[Step]:
    parsed = _step_kind(raw, where, ctx)
    if parsed is None:
        return []
    kind, body = parsed
    if kind == "loop":
        if in_loop:
            ctx.add(f"{where}.loop", "loops cannot be nested", STEP_EXAMPLES["loop"])
            return []
        return _compile_loop(body, f"{where}.loop", env, ctx)
    if in_loop and kind not in ELECTROCHEMICAL:
        ctx.add(
            where,
            f"a loop holds only electrochemical steps ({', '.join(ELECTROCHEMICAL)}); {kind!r} is not one",
            STEP_EXAMPLES["loop"],
        )
        return []
    missing: list[str] = []
    body = _substitute(body, env, missing)
    for name in dict.fromkeys(missing):
        ctx.add(
            f"{where}.{kind}",
            f"${name} is not a parameter of this protocol",
            "parameters: {temperature: 140 degC}",
        )
    if missing:
        return []
    model = STEP_MODELS[kind]
    try:
        validated = model.model_validate(body)
    except ValidationError as exc:
        for issue in _issues_from(exc, model, ctx.file, f"{where}.{kind}", kind):
            ctx.add(issue.location, issue.message, issue.example)
        return []
    try:
        return [validated.build(ctx.defaults)]
    except TechniqueError as exc:
        ctx.add(f"{where}.{kind}", str(exc).split(". A valid example")[0], STEP_EXAMPLES[kind])
        return []


class _LoopHead(_Strict):
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    over: dict[str, list[Any]] | None = None
    steps: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> _LoopHead:
        if (self.count is None) == (self.over is None):
            raise ValueError("give either count (repeat) or over (one pass per value), not both")
        if self.over is not None:
            lengths = {len(v) for v in self.over.values()}
            if not self.over or len(lengths) != 1 or 0 in lengths:
                raise ValueError("over needs lists of values of the same, non-zero length")
        return self


def _compile_loop(body: dict[str, Any], where: str, env: Mapping[str, Any], ctx: _Context) -> list[Step]:
    try:
        head = _LoopHead.model_validate(body)
    except ValidationError as exc:
        for issue in _issues_from(exc, _LoopHead, ctx.file, where, "loop"):
            ctx.add(issue.location, issue.message, issue.example)
        return []
    before = len(ctx.issues)
    if head.count is not None:
        inner: list[Technique] = []
        for j, raw in enumerate(head.steps):
            inner.extend(
                typing.cast(list[Technique], _compile_one(raw, f"{where}.steps[{j}]", env, ctx, True))
            )
        if len(ctx.issues) > before:
            return []
        return [Loop(tuple(inner), head.count)]
    assert head.over is not None
    unrolled: list[Step] = []
    n = len(next(iter(head.over.values())))
    for k in range(n):
        local = {**env, **{name: values[k] for name, values in head.over.items()}}
        for j, raw in enumerate(head.steps):
            unrolled.extend(_compile_one(raw, f"{where}.steps[{j}]", local, ctx, True))
    return [] if len(ctx.issues) > before else unrolled


def _check_sequence(steps_raw: list[Any], compiled: list[list[Step]], ctx: _Context) -> None:
    """Cross-step rules: an ``xrd`` with ``every`` needs a next step that takes time."""
    for i, group in enumerate(compiled):
        if len(group) == 1 and isinstance(group[0], Xrd) and group[0].during_next_step:
            if i + 1 >= len(steps_raw):
                ctx.add(
                    f"steps[{i}].xrd.every",
                    "xrd with every runs during the next step, but none follows",
                    "xrd: {scans: 1}",
                )
                continue
            following = steps_raw[i + 1]
            kind = next(iter(following)) if isinstance(following, dict) and len(following) == 1 else None
            if kind in ("xrd", "manual"):
                ctx.add(
                    f"steps[{i}].xrd.every",
                    f"xrd with every runs during the next step, which must not be {kind!r}",
                    "xrd: {every: 10 min} followed by rest: {duration: 24 h}",
                )


def _location_key(issue: ProtocolIssue) -> tuple[bool, list[tuple[int, int | str]]]:
    """Sort key: file order (``steps[10]`` after ``steps[9]``, top-level fields first)."""
    parts = re.split(r"(\d+)", issue.location)
    return issue.location.startswith("steps["), [(0, int(p)) if p.isdigit() else (1, p) for p in parts if p]


def _compile(
    data: Any, file: str, parameters: Mapping[str, Any] | None, source: Path | None
) -> tuple[Protocol | None, list[ProtocolIssue]]:
    issues: list[ProtocolIssue] = []
    if not isinstance(data, dict):
        issues.append(
            ProtocolIssue(
                file,
                "",
                "expected a mapping with name and steps at the top level",
                "name: rest-1h\nsteps:\n  - rest: {duration: 1 h}",
            )
        )
        return None, issues
    try:
        header = _Header.model_validate(data)
    except ValidationError as exc:
        head_issues = _issues_from(exc, _Header, file, "", "")
        issues.extend(head_issues)
        header = None
    steps_raw: list[Any] = data["steps"] if isinstance(data.get("steps"), list) else []
    declared = dict(data.get("parameters") or {}) if isinstance(data.get("parameters"), dict) else {}
    for name in parameters or {}:
        if name not in declared:
            known = ", ".join(declared) or "none"
            issues.append(
                ProtocolIssue(
                    file,
                    "parameters",
                    f"unknown parameter {name!r} (declared: {known})",
                    "parameters: {temperature: 140 degC}",
                )
            )
    env = {**declared, **(parameters or {})}
    defaults = header.defaults if header is not None else Defaults()
    ctx = _Context(file, defaults, issues)
    compiled = [_compile_one(raw, f"steps[{i}]", env, ctx, False) for i, raw in enumerate(steps_raw)]
    _check_sequence(steps_raw, compiled, ctx)
    issues.sort(key=_location_key)
    if issues or header is None:
        return None, issues
    steps = tuple(s for group in compiled for s in group)
    if len(steps) > MAX_STEPS:
        issue = ProtocolIssue(
            file,
            "steps",
            f"expands to {len(steps)} steps, more than {MAX_STEPS}",
            "loop: {count: 10, steps: [...]}",
        )
        return None, [issue]
    description = _substitute(header.description, env, [])
    return Protocol(header.name, description, steps, source, env), issues


def _read(path: Path) -> tuple[Any, list[ProtocolIssue]]:
    file = str(path)
    try:
        text = read_text_file(path, "protocol file")
    except InputFileError as exc:
        return None, [ProtocolIssue(file, "", exc.reason)]
    try:
        return load_yaml(text), []
    except yaml.YAMLError as exc:
        where, message = yaml_problem(exc)
        return None, [ProtocolIssue(file, where, message)]


def resolve_protocol_path(name: str | Path, base_dir: str | Path | None = None) -> Path:
    """A protocol file path: as given, relative to ``base_dir``, or a built-in example name.

    Parameters
    ----------
    name : str or Path
        A path (absolute, or relative to ``base_dir`` or the working directory) or the name
        of a file in ``protocols/examples`` with or without ``.yaml``.
    base_dir : str or Path, optional
        Directory that relative paths are taken from first (a campaign file's folder).

    Returns
    -------
    Path
        The first candidate that exists, else the path as given.
    """
    path = Path(name)
    candidates = []
    if base_dir is not None and not path.is_absolute():
        candidates.append(Path(base_dir) / path)
    candidates += [path, EXAMPLES_DIR / path.name, EXAMPLES_DIR / f"{path.name}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return path


def list_examples() -> list[str]:
    """Names of the built-in example protocols (``protocols/examples/*.yaml``)."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml"))


def parse_protocol(
    data: Any, source: str = "<memory>", parameters: Mapping[str, Any] | None = None
) -> Protocol:
    """Validate and compile protocol data already read from YAML.

    Raises
    ------
    ProtocolError
        With every issue found.
    """
    protocol, issues = _compile(data, source, parameters, None)
    if protocol is None:
        raise ProtocolError(issues)
    return protocol


def validate_protocol_file(
    path: str | Path, parameters: Mapping[str, Any] | None = None
) -> list[ProtocolIssue]:
    """Every problem in a protocol file, each with its location and a valid example.

    Parameters
    ----------
    path : str or Path
        The protocol file (or a built-in example name).
    parameters : mapping, optional
        Values for the protocol's declared parameters (as a campaign condition gives them).

    Returns
    -------
    list of ProtocolIssue
        Empty when the file is valid.
    """
    resolved = resolve_protocol_path(path)
    data, issues = _read(resolved)
    if issues:
        return issues
    return _compile(data, str(path), parameters, resolved)[1]


def load_protocol(path: str | Path, parameters: Mapping[str, Any] | None = None) -> Protocol:
    """Read, validate and compile a protocol file.

    Parameters
    ----------
    path : str or Path
        The protocol file, or the name of a built-in example (``relaxation-4.8V-24h``).
    parameters : mapping, optional
        Values overriding the protocol's declared parameters, e.g. ``{"temperature": "110 degC"}``.

    Returns
    -------
    Protocol
        Its steps are :mod:`drivers.techniques` objects (``Loop`` included) and
        :class:`Heat`, :class:`Xrd`, :class:`Manual` steps.

    Raises
    ------
    ProtocolError
        With every issue found (``.issues``), e.g.
        ``relax.yaml: steps[1].rest.duration: '24 hours!' is not a duration (example: duration: 24 h)``.
    """
    resolved = resolve_protocol_path(path)
    data, issues = _read(resolved)
    if issues:
        raise ProtocolError(issues)
    protocol, issues = _compile(data, str(path), parameters, resolved)
    if protocol is None:
        raise ProtocolError(issues)
    return protocol


__all__ = [
    "ELECTROCHEMICAL",
    "EXAMPLES_DIR",
    "STEP_KINDS",
    "Heat",
    "Manual",
    "Protocol",
    "ProtocolError",
    "ProtocolIssue",
    "Step",
    "Xrd",
    "list_examples",
    "load_protocol",
    "parse_protocol",
    "resolve_protocol_path",
    "validate_protocol_file",
]
