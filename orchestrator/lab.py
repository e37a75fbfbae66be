"""Lab files: which instruments exist, how to reach them, and which cell sits on which channel.

A lab file is TOML or YAML. It is validated as a whole before anything touches an
instrument; a bad file raises :class:`LabFileError` with one message naming the file, the
field and what is wrong. Example (TOML)::

    [lab]
    name = "bench-2"

    [instruments.smu1]
    driver = "keithley2450"
    resource = "TCPIP0::192.168.1.20::inst0::INSTR"   # or USB0::0x05E6::0x2450::..., GPIB0::18::INSTR
    poll_interval = "1 s"

    [[cells]]
    name = "A1"
    instrument = "smu1"
    sample = "LTNO-x04-batch3"
    material = "x04"
    active_mass = "7 mg"

An oven is an instrument with ``driver = "eurotherm"`` (a Eurotherm 2400/3200 on Modbus RTU;
``resource`` is its serial port or a pyserial URL, ``address`` its slave address); campaigns
that heat powder portions share the lab's ovens::

    [instruments.oven1]
    driver = "eurotherm"
    resource = "/dev/ttyUSB0"
    address = 1
    over_temperature = "250 degC"

An instrument with ``simulated = true`` is served by relaxlab's simulators: with
``resource = "sim"`` in this process, or with a TCP resource
(``TCPIP0::127.0.0.1::5025::SOCKET``) by ``relaxlab sim serve``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from orchestrator.units import QuantityError, parse_quantity

DRIVERS = ("keithley2450", "emstat4", "eurotherm")
POTENTIOSTATS = ("keithley2450", "emstat4")
#: Serial line speed when the lab file gives none.
DEFAULT_BAUDRATE = {"keithley2450": 9600, "emstat4": 921600, "eurotherm": 19200}


class LabFileError(ValueError):
    """The lab file is invalid; the message names the file and the field."""


def _quantity(unit: str) -> BeforeValidator:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_quantity(value, unit)
            except QuantityError as exc:
                raise ValueError(str(exc)) from exc
        return value

    return BeforeValidator(convert)


Seconds = Annotated[float, _quantity("s"), Field(gt=0)]
Grams = Annotated[float, _quantity("g"), Field(gt=0, le=10)]
Volts = Annotated[float, _quantity("V"), Field(ge=0, le=10)]
Celsius = Annotated[float, _quantity("degC"), Field(ge=-50, le=400)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabInfo(_Strict):
    name: str = "lab"
    seed: int = 0
    data_dir: str | None = None


class InstrumentConfig(_Strict):
    driver: Literal["keithley2450", "emstat4", "eurotherm"]
    resource: str = Field(
        description="'sim', a VISA resource string or a pyserial URL", examples=["GPIB0::18::INSTR"]
    )
    simulated: bool = False
    poll_interval: Seconds = 1.0
    timeout: Seconds = 5.0
    compliance: Volts = 5.0
    baudrate: int | None = Field(
        default=None, gt=0, description="serial ports only (default: EmStat4 921600, Eurotherm 19200)"
    )
    model: Literal["HR", "LR"] = "HR"
    sample_interval: Seconds = 1.0
    # ovens (driver = "eurotherm")
    address: int = Field(default=1, ge=1, le=247, description="Modbus slave address")
    series: Literal["2400", "3200"] = "2400"
    over_temperature: Celsius = 250.0

    @property
    def serial_baudrate(self) -> int:
        return self.baudrate or DEFAULT_BAUDRATE[self.driver]

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


class CellConfig(_Strict):
    name: str
    instrument: str
    channel: int = Field(default=1, ge=1, le=64)
    sample: str = "sample"
    material: str = "x04"
    active_mass: Grams
    voltage_max: Volts = 4.95
    voltage_min: Volts = 1.0
    temperature: Celsius = 25.0

    @model_validator(mode="after")
    def _limits(self) -> CellConfig:
        if not self.voltage_min < self.voltage_max:
            raise ValueError(
                f"voltage_min ({self.voltage_min} V) must be below voltage_max ({self.voltage_max} V)"
            )
        return self


class Lab(_Strict):
    lab: LabInfo = LabInfo()
    instruments: dict[str, InstrumentConfig]
    cells: list[CellConfig] = Field(min_length=1)
    source: str = Field(default="<memory>", exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Lab:
        names = set()
        used: dict[tuple[str, int], str] = {}
        for index, cell in enumerate(self.cells):
            if cell.name in names:
                raise ValueError(f"cells[{index}].name: duplicate cell name {cell.name!r}")
            names.add(cell.name)
            if cell.instrument not in self.instruments:
                raise ValueError(
                    f"cells[{index}].instrument: no instrument named {cell.instrument!r} "
                    f"(defined: {', '.join(sorted(self.instruments)) or 'none'})"
                )
            if self.instruments[cell.instrument].driver not in POTENTIOSTATS:
                raise ValueError(
                    f"cells[{index}].instrument: {cell.instrument!r} is an oven "
                    f"({self.instruments[cell.instrument].driver}), not a potentiostat"
                )
            key = (cell.instrument, cell.channel)
            if key in used:
                raise ValueError(
                    f"cells[{index}]: channel {cell.channel} of {cell.instrument!r} "
                    f"already holds cell {used[key]!r}"
                )
            used[key] = cell.name
        return self

    @property
    def ovens(self) -> list[str]:
        """Names of the lab's ovens (Eurotherm controllers), in file order."""
        return [name for name, inst in self.instruments.items() if inst.driver == "eurotherm"]

    @property
    def simulated(self) -> bool:
        return any(i.simulated for i in self.instruments.values())

    def cell(self, name: str | None) -> CellConfig:
        if name is None:
            return self.cells[0]
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise LabFileError(f"{self.source}: no cell named {name!r}")


def _format_error(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (given {given!r})"
        lines.append(f"  {where}: {message}{shown}")
    return f"lab file {source} is invalid:\n" + "\n".join(lines)


def parse_lab(data: dict[str, Any], source: str = "<memory>") -> Lab:
    try:
        return Lab.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise LabFileError(_format_error(source, exc)) from None


def load_lab(path: str | Path) -> Lab:
    """Read and validate a lab file (``.toml``, ``.yaml`` or ``.yml``)."""
    path = Path(path)
    if not path.exists():
        builtin = Path(__file__).parent / "labs" / f"{path.name}.toml"
        if builtin.exists():
            path = builtin
        else:
            raise LabFileError(f"lab file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise LabFileError(f"lab file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise LabFileError(f"lab file {path}: expected a table at the top level")
    return parse_lab(data, str(path))
