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
    instrument_limit = true   # alarm 1 wired to cut the heater (required for a real oven)

The ``driver`` names a model of the instrument registry (:mod:`drivers.registry`); the table's
other fields are that model's lab-file config (e.g. :class:`drivers.keithley2450.Keithley2450Config`).

An instrument with ``simulated = true`` is served by relaxlab's simulators: with
``resource = "sim"`` in this process, or with a TCP resource
(``TCPIP0::127.0.0.1::5025::SOCKET``) by ``relaxlab sim serve``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field, ValidationError, model_validator

import drivers.instruments  # noqa: F401  (registers the built-in instrument models)
from drivers import registry
from drivers.lab_config import (
    TEXT,
    Celsius,
    Grams,
    InstrumentConfig,
    Strict,
    Volts,
    quantity,
)
from protocols.textfiles import InputFileError, load_toml, load_yaml, read_text_file, yaml_problem

#: Names that become file names and device names (cells, instruments): letters, digits, ``_``, ``-``.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or digit (e.g. A1, cell-1)"

#: A valid example for each field of a lab file, shown with its error.
EXAMPLES = {
    "lab": '[lab] name = "bench-2"',
    "name": 'name = "A1"',
    "seed": "seed = 0",
    "data_dir": 'data_dir = "/data/relaxlab"',
    "instruments": '[instruments.smu1] driver = "keithley2450", resource = "GPIB0::18::INSTR"',
    "driver": 'driver = "keithley2450"   # or another registered model: "emstat4", "eurotherm"',
    "resource": 'resource = "GPIB0::18::INSTR"   # or "COM5", "sim" with simulated = true',
    "simulated": "simulated = true",
    "poll_interval": 'poll_interval = "1 s"',
    "timeout": 'timeout = "5 s"',
    "compliance": 'compliance = "5 V"',
    "baudrate": "baudrate = 921600",
    "model": 'model = "HR"',
    "sample_interval": 'sample_interval = "1 s"',
    "address": "address = 1",
    "series": 'series = "2400"',
    "over_temperature": 'over_temperature = "250 degC"',
    "cells": '[[cells]] name = "A1", instrument = "smu1", active_mass = "7 mg"',
    "instrument": 'instrument = "smu1"',
    "channel": "channel = 1",
    "sample": 'sample = "LTNO-x04-batch3"',
    "material": 'material = "x04"',
    "active_mass": 'active_mass = "7 mg"',
    "voltage_max": 'voltage_max = "4.95 V"',
    "voltage_min": 'voltage_min = "1.0 V"',
    "temperature": 'temperature = "25 degC"',
}


class LabFileError(ValueError):
    """The lab file is invalid; the message names the file and every field that is wrong."""


class _ReferenceError(ValueError):
    """Cross-references between cells and instruments are wrong (reported from the raw data)."""


_quantity = quantity
_Strict = Strict
_TEXT = TEXT


class LabInfo(_Strict):
    name: str = Field(default="lab", min_length=1, max_length=100, pattern=_TEXT)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    data_dir: str | None = Field(default=None, min_length=1, max_length=4096, pattern=_TEXT)


def _instrument(value: Any) -> Any:
    """An ``[instruments.NAME]`` table validated by the config its model registered."""
    if isinstance(value, dict):
        model = registry.find(value.get("driver"))
        if model is None:
            raise ValueError(_driver_message(value.get("driver")))
        return model.config.model_validate(value)
    return value


def _driver_message(given: Any) -> str:
    names = [f"'{m.driver}'" for m in registry.models()]
    known = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"Input should be {known}"


Instrument = Annotated[InstrumentConfig, BeforeValidator(_instrument)]


class CellConfig(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    instrument: str
    channel: int = Field(default=1, ge=1, le=64)
    sample: str = Field(default="sample", min_length=1, max_length=200, pattern=_TEXT)
    material: str = Field(default="x04", min_length=1, max_length=100, pattern=_TEXT)
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


def _reference_problems(instruments: Any, cells: Any) -> list[tuple[str, str]]:
    """Cross-references of a lab file (cell names, instruments, channels) as (location, message),
    worked out on the raw data so they are reported together with every field error."""
    problems: list[tuple[str, str]] = []
    instruments = instruments if isinstance(instruments, dict) else {}
    for name in instruments:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problems.append((f"instruments.{name}", f"{name!r} is not a valid instrument name: {NAME_RULE}"))
    names: set[str] = set()
    used: dict[tuple[Any, Any], Any] = {}
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, dict):
            continue
        name, inst = cell.get("name"), cell.get("instrument")
        if isinstance(name, str):
            if name in names:
                problems.append((f"cells[{index}].name", f"duplicate cell name {name!r}"))
            names.add(name)
        if isinstance(inst, str):
            config = instruments.get(inst)
            if config is None:
                problems.append((f"cells[{index}].instrument", f"no instrument named {inst!r} "
                                 f"(defined: {', '.join(sorted(map(str, instruments))) or 'none'})"))  # fmt: skip
            elif (
                isinstance(config, dict)
                and (model := registry.find(config.get("driver"))) is not None
                and model.kind != "potentiostat"
            ):
                problems.append((f"cells[{index}].instrument",
                                 f"{inst!r} is an {model.kind} ({model.driver}), not a potentiostat"))  # fmt: skip
        channel = cell.get("channel", 1)
        key = (inst, channel)
        if isinstance(inst, str) and isinstance(channel, int):
            if key in used:
                problems.append(
                    (f"cells[{index}]", f"channel {channel} of {inst!r} already holds cell {used[key]!r}")
                )
            used[key] = name
    return problems


