"""A MethodSCRIPT interpreter for the simulated EmStat4 (the subset relaxlab uses).

The instrument-side half of MethodSCRIPT, written from the MethodSCRIPT manual: a script is
parsed completely first (syntax, declared variables, block structure: errors are reported
as ``!XXXX: Line L, Col C``) and then executed. Execution is a generator that yields the
absolute instrument time it next needs to reach (the next sample of a measurement loop), so
the endpoint can run a script lazily up to ``clock.now()`` and no further. Runtime errors are
reported as ``!XXXX: Line L`` and, as on the instrument, skip the ``on_finished:`` block.

Output follows the manual: ``M<technique id>`` when a measurement loop starts and ``*`` when
it ends, ``L``/``+`` around ``loop`` blocks, ``-`` between the scans of a multi-scan CV,
``P...`` data packages (2-letter type, 7 hex digits offset by 2**27, SI prefix, optional
``,1x`` status and ``,2xx`` range metadata), ``T...`` for ``send_string``.

This module imports nothing from ``drivers``: it parses the bytes itself.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: Error codes used by the simulator (MethodSCRIPT manual, appendix A).
ERROR_CODES: dict[int, str] = {
    0x0003: "the command was not recognized",
    0x0006: "communication mode invalid (no script is running / a script is running)",
    0x0007: "an argument has an unexpected value",
    0x0010: "a variable has become NaN or inf",
    0x0014: "cannot perform OCP measurement when cell on",
    0x0021: "the specified PGStat mode is not supported",
    0x0023: "command is invalid for the selected PGStat mode",
    0x001B: "this command or part of it is not supported by the current device",
    0x0028: "variable divided by zero",
    0x4001: "the script command is unknown",
    0x4004: "an unexpected character was encountered",
    0x4008: "this optional argument is not valid for this command",
    0x400B: "measurement loops cannot be placed inside other measurement loops",
    0x400C: "command not supported in current situation",
    0x4018: "the script has ended unexpectedly",
    0x401B: "the pck sequence is called wrong",
    0x4026: "the variable already exists when declared",
    0x4027: "this command requires the cell to be enabled with cell_on",
    0x4039: "the literal argument was not correctly formed",
    0x4204: "argument value must be positive for this command",
    0x4205: "argument value is outside the allowed bounds for this command",
    0x420B: "argument variable is not declared",
}

PREFIX = {
    "a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
}  # fmt: skip
_ENCODE_PREFIXES = ("f", "p", "n", "u", "m", " ", "k", "M", "G", "T")
_FACTOR = {**PREFIX, " ": 1.0}
_OFFSET = 1 << 27
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_FLOAT = re.compile(r"([-+]?\d+)([afpnumkMGTPE]?)\Z")
_INT = re.compile(r"([-+]?\d+)i\Z|0x([0-9A-Fa-f]+)i?\Z|0b([01]+)i?\Z")
_VARTYPE = re.compile(r"[a-z]{2}\Z")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
#: Technique ids of the ``M`` marker (manual: LSV 0000, CV 0005, CA 0007, CP 000A, OCP 000B).
TECHNIQUE_ID = {"lsv": "0000", "cv": "0005", "ca": "0007", "cp": "000A", "ocp": "000B"}
#: Argument counts of the measurement loops (outputs first).
MEAS_ARGS = {"cp": (2, 3), "ocp": (1, 2), "ca": (2, 3), "cv": (2, 5), "lsv": (2, 4)}
POTENTIOSTAT_MODES = (2, 3, 4)
GALVANOSTAT_MODE = 6
#: EmStat4 current ranges (A) and the range index reported in package metadata.
CURRENT_RANGES = {
    "HR": ((100e-9, 9), (1e-6, 12), (10e-6, 15), (100e-6, 18), (1e-3, 21), (10e-3, 24), (100e-3, 27)),
    "LR": ((1e-9, 3), (10e-9, 6), (100e-9, 9), (1e-6, 12), (10e-6, 15), (100e-6, 18), (1e-3, 21),
           (10e-3, 24)),
}  # fmt: skip
MAX_POTENTIAL_V = {"HR": 6.0, "LR": 3.0}


class ScriptError(Exception):
    """A parse (``col`` set) or runtime (``col`` None) error with a MethodSCRIPT code."""

    def __init__(self, code: int, line: int, col: int | None = None) -> None:
        self.code, self.line, self.col = code, line, col
        super().__init__(self.reply())

    def reply(self) -> str:
        where = f"Line {self.line}" + (f", Col {self.col}" if self.col is not None else "")
        return f"!{self.code:04X}: {where}"


@lru_cache(maxsize=4096)
def parse_literal(token: str) -> tuple[float, bool] | None:
    """``(value, is_integer)`` of a literal (``500m``, ``-2``, ``10i``, ``0x1F``) or None."""
    m = _FLOAT.match(token)
    if m:
        return int(m[1]) * PREFIX[m[2]], False
    m = _INT.match(token)
    if m:
        if m[1] is not None:
            return float(int(m[1])), True
        return float(int(m[2], 16) if m[2] else int(m[3], 2)), True
    return None


def encode_value(value: float, integer: bool = False) -> str:
    """7 hex digits (offset 2**27) and an SI prefix, with the finest prefix that fits."""
    if math.isnan(value):
        return "     nan"
    if integer:
        return f"{int(value) + _OFFSET:07X}i"
    for prefix in _ENCODE_PREFIXES:
        mantissa = round(value / _FACTOR[prefix])
        if -_OFFSET <= mantissa < _OFFSET:
            return f"{mantissa + _OFFSET:07X}{prefix}"
    raise ValueError(f"{value!r} cannot be encoded in a data package")


# ----------------------------------------------------------------------------- parse tree


@dataclass
class Cmd:
    name: str
    args: list[str]
    line: int


@dataclass
class If:
    branches: list[tuple[tuple[str, str, str] | None, list[Any]]]
    line: int


@dataclass
class Loop:
    cond: tuple[str, str, str]
    body: list[Any]
    line: int


@dataclass
class MeasLoop:
    kind: str
    args: list[str]
    body: list[Any]
    line: int
    nscans: str | None = None


@dataclass
class Program:
    main: list[Any]
    on_finished: list[Any] = field(default_factory=list)


_SIMPLE_COMMANDS = {
    "var": (1, 1), "store_var": (2, 3), "copy_var": (2, 2), "add_var": (2, 2),
    "sub_var": (2, 2), "mul_var": (2, 2), "div_var": (2, 2), "set_pgstat_chan": (1, 1),
    "set_pgstat_mode": (1, 1), "set_max_bandwidth": (1, 1), "set_range": (2, 2),
    "set_autoranging": (3, 3), "set_range_minmax": (3, 3), "set_e": (1, 1), "set_i": (1, 1),
    "cell_on": (0, 0), "cell_off": (0, 0), "timer_start": (0, 0), "timer_get": (1, 1),
    "pck_start": (0, 0), "pck_add": (1, 1), "pck_end": (0, 0), "breakloop": (0, 0),
}  # fmt: skip
#: Argument positions that must name a declared variable (written to).
_OUT_ARGS = {"copy_var": (1,), "add_var": (0,), "sub_var": (0,), "mul_var": (0,),
             "div_var": (0,), "timer_get": (0,), "pck_add": (0,), "store_var": (0,)}  # fmt: skip


def _tokenize(text: str) -> list[str]:
    return text.split("#", 1)[0].split()


def parse(lines: list[str]) -> Program:
    """Parse script lines (without the leading ``e`` and trailing empty line)."""
    declared: set[str] = set()
    root: list[Any] = []
    on_finished: list[Any] = []
    # stack of (kind, node, body list)
    stack: list[tuple[str, Any, list[Any]]] = [("root", None, root)]
    in_meas = 0
    finished_seen = False
    for number, raw in enumerate(lines, start=1):
        if raw.lstrip().startswith("send_string"):
            body = raw.lstrip()[len("send_string") :].strip()
            if len(body) < 2 or body[0] != '"' or body[-1] != '"':
                raise ScriptError(0x4039, number, raw.find("send_string") + 13)
            stack[-1][2].append(Cmd("send_string", [body[1:-1]], number))
            continue
        tokens = _tokenize(raw)
        if not tokens:
            continue
        spans = [m.start() + 1 for m in re.finditer(r"\S+", raw.split("#", 1)[0])]
        col, cols = spans[0], spans[1:]
        name, args = tokens[0], tokens[1:]
        if name == "on_finished:":
            if len(stack) != 1 or finished_seen:
                raise ScriptError(0x400C, number, col)
            finished_seen = True
            stack = [("root", None, on_finished)]
            continue
        if name.startswith("meas_loop_"):
            kind = name[len("meas_loop_") :]
            if kind not in MEAS_ARGS:
                raise ScriptError(0x4001, number, col)
            if in_meas:
                raise ScriptError(0x400B, number, col)
            nscans = None
            if args and args[-1].startswith("nscans("):
                if kind != "cv" or not args[-1].endswith(")"):
                    raise ScriptError(0x4008, number, col)
                nscans = args.pop()[7:-1]
                _check_value(nscans, declared, number, col)
            n_out, n_in = MEAS_ARGS[kind]
            if len(args) != n_out + n_in:
                raise ScriptError(0x0007, number, col)
            for a, c in zip(args[:n_out], cols, strict=False):
                if a not in declared:
                    raise ScriptError(0x420B, number, c)
            for a, c in zip(args[n_out:], cols[n_out:], strict=False):
                _check_value(a, declared, number, c)
            meas = MeasLoop(kind, args, [], number, nscans)
            stack[-1][2].append(meas)
            stack.append(("meas", meas, meas.body))
            in_meas += 1
            continue
        if name == "loop":
            cond = _parse_cond(args, declared, cols, number)
            loop = Loop(cond, [], number)
            stack[-1][2].append(loop)
            stack.append(("loop", loop, loop.body))
            continue
        if name == "endloop":
            if stack[-1][0] not in ("loop", "meas"):
                raise ScriptError(0x400C, number, col)
            kind, _, _ = stack.pop()
            if kind == "meas":
                in_meas -= 1
            continue
        if name == "if":
            cond = _parse_cond(args, declared, cols, number)
            branch = If([(cond, [])], number)
            stack[-1][2].append(branch)
            stack.append(("if", branch, branch.branches[0][1]))
            continue
        if name in ("elseif", "else"):
            if stack[-1][0] != "if":
                raise ScriptError(0x400C, number, col)
            _, node, _ = stack.pop()
            branch_cond = _parse_cond(args, declared, cols, number) if name == "elseif" else None
            if node.branches[-1][0] is None:
                raise ScriptError(0x400C, number, col)
            node.branches.append((branch_cond, []))
            stack.append(("if", node, node.branches[-1][1]))
            continue
        if name == "endif":
            if stack[-1][0] != "if":
                raise ScriptError(0x400C, number, col)
            stack.pop()
            continue
        if name not in _SIMPLE_COMMANDS:
            raise ScriptError(0x4001, number, col)
        lo, hi = _SIMPLE_COMMANDS[name]
        if not lo <= len(args) <= hi:
            raise ScriptError(0x0007, number, col)
        if name == "breakloop" and not any(k in ("loop", "meas") for k, _, _ in stack):
            raise ScriptError(0x400C, number, col)
        _check_args(name, args, declared, cols, number)
        if name == "var":
            declared.add(args[0])
        stack[-1][2].append(Cmd(name, args, number))
    if len(stack) != 1:
        raise ScriptError(0x4018, len(lines) + 1, 1)
    return Program(root, on_finished)


def _check_value(token: str, declared: set[str], number: int, col: int) -> None:
    if parse_literal(token) is not None or token in declared:
        return
    if _NAME.match(token):
        raise ScriptError(0x420B, number, col)
    if token[:1].isdigit() or token[:1] in "+-":
        raise ScriptError(0x4039, number, col)
    raise ScriptError(0x4004, number, col)


def _parse_cond(args: list[str], declared: set[str], cols: list[int], number: int) -> tuple[str, str, str]:
    if len(args) != 3 or args[1] not in _OPS:
        raise ScriptError(0x0007, number, cols[0] if cols else 1)
    _check_value(args[0], declared, number, cols[0])
    _check_value(args[2], declared, number, cols[2])
    return args[0], args[1], args[2]


def _check_args(name: str, args: list[str], declared: set[str], cols: list[int], number: int) -> None:
    if name == "var":
        if not _NAME.match(args[0]):
            raise ScriptError(0x4004, number, cols[0])
        if args[0] in declared:
            raise ScriptError(0x4026, number, cols[0])
        return
    outs = _OUT_ARGS.get(name, ())
    for pos, a in enumerate(args):
        col = cols[pos]
        if pos in outs:
            if a not in declared:
                raise ScriptError(0x420B if _NAME.match(a) else 0x4004, number, col)
        elif (
            name in ("set_range", "set_autoranging", "set_range_minmax")
            and pos == 0
            or name == "store_var"
            and pos == 2
        ):
            if not _VARTYPE.match(a):
                raise ScriptError(0x0007, number, col)
        else:
            _check_value(a, declared, number, col)
    if name == "set_pgstat_mode":
        lit = parse_literal(args[0])
        if lit is not None and int(lit[0]) not in (0, *POTENTIOSTAT_MODES, GALVANOSTAT_MODE):
            raise ScriptError(0x0021, number, cols[0])


# ----------------------------------------------------------------------------- execution


class _Break(Exception):
    pass


class Interpreter:
    """Runs one parsed :class:`Program` on ``hw`` (the simulated EmStat4 front end).

    ``hw`` offers ``advance(to_s)`` (simulate the cell up to an absolute instrument time
    under the present setting), ``measure()`` -> (voltage_V, current_A), ``set_mode``,
    ``cell_on``/``cell_off``, ``apply_current``/``apply_voltage`` and ``current_range``.
    Output lines go to ``emit``.
    """

    def __init__(self, program: Program, hw: Any, emit: Callable[[str], None], t0: float) -> None:
        self.program = program
        self.hw = hw
        self.emit = emit
        self.t = t0
        self.timer0 = t0
        self.vals: dict[str, float] = {}
        self.types: dict[str, str] = {}
        self.ints: set[str] = set()
        self.pck: list[str] | None = None
        self.in_meas = False

    # -- values
    def value(self, token: str, line: int) -> float:
        if token in self.vals:
            return self.vals[token]
        lit = parse_literal(token)
        if lit is None:  # pragma: no cover - parse() already checked
            raise ScriptError(0x420B, line)
        return lit[0]

    def _is_int(self, token: str) -> bool:
        if token in self.vals:
            return token in self.ints
        lit = parse_literal(token)
        return bool(lit and lit[1])

    def _set(self, name: str, value: float, integer: bool | None = None) -> None:
        if value - value != 0.0:  # nan or inf
            raise ValueError("non-finite")
        self.vals[name] = value
        if integer is True:
            self.ints.add(name)
        elif integer is False:
            self.ints.discard(name)

    def cond(self, c: tuple[str, str, str], line: int) -> bool:
        return _OPS[c[1]](self.value(c[0], line), self.value(c[2], line))

    # -- running
    def run(self) -> Generator[float, None, None]:
        """Yield instrument times to wait for; returns when the main block is done."""
        try:
            yield from self.block(self.program.main)
        except _Break:  # pragma: no cover - parse() rejects breakloop outside loops
            pass

    def run_on_finished(self) -> None:
        """Run the ``on_finished:`` block now (no waiting inside it)."""
        self.in_meas = False
        gen = self.block(self.program.on_finished)
        for _ in gen:  # a measurement loop here would need time: skip its samples
            pass

    def block(self, nodes: list[Any]) -> Iterator[float]:
        for node in nodes:
            if type(node) is Cmd:
                self.command(node)
            elif type(node) is If:
                for cond, body in node.branches:
                    if cond is None or self.cond(cond, node.line):
                        yield from self.block(body)
                        break
            elif type(node) is Loop:
                self.emit("L")
                try:
                    while self.cond(node.cond, node.line):
                        yield from self.block(node.body)
                except _Break:
                    pass
                self.emit("+")
            else:
                yield from self.meas_loop(node)

    def meas_loop(self, node: MeasLoop) -> Iterator[float]:
        hw, line, kind, args = self.hw, node.line, node.kind, node.args
        n_out = MEAS_ARGS[kind][0]
        params = [self.value(a, line) for a in args[n_out:]]
        if kind == "cp":
            if hw.mode != GALVANOSTAT_MODE:
                raise ScriptError(0x0023, line)
            if not hw.cell_is_on:
                raise ScriptError(0x4027, line)
            current, dt, run = params
            if abs(current) > hw.max_current_A:
                raise ScriptError(0x4205, line)
            samples: Iterator[tuple[float, Callable[[], None]]] = self._timed(
                dt, run, line, lambda: hw.apply_current(current)
            )
        elif kind == "ocp":
            if hw.cell_is_on:
                raise ScriptError(0x0014, line)
            dt, run = params
            samples = self._timed(dt, run, line, hw.rest)
        elif kind == "ca":
            if hw.mode not in POTENTIOSTAT_MODES:
                raise ScriptError(0x0023, line)
            if not hw.cell_is_on:
                raise ScriptError(0x4027, line)
            e, dt, run = params
            hw.check_potential(e, line)
            samples = self._timed(dt, run, line, lambda: hw.apply_voltage(e))
        else:
            if hw.mode not in POTENTIOSTAT_MODES:
                raise ScriptError(0x0023, line)
            if not hw.cell_is_on:
                raise ScriptError(0x4027, line)
            nscans = 1 if node.nscans is None else int(self.value(node.nscans, line))
            samples = self._sweep(kind, params, nscans, line)
        out = args[:n_out]
        self.emit("M" + TECHNIQUE_ID[kind])
        self.in_meas = True
        try:
            for when, setter in samples:
                setter()
                yield when
                hw.advance(when)
                self.t = when
                voltage, current = hw.measure()
                if kind in ("cp", "ocp"):
                    self._set(out[0], voltage, False)
                    self.types[out[0]] = "ab"
                else:
                    self._set(out[0], hw.applied_voltage_V, False)
                    self.types[out[0]] = "da"
                if n_out == 2:
                    self._set(out[1], current, False)
                    self.types[out[1]] = "ba"
                yield from self.block(node.body)
        except _Break:
            pass
        finally:
            self.in_meas = False
            hw.end_loop()
        self.emit("*")

    def _timed(
        self, dt: float, run: float, line: int, setter: Callable[[], None]
    ) -> Iterator[tuple[float, Callable[[], None]]]:
        if dt <= 0 or run <= 0:
            raise ScriptError(0x4204, line)
        start = self.t
        n = int(math.floor(run / dt + 1e-9))
        for k in range(1, n + 1):
            yield start + k * dt, setter

    def _sweep(
        self, kind: str, params: list[float], nscans: int, line: int
    ) -> Iterator[tuple[float, Callable[[], None]]]:
        if kind == "lsv":
            begin, end, step, rate = params
            vertices = [begin, end]
        else:
            begin, v1, v2, step, rate = params
            vertices = [begin, v1, v2, begin]
        if step <= 0 or rate <= 0:
            raise ScriptError(0x4204, line)
        for v in vertices:
            self.hw.check_potential(v, line)
        dt = step / rate
        t = self.t
        for scan in range(nscans):
            if scan:
                self.emit("-")
            first = True
            for a, b in zip(vertices[:-1], vertices[1:], strict=True):
                n = max(1, int(round(abs(b - a) / step)))
                for k in range(0 if first else 1, n + 1):
                    e = a + (b - a) * k / n
                    t += dt
                    yield t, functools.partial(self.hw.apply_voltage, e)
                first = False

    # -- simple commands
    def command(self, node: Cmd) -> None:
        try:
            handler = self._handlers.get(node.name)
            if handler is not None:
                handler(node.args, node.line)
            else:
                a, line = node.args, node.line
                if node.name in ("set_range", "set_autoranging", "set_range_minmax"):
                    values: list[Any] = [a[0], *(self.value(x, line) for x in a[1:])]
                else:
                    values = [self.value(x, line) for x in a]
                self.hw.command(node.name, values, line)
        except ValueError as exc:
            raise ScriptError(0x0010 if "non-finite" in str(exc) else 0x0007, node.line) from exc

    @property
    def _handlers(self) -> dict[str, Callable[[list[str], int], None]]:
        try:
            return self.__handlers
        except AttributeError:
            self.__handlers: dict[str, Callable[[list[str], int], None]] = {
                "var": self._var, "store_var": self._store_var, "copy_var": self._copy_var,
                "add_var": self._add_var, "sub_var": self._sub_var, "mul_var": self._mul_var,
                "div_var": self._div_var, "pck_start": self._pck_start, "pck_add": self._pck_add,
                "pck_end": self._pck_end, "send_string": self._send_string,
                "timer_start": self._timer_start, "timer_get": self._timer_get,
                "breakloop": self._breakloop,
            }  # fmt: skip
            return self.__handlers

    def _var(self, a: list[str], line: int) -> None:
        self.vals[a[0]] = 0.0
        self.types[a[0]] = "aa"

    def _store_var(self, a: list[str], line: int) -> None:
        self._set(a[0], self.value(a[1], line), self._is_int(a[1]))
        if len(a) == 3:
            self.types[a[0]] = a[2]

    def _copy_var(self, a: list[str], line: int) -> None:
        self._set(a[1], self.value(a[0], line), self._is_int(a[0]))

    def _add_var(self, a: list[str], line: int) -> None:
        self._set(a[0], self.vals[a[0]] + self.value(a[1], line))

    def _sub_var(self, a: list[str], line: int) -> None:
        self._set(a[0], self.vals[a[0]] - self.value(a[1], line))

    def _mul_var(self, a: list[str], line: int) -> None:
        self._set(a[0], self.vals[a[0]] * self.value(a[1], line))

    def _div_var(self, a: list[str], line: int) -> None:
        divisor = self.value(a[1], line)
        if divisor == 0:
            raise ScriptError(0x0028, line)
        self._set(a[0], self.vals[a[0]] / divisor)

    def _pck_start(self, a: list[str], line: int) -> None:
        if self.pck is not None:
            raise ScriptError(0x401B, line)
        self.pck = []

    def _pck_add(self, a: list[str], line: int) -> None:
        if self.pck is None:
            raise ScriptError(0x401B, line)
        self.pck.append(self._encode_var(a[0]))

    def _pck_end(self, a: list[str], line: int) -> None:
        if not self.pck:
            raise ScriptError(0x401B, line)
        self.emit("P" + ";".join(self.pck))
        self.pck = None

    def _send_string(self, a: list[str], line: int) -> None:
        self.emit("T" + a[0])

    def _timer_start(self, a: list[str], line: int) -> None:
        self.timer0 = self.t

    def _timer_get(self, a: list[str], line: int) -> None:
        self._set(a[0], self.t - self.timer0, False)
        self.types[a[0]] = "eb"

    def _breakloop(self, a: list[str], line: int) -> None:
        raise _Break

    def _encode_var(self, name: str) -> str:
        value = self.vals[name]
        vtype = self.types.get(name, "aa")
        text = vtype + encode_value(value, name in self.ints)
        if vtype == "ba":
            status, index = self.hw.current_metadata(value)
            text += f",1{status:X},2{index:02X}"
        elif vtype == "ab":
            text += ",10"
        return text
