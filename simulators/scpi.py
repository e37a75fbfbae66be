"""A small SCPI (IEEE 488.2 / SCPI-99) command parser for simulated instruments.

Headers are declared the way manuals print them, e.g. ``SOURce[1]:CURRent[:LEVel][:IMMediate]``:
upper-case letters are the short form, the whole word is the long form, either is accepted in
any case; bracketed nodes are optional; ``<function>`` stands for one of the words given with
:meth:`ScpiParser.add`'s ``functions``; a trailing ``?`` makes a query.

A program message holds several message units separated by ``;``. A unit whose header starts
with ``:`` is absolute; one without is relative to the previous unit's path (``:SOUR:FUNC
CURR;CURR 1e-3`` sets ``:SOUR:CURR``); common commands (``*IDN?``, also written ``:*CLS``)
leave the path alone. Parameters are separated by commas; strings may be quoted with ``"``
or ``'`` (a doubled quote inside stands for one), and commas or semicolons inside quotes are
data. The replies of all queries in one message are joined by the instrument with ``;``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache


class ScpiError(Exception):
    """An SCPI error for the error queue: ``code`` and ``message`` as the standard defines."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


# SCPI-99 / IEEE 488.2 error numbers
INVALID_CHARACTER = (-101, "Invalid character")
SYNTAX_ERROR = (-102, "Syntax error")
DATA_TYPE = (-104, "Data type error")
PARAMETER_NOT_ALLOWED = (-108, "Parameter not allowed")
MISSING_PARAMETER = (-109, "Missing parameter")
UNDEFINED_HEADER = (-113, "Undefined header")
INVALID_STRING = (-151, "Invalid string data")
SETTINGS_CONFLICT = (-221, "Settings conflict")
DATA_OUT_OF_RANGE = (-222, "Parameter data out of range")
TOO_MUCH_DATA = (-223, "Too much data")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
QUEUE_OVERFLOW = (-350, "Queue overflow")


_WORD = re.compile(r"([A-Za-z*][A-Za-z0-9*]*?)(\d*)")  # PK2Pk: digits inside a word
_TOKEN = re.compile(r"\*?[A-Za-z][A-Za-z0-9]*")
_HEADER_CHARS = re.compile(r"[\w:*]*")
_UNIT = re.compile(r"(\S+)\s*(.*)\Z", re.S)
_CACHE_SIZE = 4096  # distinct header paths remembered; a client sending more only costs a rescan


@dataclass(frozen=True)
class _Mnemonic:
    short: str
    long: str
    optional: bool
    suffix_ok: bool
    choices: tuple[tuple[str, str], ...] = ()  # for <function>: (short, long) pairs

    def match(self, token: str) -> str | None:
        """The canonical word this token names, or None."""
        m = _WORD.fullmatch(token)
        if not m:
            return None
        word, digits = m.group(1).upper(), m.group(2)
        if digits and not (self.suffix_ok and digits == "1"):
            return None
        if self.choices:
            for short, long in self.choices:
                if word in (short, long):
                    return short
            return None
        return self.short if word in (self.short, self.long) else None


def _mnemonic(word: str, optional: bool, functions: dict[str, str]) -> _Mnemonic:
    suffix_ok = word.endswith("#")
    word = word.rstrip("#")
    if word == "<function>":
        choices = tuple((f, long.upper()) for f, long in functions.items())
        return _Mnemonic("<function>", "<function>", optional, suffix_ok, choices)
    short = "".join(c for c in word if c.isupper() or c.isdigit() or c == "*")
    return _Mnemonic(short, word.upper(), optional, suffix_ok)


def _parse_pattern(pattern: str, functions: dict[str, str]) -> tuple[list[_Mnemonic], bool]:
    query = pattern.endswith("?")
    # "SOURce[1]" means the node takes an optional numeric suffix.
    body = re.sub(r"\[1\]", "#", pattern.rstrip("?").lstrip(":"))
    nodes: list[_Mnemonic] = []
    for raw in re.findall(r"\[:?[^\]]+\]|[^:\[]+", body):
        optional = raw.startswith("[")
        nodes.append(_mnemonic(raw.strip("[]:"), optional, functions))
    return nodes, query