_NAME_RE = re.compile(NAME_PATTERN)


class Lab(_Strict):
    lab: LabInfo = LabInfo()
    instruments: dict[str, Instrument]
    cells: list[CellConfig] = Field(min_length=1)
    source: str = Field(default="<memory>", exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Lab:
        raw_instruments = {k: v.model_dump() for k, v in self.instruments.items()}
        problems = _reference_problems(raw_instruments, [c.model_dump() for c in self.cells])
        if problems:
            raise _ReferenceError("; ".join(f"{where}: {message}" for where, message in problems))
        return self

    @property
    def ovens(self) -> list[str]:
        """Names of the lab's ovens (instruments of kind ``oven``), in file order."""
        return [name for name, inst in self.instruments.items() if registry.model(inst.driver).kind == "oven"]

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


def _example(loc: tuple[Any, ...]) -> str:
    for part in reversed(loc):
        if isinstance(part, str) and part in EXAMPLES:
            return EXAMPLES[part]
    return ""


def _error_lines(exc: ValidationError) -> list[tuple[str, str, str]]:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if isinstance((err.get("ctx") or {}).get("error"), _ReferenceError):
            continue  # the cross-references, reported from the raw data
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        if err["type"] == "missing":
            message = "missing"
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "name":
            message = f"not a valid name: {NAME_RULE}"
        shown = "" if isinstance(given, dict | list) or given is None else f" (given {given!r})"
        lines.append((where, f"{message}{shown}", _example(loc)))
    return lines


def _format(source: str, problems: list[tuple[str, str, str]]) -> str:
    body = "\n".join(
        f"  {where}: {message}" + (f" (example: {ex})" if ex else "") for where, message, ex in problems
    )
    return f"lab file {source} is invalid:\n" + body


def _instrument_problems(data: dict[str, Any]) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """Each instrument table checked against its model's config, with every field's location;
    the data with those tables validated (and the invalid ones left out)."""
    instruments = data.get("instruments")
    if not isinstance(instruments, dict):
        return [], data
    problems: list[tuple[str, str, str]] = []
    checked: dict[Any, Any] = {}
    for name, raw in instruments.items():
        if not isinstance(raw, dict):
            checked[name] = raw
            continue
        where = f"instruments.{name}.driver"
        if "driver" not in raw:
            problems.append((where, "missing", EXAMPLES["driver"]))
            continue
        model = registry.find(raw["driver"])
        if model is None:
            problems.append(
                (where, f"{_driver_message(raw['driver'])} (given {raw['driver']!r})", EXAMPLES["driver"])
            )
            continue
        try:
            checked[name] = model.config.model_validate(raw)
        except ValidationError as exc:
            for at, message, example in _error_lines(exc):
                problems.append((f"instruments.{name}" + ("" if at == "(top level)" else f".{at}"), message, example))
    return problems, {**data, "instruments": checked}


def parse_lab(data: Any, source: str = "<memory>") -> Lab:
    """Validate lab-file data; :class:`LabFileError` lists every problem, each with an example."""
    if not isinstance(data, dict):
        raise LabFileError(
            f"lab file {source}: expected a table at the top level ({EXAMPLES['instruments']})"
        )
    problems, checked = _instrument_problems(data)
    try:
        lab = Lab.model_validate({**checked, "source": source})
    except ValidationError as exc:
        problems += _error_lines(exc)
        lab = None
    for where, message in _reference_problems(data.get("instruments"), data.get("cells")):
        entry = (where, message, _example(tuple(re.split(r"[.\[\]]+", where))))
        if entry not in problems:
            problems.append(entry)
    if problems or lab is None:
        raise LabFileError(_format(source, problems))
    return lab


def _toml_problem(exc: tomllib.TOMLDecodeError, text: str) -> str:
    """tomllib's message with the line it points at (``Cannot overwrite a value`` names no key)."""
    message = str(exc)
    found = re.search(r"at line (\d+)", message)
    lines = text.splitlines()
    if found and 0 < int(found.group(1)) <= len(lines):
        line = lines[int(found.group(1)) - 1].strip()[:120]
        message += f": {line!r}"
        if "overwrite" in message:
            message += " (a key given twice, or a table defined twice)"
    return message


def load_lab(path: str | Path) -> Lab:
    """Read and validate a lab file (``.toml``, ``.yaml`` or ``.yml``), or a built-in lab by name."""
    path = Path(path)
    if not path.exists():
        builtin = Path(__file__).parent / "labs" / f"{path.name}.toml"
        if builtin.exists() and path.name == str(path):
            path = builtin
    try:
        text = read_text_file(path, "lab file")
    except InputFileError as exc:
        raise LabFileError(str(exc)) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            data = load_yaml(text)
        else:
            data = load_toml(text)
    except yaml.YAMLError as exc:
        where, message = yaml_problem(exc)
        raise LabFileError(
            f"lab file {path} cannot be read: {where + ': ' if where else ''}{message}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise LabFileError(
            f"lab file {path} cannot be read: not valid TOML: {_toml_problem(exc, text)}"
        ) from None
    return parse_lab(data, str(path))
