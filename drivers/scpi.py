"""Declared SCPI controls: a driver reads like its manual's command table.

::

    class Meter(ScpiInstrument):
        voltage_limit_V = Control(":SOUR:CURR:VLIM?", ":SOUR:CURR:VLIM {:.6g}",
                                  validator=strict_range(0.02, 210), parse=float)

Setting a control validates the value first and raises :class:`ValueError` naming the control
and the allowed values when it is out of range (never clamps silently); reading sends the
query and parses the reply, raising :class:`~drivers.transport.InstrumentError` naming the
instrument and the command when the reply cannot be parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from drivers.transport import InstrumentError

T = TypeVar("T")
Validator = Callable[[str, Any], Any]


def strict_range(low: float, high: float) -> Validator:
    """Accept a number within [low, high]; raise otherwise."""

    def check(name: str, value: Any) -> float:
        number = float(value)
        if not low <= number <= high:
            raise ValueError(f"{name} = {value!r} is out of range; allowed {low:g} to {high:g}")
        return number

    check.__doc__ = f"number in [{low:g}, {high:g}]"
    return check


def strict_choice(choices: Mapping[Any, str]) -> Validator:
    """Accept one of ``choices`` (keys) and send its mapped word."""

    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} = {value!r} is not allowed; choose one of {list(choices)}")
        return choices[value]

    return check


def parse_bool(text: str) -> bool:
    word = text.strip().upper()
    if word in ("1", "ON"):
        return True
    if word in ("0", "OFF"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


class ScpiInstrument:
    """Base for SCPI drivers: a transport with ``query``/``write_line`` and a name."""

    termination = "\n"

    def __init__(self, transport: Any, name: str) -> None:
        self.transport = transport
        self.name = name

    def write(self, command: str) -> None:
        self.transport.write_line(command, self.termination)

    def ask(self, command: str) -> str:
        self.transport.write_line(command, self.termination)
        return self.transport.read_line(self.termination, command=command)

    def query(self, command: str, parse: Callable[[str], Any] | None = None) -> Any:
        """Ask, and parse the reply (``parse`` raising ValueError/IndexError/KeyError on a
        reply of the wrong shape): InstrumentError naming the reply and the command then.
        Drivers that retry and resynchronise override this one method."""
        reply = self.ask(command)
        if parse is None:
            return reply
        try:
            return parse(reply)
        except (ValueError, IndexError, KeyError) as exc:
            raise InstrumentError(self.name, f"garbled reply {reply!r} ({exc})", command) from exc


class Control(Generic[T]):
    """A declared setting and/or query of an SCPI instrument."""

    def __init__(
        self,
        get_command: str | None,
        set_command: str | None,
        doc: str = "",
        validator: Validator | None = None,
        parse: Callable[[str], T] | None = None,
    ) -> None:
        self.get_command = get_command
        self.set_command = set_command
        self.validator = validator
        self.parse = parse
        self.__doc__ = doc
        self.name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: ScpiInstrument | None, owner: type) -> Any:
        if instance is None:
            return self
        if self.get_command is None:
            raise AttributeError(f"{self.name} is write-only")
        return instance.query(self.get_command, self.parse)

    def __set__(self, instance: ScpiInstrument, value: Any) -> None:
        if self.set_command is None:
            raise AttributeError(f"{self.name} is read-only")
        checked = self.validator(self.name, value) if self.validator else value
        instance.write(self.set_command.format(checked))


def Measurement(command: str, doc: str = "", parse: Callable[[str], Any] | None = None) -> Control:
    """A read-only declared query."""
    return Control(command, None, doc, parse=parse)
