"""The lab-file entry of an instrument: fields every model shares, and the quantity types.

Each instrument model subclasses :class:`InstrumentConfig` with its own fields (its
``driver`` a one-value ``Literal``) and registers it (:mod:`drivers.registry`); the lab file
(:mod:`orchestrator.lab`) validates an ``[instruments.NAME]`` table with the class registered
for its ``driver``. Quantities are written as people write them (``"1 s"``, ``"5 V"``,
``"250 degC"``) and parsed by :mod:`drivers.quantities`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from drivers.quantities import QuantityError, parse_quantity


def quantity(unit: str) -> BeforeValidator:
    """A pydantic validator reading ``"7 mg"``-style text (or a bare number) in ``unit``."""

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = parse_quantity(value, unit)
            except QuantityError as exc:
                raise ValueError(str(exc)) from exc
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number of {unit}")
        return value

    return BeforeValidator(convert)


Seconds = Annotated[float, quantity("s"), Field(gt=0)]
Interval = Annotated[float, quantity("s"), Field(ge=0.01, le=3600.0)]
Timeout = Annotated[float, quantity("s"), Field(ge=0.05, le=600.0)]
Grams = Annotated[float, quantity("g"), Field(ge=1e-6, le=10)]
Volts = Annotated[float, quantity("V"), Field(ge=0, le=10)]
Celsius = Annotated[float, quantity("degC"), Field(ge=-50, le=400)]
TEXT = r"^[^\x00-\x1f]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class InstrumentConfig(Strict):
    """Fields of every ``[instruments.NAME]`` table; a model's subclass adds its own."""

    #: Serial line speed when the lab file gives none (models on serial lines override it).
    default_baudrate: ClassVar[int] = 9600

    driver: str
    resource: str = Field(
        description="'sim', a VISA resource string or a pyserial URL", examples=["GPIB0::18::INSTR"],
        min_length=1, max_length=512, pattern=TEXT,
    )  # fmt: skip
    simulated: bool = False
    poll_interval: Interval = 1.0
    timeout: Timeout = 5.0
    baudrate: int | None = Field(
        default=None, ge=300, le=4_000_000,
        description="serial ports only (default: the model's, e.g. EmStat4 921600, Eurotherm 19200)",
    )  # fmt: skip

    @property
    def serial_baudrate(self) -> int:
        return self.baudrate or self.default_baudrate

    @model_validator(mode="after")
    def _sim_resource(self) -> InstrumentConfig:
        if self.resource == "sim" and not self.simulated:
            raise ValueError("resource 'sim' needs simulated = true")
        if self.simulated and self.resource != "sim" and "127.0.0.1" not in self.resource:
            raise ValueError(
                f"a simulated instrument is reached in-process (resource = 'sim') or on 127.0.0.1, "
                f"not at {self.resource!r}"
            )
        return self


class OvenConfig(InstrumentConfig):
    """Fields of every oven's table: the over-temperature limit the ``Oven`` device watches, and
    whether the controller enforces it itself (for a real oven the lab file must say so: it
    depends on how the unit is wired, which no command can check)."""

    over_temperature: Celsius = 250.0
    instrument_limit: bool = Field(
        description=(
            "the controller enforces over_temperature itself, host or no host: it is written to "
            "the controller's high alarm and read back before heating (Eurotherm: alarm 1, "
            "register 13), which must be commissioned as an absolute high alarm, latching, its "
            "relay wired to cut the heater's contactor; false: the host's watch is the only limit. "
            "Required for a real oven; a simulated one models the wiring (default true)"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _say_how_it_is_wired(cls, data: Any) -> Any:
        if isinstance(data, dict) and "instrument_limit" not in data:
            if data.get("simulated") is True:
                return {**data, "instrument_limit": True}
            raise ValueError(
                "instrument_limit is required for a real oven: say whether the controller itself "
                "cuts the heater above over_temperature, e.g. instrument_limit = true (alarm 1 "
                "commissioned as an absolute high alarm, latching, its relay wired to drop the "
                "heater's contactor) or instrument_limit = false (the host's watch is then the "
                "only limit)"
            )
        return data
