"""A small SCPI command parser for simulated instruments.

Headers are declared the way manuals print them, e.g. ``SOURce[1]:CURRent[:LEVel][:IMMediate]``:
upper-case letters are the short form, the whole word is the long form, either is accepted in
any case; bracketed nodes are optional; a trailing ``?`` makes a query. Several commands may
share a line separated by ``;`` (a leading ``:`` restarts at the root).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


class ScpiError(Exception):
    """An SCPI error for the error queue: ``code`` and ``message`` as the standard defines."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Parameter data out of range")
MISSING_PARAMETER = (-109, "Missing parameter")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
DATA_TYPE = (-104, "Data type error")


@dataclass(frozen=True)
class _Mnemonic:
    short: str
    long: str
    optional: bool
    suffix_ok: bool

    def matches(self, token: str) -> bool:
        m = re.fullmatch(r"([A-Za-z*]+)(\d*)", token)
        if not m:
            return False
        word, digits = m.group(1).upper(), m.group(2)
        if digits and not self.suffix_ok:
            return False
        return word in (self.short, self.long)


def _parse_pattern(pattern: str) -> tuple[list[_Mnemonic], bool]:
    query = pattern.endswith("?")
    # "SOURce[1]" means the node takes an optional numeric suffix.
    body = re.sub(r"\[\d+\]", "#", pattern.rstrip("?").lstrip(":"))
    nodes: list[_Mnemonic] = []
    for raw in re.findall(r"\[:?[^\]]+\]|[^:\[]+", body):
        optional = raw.startswith("[")
        word = raw.strip("[]:")
        suffix_ok = word.endswith("#")
        word = word.rstrip("#")
        short = "".join(c for c in word if c.isupper() or c == "*")
        nodes.append(_Mnemonic(short, word.upper(), optional, suffix_ok))
    return nodes, query


def _match(nodes: list[_Mnemonic], tokens: list[str]) -> bool:
    if not nodes:
        return not tokens
    head, rest = nodes[0], nodes[1:]
    if tokens and head.matches(tokens[0]) and _match(rest, tokens[1:]):
        return True
    return head.optional and _match(rest, tokens)


Handler = Callable[[list[str]], "str | None"]


class ScpiParser:
    """Dispatches SCPI lines to handlers; errors go to ``on_error``."""

    def __init__(self, on_error: Callable[[ScpiError], None]) -> None:
        self._commands: list[tuple[list[_Mnemonic], bool, Handler]] = []
        self._on_error = on_error

    def add(self, pattern: str, handler: Handler) -> None:
        nodes, query = _parse_pattern(pattern)
        self._commands.append((nodes, query, handler))

    def execute_line(self, line: str) -> list[str]:
        """Run every command on a line; return the replies of its queries."""
        replies: list[str] = []
        for command in _split_commands(line):
            try:
                reply = self._execute(command)
            except ScpiError as exc:
                self._on_error(exc)
                continue
            if reply is not None:
                replies.append(reply)
        return replies

    def _execute(self, command: str) -> str | None:
        command = command.strip()
        if not command:
            return None
        header, _, params = command.partition(" ")
        query = header.endswith("?")
        tokens = [t for t in header.rstrip("?").lstrip(":").split(":") if t]
        for nodes, is_query, handler in self._commands:
            if is_query == query and _match(nodes, tokens):
                return handler(_split_params(params))
        raise ScpiError(*UNDEFINED_HEADER)


def _split_commands(line: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out


def _split_params(params: str) -> list[str]:
    params = params.strip()
    if not params:
        return []
    return [p.strip() for p in params.split(",")]


def parse_number(params: list[str], low: float, high: float) -> float:
    """One numeric parameter within [low, high] (MIN/MAX/DEF accepted), else an SCPI error."""
    if not params:
        raise ScpiError(*MISSING_PARAMETER)
    word = params[0].upper()
    if word in ("MIN", "MINIMUM"):
        return low
    if word in ("MAX", "MAXIMUM"):
        return high
    try:
        value = float(params[0])
    except ValueError as exc:
        raise ScpiError(*DATA_TYPE) from exc
    if not low <= value <= high:
        raise ScpiError(*DATA_OUT_OF_RANGE)
    return value


def parse_bool(params: list[str]) -> bool:
    if not params:
        raise ScpiError(*MISSING_PARAMETER)
    word = params[0].upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(*ILLEGAL_PARAMETER)
