"""A strict checker of the MethodSCRIPT reply grammar, written from the MethodSCRIPT manual.

Independent of the simulator and of relaxlab's driver (it shares no code with either), so a
test that runs the simulator's output through it checks the simulator against the manual:

* a script's reply starts with the echoed ``e`` (or ``r`` for a loaded script) and ends with
  one empty line;
* ``M`` + 4 hex digits opens a measurement loop, ``*`` closes it; ``L`` opens a ``loop``,
  ``+`` closes it; ``C`` + 4 hex digits opens a scan (only directly inside a measurement
  loop), ``-`` closes it; every scope is closed in order, and nothing but the empty line
  follows the last one;
* ``P`` + ``;``-separated variables: a documented 2-letter variable type, then 7 hex digits
  and an SI prefix character (``a f p n u m`` space ``k M G T P E``, or ``i`` for integers)
  or ``     nan``; metadata only ``,1x`` (status nibble) and ``,2xx`` (range, 2 hex digits),
  each at most once;
* ``T`` + printable ASCII text;
* an error ``!XXXX: Line L`` or ``!XXXX: Line L, Col C`` ends the output (the empty line
  follows);
* after an abort, ``Z`` comes first, and the scopes it cut short are still closed.

The PalmSens parser (``palmsens.mscript`` in PalmSens' public examples) is not on the package
index and its licence restricts it to PalmSens hardware, hence this checker.
"""

from __future__ import annotations

import re

#: Variable types documented in the MethodSCRIPT manual.
VARTYPES = frozenset(
    [
        "aa",
        "ab",
        "ac",
        "ad",
        "ae",
        "af",
        "ag",
        "ah",
        "ai",
        "as",
        "at",
        "au",
        "av",
        "aw",
        "ax",
        "ay",
        "az",
        "ba",
        "bb",
        "ca",
        "cb",
        "cc",
        "cd",
        "ce",
        "cf",
        "cg",
        "ch",
        "ci",
        "cj",
        "ck",
        "cl",
        "cm",
        "cn",
        "co",
        "cp",
        "cq",
        "cr",
        "cs",
        "ct",
        "cu",
        "cv",
        "cw",
        "cx",
        "cy",
        "cz",
        "da",
        "db",
        "dc",
        "dd",
        "ea",
        "eb",
        "ec",
        "ed",
        "ee",
        "ef",
        "eg",
        "ha",
        "hb",
        "hc",
        "hd",
        "ia",
        "ib",
        "ic",
        "id",
        "ja",
        "jb",
        "jc",
        "jd",
    ]
)
_VALUE = re.compile(r"[0-9A-F]{7}[afpnum kMGTPEi]\Z|     nan\Z")
_OPEN = re.compile(r"([MC])[0-9A-F]{4}\Z")
_ERROR = re.compile(r"![0-9A-F]{4}: Line \d+(, Col \d+)?\Z")
_CLOSE = {"*": "M", "+": "L", "-": "C"}


class GrammarError(AssertionError):
    pass


def check_variable(var: str) -> None:
    head, *meta = var.split(",")
    if len(head) != 10 or head[:2] not in VARTYPES or not _VALUE.match(head[2:]):
        raise GrammarError(f"malformed variable {var!r}")
    seen: set[str] = set()
    for m in meta:
        ok = (m[:1] == "1" and re.fullmatch(r"1[0-9A-F]", m)) or (
            m[:1] == "2" and re.fullmatch(r"2[0-9A-F]{2}", m)
        )
        if not ok or m[0] in seen:
            raise GrammarError(f"malformed metadata {m!r} in {var!r}")
        seen.add(m[0])


def check_package(line: str) -> None:
    if not line.startswith("P") or len(line) < 11:
        raise GrammarError(f"malformed package {line!r}")
    for var in line[1:].split(";"):
        check_variable(var)


def check_script_output(lines: list[str], first: str = "e") -> int:
    """Check one script's reply (``lines`` without newlines, the final empty line included).

    Returns the number of data packages. Raises :class:`GrammarError` naming the line.
    """
    if not lines or lines[0] != first:
        raise GrammarError(f"reply must start with {first!r}, got {lines[:1]!r}")
    if lines[-1] != "" or "" in lines[:-1]:
        raise GrammarError("the reply must end with exactly one empty line, at its end")
    stack: list[str] = []
    framed = _framed_loops(lines)
    loop_line = 0
    packages = 0
    ended = False
    for number, line in enumerate(lines[1:-1], start=2):
        where = f"line {number} ({line!r})"
        if ended:
            raise GrammarError(f"{where}: output after an error")
        if number == 2 and line == "Z":
            continue
        opened = _OPEN.match(line)
        if opened:
            kind = opened[1]
            if kind == "M" and "M" in stack:
                raise GrammarError(f"{where}: measurement loop inside a measurement loop")
            if kind == "C" and (not stack or stack[-1] != "M"):
                raise GrammarError(f"{where}: a scan starts outside a measurement loop")
            if kind == "M":
                loop_line = number
            stack.append(kind)
        elif line == "L":
            stack.append("L")
        elif line in _CLOSE:
            if not stack or stack[-1] != _CLOSE[line]:
                raise GrammarError(f"{where}: closes {_CLOSE[line]!r} but the open scopes are {stack}")
            stack.pop()
        elif line.startswith("P"):
            if stack and stack[-1] == "M" and loop_line in framed:
                raise GrammarError(f"{where}: package outside a scan of a multi-scan loop")
            try:
                check_package(line)
            except GrammarError as exc:
                raise GrammarError(f"{where}: {exc}") from None
            packages += 1
        elif line.startswith("T"):
            if not all(32 <= ord(c) < 127 for c in line[1:]):
                raise GrammarError(f"{where}: non-printable text")
        elif _ERROR.match(line):
            ended = True
            stack.clear()
        else:
            raise GrammarError(f"{where}: not a MethodSCRIPT reply line")
    if stack:
        raise GrammarError(f"scopes left open at the end: {stack}")
    return packages


def _framed_loops(lines: list[str]) -> set[int]:
    """Line numbers of the ``M`` lines whose loop frames its data in scans (``C``...``-``)."""
    framed: set[int] = set()
    current: int | None = None
    for number, line in enumerate(lines, start=1):
        if line.startswith("M") and _OPEN.match(line):
            current = number
        elif line == "*":
            current = None
        elif current is not None and line.startswith("C") and _OPEN.match(line):
            framed.add(current)
    return framed
