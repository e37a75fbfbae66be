"""MethodSCRIPT's wire format: SI-prefixed literals, error replies and their meanings, and the
measurement packages an EmStat4 sends (variables with status flags)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SI_PREFIX = {
    "a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, " ": 1.0,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "i": 1.0,
}  # fmt: skip
_LITERAL_PREFIXES = (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3), ("u", 1e-6),
                     ("n", 1e-9), ("p", 1e-12), ("f", 1e-15))  # fmt: skip
STATUS_FLAGS = {0x1: "timing error", 0x2: "overload", 0x4: "underload", 0x8: "overload warning"}

#: MethodSCRIPT error codes (manual appendix A) that relaxlab may meet.
ERROR_CODES: dict[int, str] = {
    0x0001: "an unspecified error has occurred",
    0x0002: "an invalid VarType has been used",
    0x0003: "the command was not recognized",
    0x0006: "communication mode invalid (no script running, or one already running)",
    0x0007: "an argument has an unexpected value",
    0x0008: "command exceeds maximum length",
    0x0009: "the command has timed out",
    0x000C: "cannot run a script without loading one first",
    0x000E: "an overflow has occurred while averaging a measured value",
    0x000F: "the given potential is not valid",
    0x0010: "a variable has become NaN or inf",
    0x0014: "cannot perform OCP measurement when cell on",
    0x001B: "this command or part of it is not supported by the current device",
    0x0021: "the specified PGStat mode is not supported",
    0x0023: "command is invalid for the selected PGStat mode",
    0x0028: "variable divided by zero",
    0x0032: "critical cell overload, measurement aborted to prevent damage",
    0x4001: "the script command is unknown",
    0x4004: "an unexpected character was encountered",
    0x4005: "the script is too large for the internal script memory",
    0x4008: "this optional argument is not valid for this command",
    0x400B: "measurement loops cannot be placed inside other measurement loops",
    0x400C: "command not supported in current situation",
    0x4018: "the script has ended unexpectedly",
    0x401B: "the pck sequence is called wrong",
    0x4026: "the variable already exists when declared",
    0x4027: "this command requires the cell to be enabled with cell_on",
    0x4028: "this command requires the cell to be disabled with cell_off",
    0x4039: "the literal argument was not correctly formed",
    0x4200: "argument value cannot be negative for this command",
    0x4202: "argument value cannot be zero for this command",
    0x4204: "argument value must be positive for this command",
    0x4205: "argument value is outside the allowed bounds for this command",
    0x4206: "argument value cannot be used for this specific instrument",
    0x420B: "argument variable is not declared",
    0x7FFF: "a fatal error has occurred, the device must be reset",
}


def error_meaning(code: int) -> str:
    """Text for a MethodSCRIPT error code (``'unknown error code'`` if not tabulated)."""
    return ERROR_CODES.get(code, "unknown error code (see the MethodSCRIPT manual, appendix A)")


@dataclass(frozen=True)
class ErrorReply:
    """An error reply: ``[c]!XXXX[: Line L[, Col C]]`` (``c`` the echoed command character)."""

    code: int
    line: int | None = None
    col: int | None = None
    echo: str = ""

    @property
    def meaning(self) -> str:
        return error_meaning(self.code)

    @property
    def busy(self) -> bool:
        """0x0006: a script is running (or, for ``Z``/``h``/``H``, none is)."""
        return self.code == 0x0006

    def describe(self) -> str:
        where = "" if self.line is None else f" at script line {self.line}"
        where += "" if self.col is None else f", column {self.col}"
        return f"MethodSCRIPT error 0x{self.code:04X} ({self.meaning}){where}"


_ERROR_LINE = re.compile(r"([A-Za-z]?)!([0-9A-Fa-f]{4})(?::\s*(.*))?\Z")
_WHERE = re.compile(r"Line (\d+)(?:, Col (\d+))?\Z")


def parse_error(line: str) -> ErrorReply | None:
    """Decode ``!XXXX``, ``!XXXX: Line L`` or ``!XXXX: Line L, Col C``, optionally after the
    echoed command character (``Z!0006``); None if ``line`` is not an error reply."""
    m = _ERROR_LINE.match(line)
    if m is None:
        return None
    line_no = col = None
    if m[3]:
        where = _WHERE.match(m[3].strip())
        if where:
            line_no = int(where[1])
            col = int(where[2]) if where[2] else None
    return ErrorReply(int(m[2], 16), line_no, col, m[1])


def format_literal(value: float) -> str:
    """A MethodSCRIPT float literal: integer mantissa + SI prefix, at least 9 digits exact."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be written into a script")
    if value == 0:
        return "0"
    for prefix, factor in _LITERAL_PREFIXES:
        mantissa = value / factor
        rounded = round(mantissa)
        if rounded != 0 and abs(rounded) < 2**31 and abs(mantissa - rounded) <= 1e-9 * abs(mantissa):
            return f"{rounded}{prefix}"
    for prefix, factor in reversed(_LITERAL_PREFIXES):  # finest prefix that still fits
        if abs(value / factor) < 2**31:
            return f"{round(value / factor)}{prefix}"
    raise ValueError(f"{value!r} is too large for a MethodSCRIPT literal")


def format_int(value: int) -> str:
    return f"{int(value)}i"


@dataclass(frozen=True)
class Variable:
    """One decoded package variable."""

    type: str
    value: float
    status: int = 0
    range_index: int | None = None


def decode_value(text: str) -> float:
    """``HHHHHHHp`` -> float; ``'     nan'`` -> nan. Raises ValueError when malformed."""
    if text.strip() == "nan":
        return math.nan
    if len(text) != 8 or text[7] not in SI_PREFIX:
        raise ValueError(f"malformed MethodSCRIPT value {text!r}")
    return (int(text[:7], 16) - (1 << 27)) * SI_PREFIX[text[7]]


def parse_package(line: str) -> list[Variable]:
    """Variables of a data package line ``P<var>;<var>...`` (ValueError when malformed)."""
    if not line.startswith("P"):
        raise ValueError(f"not a data package: {line!r}")
    out: list[Variable] = []
    for part in line[1:].split(";"):
        fields = part.split(",")
        head = fields[0]
        if len(head) != 10:
            raise ValueError(f"malformed variable {part!r} in {line!r}")
        status, rng = 0, None
        for meta in fields[1:]:
            if len(meta) == 2 and meta[0] == "1":
                status = int(meta[1], 16)
            elif len(meta) == 3 and meta[0] == "2":
                rng = int(meta[1:], 16)
        out.append(Variable(head[:2], decode_value(head[2:]), status, rng))
    return out