def _match(nodes: list[_Mnemonic], tokens: Sequence[str], picked: list[tuple[bool, str]]) -> bool:
    """Whether ``tokens`` fill ``nodes``; ``picked`` gets (is a <function>, canonical word)."""
    if not nodes:
        return not tokens
    head, rest = nodes[0], nodes[1:]
    if tokens:
        word = head.match(tokens[0])
        if word is not None:
            picked.append((bool(head.choices), word))
            if _match(rest, tokens[1:], picked):
                return True
            picked.pop()
    return head.optional and _match(rest, tokens, picked)


@dataclass
class Call:
    """One message unit as a handler sees it."""

    params: list[str]
    functions: list[str] = field(default_factory=list)  # the <function> words, canonical short form

    @property
    def function(self) -> str:
        return self.functions[0]


Handler = Callable[[Call], "str | bytes | None"]


@dataclass(frozen=True)
class CommandInfo:
    """A declared command, for the generated documentation."""

    pattern: str
    doc: str
    functions: tuple[str, ...] = ()  # what <function> may be (long forms)


class ScpiParser:
    """Dispatches SCPI program messages to handlers; errors go to ``on_error``."""

    def __init__(self, on_error: Callable[[ScpiError], None]) -> None:
        self._commands: list[tuple[list[_Mnemonic], bool, Handler]] = []
        self.info: list[CommandInfo] = []
        self._on_error = on_error
        # (query, upper-case header path) -> (handler, <function> words), or None when no
        # declared command matches: the first match of the table scan, so a repeated header
        # costs one dict lookup. Matching ignores case, hence the upper-case key.
        self._resolved: dict[tuple[bool, tuple[str, ...]], tuple[Handler, tuple[str, ...]] | None] = {}

    def add(
        self, pattern: str, handler: Handler, doc: str = "", functions: dict[str, str] | None = None
    ) -> None:
        """Declare ``pattern``; ``functions`` maps short to long forms for ``<function>``."""
        nodes, query = _parse_pattern(pattern, functions or {})
        self._commands.append((nodes, query, handler))
        self._resolved.clear()
        if doc:
            self.info.append(CommandInfo(pattern, doc, tuple((functions or {}).values())))

    def execute_message(self, message: str) -> list[str | bytes]:
        """Run every unit of one program message; return the replies of its queries."""
        replies: list[str | bytes] = []
        try:
            units = split_units(message)
        except ScpiError as exc:
            self._on_error(exc)
            return replies
        path: list[str] = []
        for unit in units:
            unit = unit.strip()
            if not unit:
                continue
            try:
                reply, path = self._execute(unit, path)
            except ScpiError as exc:
                self._on_error(exc)
                continue
            if reply is not None:
                replies.append(reply)
        return replies

    def _execute(self, unit: str, path: list[str]) -> tuple[str | bytes | None, list[str]]:
        m = _UNIT.match(unit)
        assert m is not None
        header, params = m.group(1), m.group(2)
        query, common, rooted, tokens = _header(header)
        absolute = rooted or not path
        candidates = [tokens] if absolute else [(*path, *tokens), tokens]
        for candidate in candidates:
            found = self._resolve(query, candidate)
            if found is not None:
                handler, functions = found
                reply = handler(Call(split_params(params), list(functions)))
                return reply, (path if common else list(candidate[:-1]))
        raise ScpiError(*UNDEFINED_HEADER)

    def _resolve(self, query: bool, tokens: tuple[str, ...]) -> tuple[Handler, tuple[str, ...]] | None:
        """The first declared command ``tokens`` name, and its <function> words (cached)."""
        key = (query, tuple(map(str.upper, tokens)))
        try:
            return self._resolved[key]
        except KeyError:
            pass
        found: tuple[Handler, tuple[str, ...]] | None = None
        for nodes, is_query, handler in self._commands:
            picked: list[tuple[bool, str]] = []
            if is_query == query and _match(nodes, tokens, picked):
                found = handler, tuple(word for is_function, word in picked if is_function)
                break
        if len(self._resolved) >= _CACHE_SIZE:
            self._resolved.clear()
        self._resolved[key] = found
        return found


