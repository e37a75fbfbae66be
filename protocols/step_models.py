"""The pydantic models of a protocol file's steps, with their quantity types and cut-offs."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from drivers.quantities import QuantityError, check_unit, parse_quantity
from drivers.techniques import (
    GITT,
    ConstantCurrent,
    ConstantVoltage,
    Cutoffs,
    Rest,
    Sweep,
)
from protocols.steps import (
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_SPECIFIC_CURRENT_MA_G,
    MIN_RECORD_INTERVAL_S,
    Heat,
    Manual,
    Step,
    Xrd,
)

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
            check_unit(value)
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