@lru_cache(maxsize=1024)  # a driver sends the same headers again and again
def _header(header: str) -> tuple[bool, bool, bool, tuple[str, ...]]:
    """A header's parts: (query, common command, from the root, its mnemonics); an SCPI error
    for a header that is not one."""
    query = header.endswith("?")
    stem = header[:-1] if query else header
    common = stem.lstrip(":").startswith("*")
    tokens = tuple(stem.lstrip(":").split(":"))
    if any(not _TOKEN.fullmatch(t) for t in tokens):
        raise ScpiError(*UNDEFINED_HEADER if _HEADER_CHARS.fullmatch(stem) else SYNTAX_ERROR)
    return query, common, stem.startswith(":") or common, tokens


#: What a program message or a parameter list is made of: a quoted string (either quote, a
#: doubled quote inside it stands for one), a run of anything else but a separator, a
#: separator, or a quote left open (the string never ends).
_PIECES = {
    sep: re.compile(rf""""[^"]*(?:""[^"]*)*"|'[^']*(?:''[^']*)*'|[^"'{sep}]+|{sep}|["']""") for sep in ";,"
}


def _scan(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quoted strings (either quote; doubled quote escapes)."""
    if '"' not in text and "'" not in text:
        return text.split(separator)
    out: list[str] = []
    current: list[str] = []
    for piece in _PIECES[separator].findall(text):
        if piece == separator:
            out.append("".join(current))
            current = []
        elif piece == '"' or piece == "'":
            raise ScpiError(*INVALID_STRING)
        else:
            current.append(piece)
    out.append("".join(current))
    return out


def split_units(message: str) -> list[str]:
    return list(_split_units(message))


@lru_cache(maxsize=1024)  # a driver repeats its messages (the same query every poll)
def _split_units(message: str) -> tuple[str, ...]:
    return tuple(_scan(message, ";"))


def split_params(params: str) -> list[str]:
    return list(_split_params(params))


@lru_cache(maxsize=1024)  # a driver repeats its parameters (``"defbuffer1", READ, SOUR`` every poll)
def _split_params(params: str) -> tuple[str, ...]:
    params = params.strip()
    if not params:
        return ()
    return tuple(p.strip() for p in _scan(params, ","))


def is_string(param: str) -> bool:
    return len(param) >= 2 and param[0] in "\"'" and param[-1] == param[0]


def unquote(param: str) -> str:
    """The text of a quoted string parameter (either quote style); bare words unchanged."""
    if is_string(param):
        q = param[0]
        return param[1:-1].replace(q + q, q)
    return param


def _param(params: list[str], index: int) -> str:
    """Parameter ``index``, or the SCPI error for a missing parameter."""
    if len(params) <= index:
        raise ScpiError(*MISSING_PARAMETER)
    return params[index]


def parse_number(
    params: list[str], low: float, high: float, default: float | None = None, index: int = 0
) -> float:
    """One numeric parameter within [low, high]; MIN/MAX/DEF accepted, else an SCPI error."""
    param = _param(params, index)
    named = {"MIN": low, "MINIMUM": low, "MAX": high, "MAXIMUM": high, "DEF": default, "DEFAULT": default}
    if param.upper() in named:
        chosen = named[param.upper()]
        if chosen is None:  # DEF where there is no default
            raise ScpiError(*ILLEGAL_PARAMETER)
        return chosen
    try:
        value = float(param)
    except ValueError as exc:
        raise ScpiError(*DATA_TYPE) from exc
    if value != value or not low <= value <= high:
        raise ScpiError(*DATA_OUT_OF_RANGE)
    return value


_BOOLEANS = {"ON": True, "1": True, "OFF": False, "0": False}


def parse_bool(params: list[str], index: int = 0) -> bool:
    """A boolean parameter: ON/1 or OFF/0 (not quoted)."""
    word = _param(params, index).upper()
    if word not in _BOOLEANS:
        raise ScpiError(*ILLEGAL_PARAMETER)
    return _BOOLEANS[word]


def parse_choice(params: list[str], choices: dict[str, str], index: int = 0) -> str:
    """A character parameter: ``choices`` maps every accepted (upper-case) form to its canonical one."""
    word = unquote(_param(params, index)).upper()
    if word not in choices:
        raise ScpiError(*ILLEGAL_PARAMETER)
    return choices[word]


def no_params(call: Call) -> None:
    if call.params:
        raise ScpiError(*PARAMETER_NOT_ALLOWED)
