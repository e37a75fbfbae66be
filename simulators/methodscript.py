"""A MethodSCRIPT interpreter for the simulated EmStat4.

The instrument-side half of MethodSCRIPT, written from the MethodSCRIPT manual: a script is
parsed completely first (syntax, declared variables and arrays, block structure: errors are
reported as ``!XXXX: Line L, Col C``) and then executed. Execution is a generator that yields
the absolute script time it next needs to reach (the next sample of a measurement loop, the end
of a ``wait``), so the endpoint can run a script lazily up to ``clock.now()`` and no further.
Runtime errors are reported as ``!XXXX: Line L`` and, as on the instrument, skip the
``on_finished:`` block.

Output follows the manual: ``M<technique id>`` when a measurement loop starts and ``*`` when
it ends, ``L``/``+`` around ``loop`` blocks, ``C<4 hex digits>`` at the start and ``-`` at the
end of every scan of a multi-scan CV (``nscans(n)``), ``P...`` data packages (2-letter type,
7 hex digits offset by 2**27, SI prefix, optional ``,1x`` status and ``,2xx`` range metadata),
``T...`` for ``send_string``.

Every command the simulator accepts is declared in :data:`COMMANDS` and :data:`MEAS_LOOPS`
(the docs table ``docs/simulator-emstat4.md`` is generated from them); commands of
MethodSCRIPT that need hardware the simulated EmStat4 lacks (GPIO, files, I2C, display,
multiplexer, RTC...) are listed in :data:`DEVICE_SPECIFIC` and refused at parse time with
``!001B`` ("not supported by the current device").

This module imports nothing from ``drivers``: it parses the bytes itself.
"""

from __future__ import annotations

import cmath
import functools
import itertools
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
    0x0008: "command exceeds maximum length",
    0x000C: "cannot run a script without loading one first",
    0x0010: "a variable has become NaN or inf",
    0x0014: "cannot perform OCP measurement when cell on",
    0x001B: "this command or part of it is not supported by the current device",
    0x0021: "the specified PGStat mode is not supported",
    0x0023: "command is invalid for the selected PGStat mode",
    0x0028: "variable divided by zero",
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
    0x4039: "the literal argument was not correctly formed",
    0x4200: "argument value cannot be negative for this command",
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
_ELEMENT = re.compile(r"([a-z_][a-z0-9_]*)\[([^\[\]\s]+)\]\Z")
_FLOAT = re.compile(r"([-+]?\d+)([afpnumkMGTPE]?)\Z")
_INT = re.compile(r"([-+]?\d+)i\Z|0x([0-9A-Fa-f]+)i?\Z|0b([01]+)i?\Z")
_VARTYPE = re.compile(r"[a-z]{2}\Z")
_TOKEN = re.compile(r"[a-z_]+\([^)]*\)|\S+")
_FIELD = re.compile(r"\{([^{}]*)\}")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
POTENTIOSTAT_MODES = (2, 3, 4)
GALVANOSTAT_MODE = 6
#: EmStat4 current ranges (A) and the range index reported in package metadata.
CURRENT_RANGES = {
    "HR": ((100e-9, 9), (1e-6, 12), (10e-6, 15), (100e-6, 18), (1e-3, 21), (10e-3, 24), (100e-3, 27)),
    "LR": ((1e-9, 3), (10e-9, 6), (100e-9, 9), (1e-6, 12), (10e-6, 15), (100e-6, 18), (1e-3, 21),
           (10e-3, 24)),
}  # fmt: skip
MAX_POTENTIAL_V = {"HR": 6.0, "LR": 3.0}
#: Status nibble of package metadata (manual): 1 timing error, 2 overload, 4 underload.
STATUS_OVERLOAD = 0x2


@dataclass(frozen=True)
class MeasLoopSpec:
    """One ``meas_loop_<kind>``: its outputs (with their variable types), inputs and id."""

    technique_id: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    mode: str  # "potentiostat", "galvanostat" or "ocp"
    options: tuple[str, ...] = ()
    doc: str = ""

    @property
    def arity(self) -> tuple[int, int]:
        return len(self.outputs), len(self.inputs)


#: Every measurement loop the simulator runs. Technique ids of LSV, CV, CA, CP, OCP and EIS are
#: the manual's; the others follow PalmSens' technique numbering (see the docs table).
MEAS_LOOPS: dict[str, MeasLoopSpec] = {
    "lsv": MeasLoopSpec("0000", ("da", "ba"), ("E_begin", "E_end", "E_step", "scan_rate"),
                        "potentiostat", doc="linear sweep voltammetry"),
    "dpv": MeasLoopSpec("0001", ("da", "ba"), ("E_begin", "E_end", "E_step", "E_pulse", "t_pulse",
                        "scan_rate"), "potentiostat",
                        doc="differential pulse: I = I(end of pulse) - I(before the pulse)"),
    "swv": MeasLoopSpec("0002", ("da", "ba", "ba", "ba"), ("E_begin", "E_end", "E_step", "E_amp",
                        "freq"), "potentiostat",
                        doc="square wave: outputs E, I_forward - I_reverse, I_forward, I_reverse"),
    "npv": MeasLoopSpec("0003", ("da", "ba"), ("E_begin", "E_end", "E_step", "t_pulse",
                        "scan_rate"), "potentiostat",
                        doc="normal pulse: pulses from E_begin, current at the end of each pulse"),
    "acv": MeasLoopSpec("0004", ("da", "ba", "ch", "cj", "cc", "cd"), ("E_begin", "E_end", "E_step",
                        "scan_rate", "E_amp", "freq"), "potentiostat",
                        doc="AC voltammetry: E_dc, I_dc, E_ac, I_ac, Z_real, Z_imag from the cell's impedance"),
    "cv": MeasLoopSpec("0005", ("da", "ba"), ("E_begin", "E_vtx1", "E_vtx2", "E_step", "scan_rate"),
                       "potentiostat", ("nscans",),
                       doc="cyclic voltammetry; nscans(n): C + scan index (4 hex digits) before, - after every scan"),
    "ca": MeasLoopSpec("0007", ("da", "ba"), ("E", "t_interval", "t_run"), "potentiostat",
                       doc="chronoamperometry"),
    "pad": MeasLoopSpec("0008", ("da", "ba"), ("E_dc", "E_pulse", "t_pulse", "t_interval", "t_run",
                        "mode"), "potentiostat",
                        doc="pulsed amperometric detection; mode 1 I_dc, 2 I_pulse, 3 I_pulse - I_dc"),
    "cp": MeasLoopSpec("000A", ("ab", "ba"), ("I", "t_interval", "t_run"), "galvanostat",
                       doc="chronopotentiometry"),
    "ocp": MeasLoopSpec("000B", ("ab",), ("t_interval", "t_run"), "ocp",
                        doc="open circuit potentiometry (cell off)"),
    "eis": MeasLoopSpec("000E", ("dc", "cc", "cd"), ("E_ac", "f_start", "f_end", "n_freq", "E_dc"),
                        "potentiostat", ("eis_tdd",),
                        doc="impedance spectrum (log-spaced) of the cell's Randles circuit; "
                            "eis_tdd(E_array I_array n_out fs_out 0) fills time-domain arrays"),
    "lsp": MeasLoopSpec("0013", ("ab", "ba"), ("I_begin", "I_end", "I_step", "scan_rate"),
                        "galvanostat", doc="linear sweep potentiometry (current ramp)"),
    "geis": MeasLoopSpec("0015", ("dc", "cc", "cd"), ("I_ac", "f_start", "f_end", "n_freq", "I_dc"),
                         "galvanostat", doc="galvanostatic impedance spectrum of the cell's Randles circuit"),
}  # fmt: skip
TECHNIQUE_ID = {kind: spec.technique_id for kind, spec in MEAS_LOOPS.items()}
MEAS_ARGS = {kind: spec.arity for kind, spec in MEAS_LOOPS.items()}


@dataclass(frozen=True)
class CommandSpec:
    """A script command: argument count range, positions written to, what it does."""

    min_args: int
    max_args: int
    outputs: tuple[int, ...] = ()
    doc: str = ""
    vartype_args: tuple[int, ...] = ()


#: Every non-loop script command the simulator runs (``if``/``loop``/... are in BLOCK_COMMANDS).
COMMANDS: dict[str, CommandSpec] = {
    "var": CommandSpec(1, 1, doc="declare a variable (value 0)"),
    "array": CommandSpec(2, 2, doc="declare an array of N elements (0); elements are name[index]"),
    "store_var": CommandSpec(2, 3, (0,), "store a literal (and optionally a variable type)", (2,)),
    "copy_var": CommandSpec(2, 2, (1,), "copy a value"),
    "add_var": CommandSpec(2, 2, (0,), "a += b"),
    "sub_var": CommandSpec(2, 2, (0,), "a -= b"),
    "mul_var": CommandSpec(2, 2, (0,), "a *= b"),
    "div_var": CommandSpec(2, 2, (0,), "a /= b (!0028 on zero)"),
    "pow_var": CommandSpec(2, 2, (0,), "a = a ** b"),
    "log_var": CommandSpec(1, 1, (0,), "a = ln(a)"),
    "float_to_int": CommandSpec(1, 1, (0,), "round down to an integer (within 1e-9 of one: that one)"),
    "int_to_float": CommandSpec(1, 1, (0,), "integer to float"),
    "bit_and_var": CommandSpec(2, 2, (0,), "a &= b (integers)"),
    "bit_or_var": CommandSpec(2, 2, (0,), "a |= b"),
    "bit_xor_var": CommandSpec(2, 2, (0,), "a ^= b"),
    "bit_lsl_var": CommandSpec(2, 2, (0,), "a <<= b"),
    "bit_lsr_var": CommandSpec(2, 2, (0,), "a >>= b"),
    "bit_inv_var": CommandSpec(1, 1, (0,), "a = ~a"),
    "alter_vartype": CommandSpec(2, 2, (0,), "change a variable's type", (1,)),
    "array_set": CommandSpec(3, 3, doc="array[index] = value"),
    "array_get": CommandSpec(3, 3, (2,), "out = array[index]"),
    "mean": CommandSpec(2, 2, (1,), "mean of all elements of an array"),
    "linear_fit": CommandSpec(4, 4, (2, 3), "least-squares slope and intercept of y(x) arrays"),
    "smooth": CommandSpec(3, 4, doc="moving average of half-width L: smooth src [n] dst L"),
    "peak_detect": CommandSpec(6, 6, doc="peaks of array (n points) by prominence: "
                               "peak_detect y n idx_array height_array 0 min_height (-1 = none)"),
    "set_pgstat_chan": CommandSpec(1, 1, doc="channel (0 only)"),
    "set_pgstat_mode": CommandSpec(1, 1, doc="0 off, 2/3/4 potentiostat, 6 galvanostat"),
    "set_max_bandwidth": CommandSpec(1, 1, doc="accepted (no filter is simulated)"),
    "set_acquisition_frac_autoadjust": CommandSpec(1, 1, doc="accepted (no effect simulated)"),
    "set_range": CommandSpec(2, 2, doc="starting range: the smallest range holding the value", vartype_args=(0,)),
    "set_autoranging": CommandSpec(3, 3, doc="autorange between the ranges holding min and max; "
                                   "currents outside are clipped at full scale (status overload)",
                                   vartype_args=(0,)),
    "set_range_minmax": CommandSpec(3, 3, doc="accepted (potential window)", vartype_args=(0,)),
    "set_e": CommandSpec(1, 1, doc="applied potential (potentiostat modes)"),
    "set_i": CommandSpec(1, 1, doc="applied current (galvanostat mode)"),
    "cell_on": CommandSpec(0, 1, doc="connect the cell; cell_on ocp(v): first set E to the value of v"),
    "cell_off": CommandSpec(0, 0, doc="disconnect the cell (open circuit)"),
    "meas": CommandSpec(3, 3, (1,), "meas t out type: one reading (ab potential or ba current) "
                        "averaged over t seconds; other types (e.g. ef, board temperature) !001B", (2,)),
    "timer_start": CommandSpec(0, 0, doc="restart the script timer"),
    "timer_get": CommandSpec(1, 1, (0,), "seconds since timer_start (type eb)"),
    "wait": CommandSpec(1, 1, doc="wait t seconds"),
    "hibernate": CommandSpec(2, 2, doc="hibernate mask t: with the timer as the only wake-up source "
                             "(mask 0x04) the script sleeps t seconds, the cell kept as set; other "
                             "wake-up sources (communication 0x01, WAKE pin 0x02, tap 0x08) !001B"),
    "notify_led": CommandSpec(1, 1, doc="accepted (the status LED is not simulated)"),
    "set_int": CommandSpec(1, 1, doc="start an interval timer of t seconds"),
    "await_int": CommandSpec(0, 0, doc="wait for the interval timer's next tick"),
    "pck_start": CommandSpec(0, 0, doc="start a data package"),
    "pck_add": CommandSpec(1, 1, doc="add a variable (or array element) to the package"),
    "pck_end": CommandSpec(0, 0, doc="send the package (P line)"),
    "send_string": CommandSpec(1, 1, doc='send "text" or f"text {var}" as a T line'),
    "set_script_output": CommandSpec(1, 1, doc="0 no P/T output, 1 normal; 2/3 (file) !001B"),
    "breakloop": CommandSpec(0, 0, doc="leave the innermost loop"),
    "abort": CommandSpec(0, 0, doc="end the script (on_finished: runs)"),
}  # fmt: skip

BLOCK_COMMANDS = {
    "loop": "loop a <op> b ... endloop (L/+ around it)",
    "endloop": "end of loop or measurement loop",
    "if": "if a <op> b (<, <=, >, >=, ==, !=)",
    "elseif": "elseif a <op> b",
    "else": "else",
    "endif": "end of if",
    "on_finished:": "block run when the script ends or is aborted (not after a runtime error)",
}

#: Variable types ``meas`` reads on the simulated EmStat4 (others: !001B, no such sensor).
MEAS_TYPES = ("ab", "ba")
#: ``hibernate``'s wake-up bit of the timer, the only wake-up source simulated.
HIBERNATE_TIMER = 0x04

#: MethodSCRIPT commands for hardware the simulated EmStat4 lacks: refused with !001B.
DEVICE_SPECIFIC = (
    "set_gpio", "set_gpio_cfg", "set_gpio_msk", "set_gpio_pullup", "get_gpio",
    "file_open", "file_close", "file_read", "file_write", "file_remove", "file_list",
    "i2c_config", "i2c_write", "i2c_read", "i2c_write_byte", "i2c_read_byte", "i2c_write_read",
    "display_text", "display_clear", "display_draw", "display_icon", "display_btns",
    "display_progress", "display_inp_num", "display_scroll_add", "display_scroll_get",
    "mux_config", "mux_set_channel", "mux_get_channel_count", "meas_loop_ca_alt_mux",
    "rtc_get", "rtc_set", "get_time", "battery_perc", "beep",
    "qr_scan", "set_bipot_mode", "set_bipot_potential", "set_e_aux", "set_cr", "set_poly_we_mode",
)  # fmt: skip


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


@lru_cache(maxsize=4096)
def split_element(token: str) -> tuple[str, str] | None:
    """``('a', 'i')`` for an array element ``a[i]``, else None."""
    m = _ELEMENT.match(token)
    return (m[1], m[2]) if m else None


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


def to_int(value: float) -> int:
    """Integer part of a float, taking a float within 1e-9 of an integer as that integer
    (``0.02 / 100u`` is 199.99999999999997 in binary floating point, meant as 200)."""
    nearest = round(value)
    if abs(value - nearest) <= 1e-9 * max(1.0, abs(value)):
        return int(nearest)
    return math.floor(value)


def format_number(value: float, integer: bool) -> str:
    """How f-strings of ``send_string`` print a value (integers plainly, else 6 digits)."""
    if integer:
        return str(int(value))
    return f"{value:.6g}"


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
    options: dict[str, list[str]] = field(default_factory=dict)

    @property
    def nscans(self) -> str | None:
        opt = self.options.get("nscans")
        return opt[0] if opt else None


@dataclass
class Program:
    main: list[Any]
    on_finished: list[Any] = field(default_factory=list)


class _Scope:
    """Names declared so far (``var`` and ``array``)."""

    def __init__(self) -> None:
        self.vars: set[str] = set()
        self.arrays: set[str] = set()

    def check_value(self, token: str, number: int, col: int) -> None:
        """An input operand: literal, declared variable or array element."""
        if parse_literal(token) is not None or token in self.vars:
            return
        element = split_element(token)
        if element is not None:
            self.check_element(element, number, col)
            return
        if _NAME.match(token):
            raise ScriptError(0x420B, number, col)
        if token[:1].isdigit() or token[:1] in "+-":
            raise ScriptError(0x4039, number, col)
        raise ScriptError(0x4004, number, col)

    def check_element(self, element: tuple[str, str], number: int, col: int) -> None:
        name, index = element
        if name not in self.arrays:
            raise ScriptError(0x420B, number, col)
        if parse_literal(index) is None and index not in self.vars:
            raise ScriptError(0x420B if _NAME.match(index) else 0x4004, number, col + len(name) + 1)

    def check_output(self, token: str, number: int, col: int) -> None:
        """An operand written to: declared variable or array element."""
        if token in self.vars:
            return
        element = split_element(token)
        if element is not None:
            self.check_element(element, number, col)
            return
        raise ScriptError(0x420B if _NAME.match(token) else 0x4004, number, col)

    def check_array(self, token: str, number: int, col: int) -> None:
        if token not in self.arrays:
            raise ScriptError(0x420B if _NAME.match(token) else 0x4004, number, col)


#: Which arguments are whole arrays (not values), per command.
_ARRAY_ARGS = {"array_set": (0,), "array_get": (0,), "mean": (0,), "linear_fit": (0, 1),
               "peak_detect": (0, 2, 3)}  # fmt: skip


def parse(lines: list[str]) -> Program:
    """Parse script lines (without the leading ``e`` and trailing empty line)."""
    scope = _Scope()
    root: list[Any] = []
    on_finished: list[Any] = []
    # stack of (kind, node, body list)
    stack: list[tuple[str, Any, list[Any]]] = [("root", None, root)]
    in_meas = 0
    finished_seen = False
    for number, raw in enumerate(lines, start=1):
        stripped = raw.lstrip()
        if stripped.startswith("send_string") and stripped[11:12] in (" ", "\t"):
            stack[-1][2].append(_parse_send_string(raw, scope, number))
            continue
        code = raw.split("#", 1)[0]
        matches = list(_TOKEN.finditer(code))
        if not matches:
            continue
        tokens = [m[0] for m in matches]
        cols = [m.start() + 1 for m in matches]
        name, args, col, arg_cols = tokens[0], tokens[1:], cols[0], cols[1:]
        if name == "on_finished:":
            if len(stack) != 1 or finished_seen:
                raise ScriptError(0x400C, number, col)
            finished_seen = True
            stack = [("root", None, on_finished)]
            continue
        if name in DEVICE_SPECIFIC:
            raise ScriptError(0x001B, number, col)
        if name.startswith("meas_loop_"):
            kind = name[len("meas_loop_") :]
            spec = MEAS_LOOPS.get(kind)
            if spec is None:
                raise ScriptError(0x4001, number, col)
            if in_meas:
                raise ScriptError(0x400B, number, col)
            options: dict[str, list[str]] = {}
            while args and args[-1].endswith(")") and "(" in args[-1]:
                opt_col = arg_cols[len(args) - 1]
                opt_name, _, inner = args.pop()[:-1].partition("(")
                if opt_name not in spec.options:
                    raise ScriptError(0x4008, number, opt_col)
                options[opt_name] = inner.split()
                _check_option(opt_name, options[opt_name], scope, number, opt_col)
            n_out, n_in = spec.arity
            if len(args) != n_out + n_in:
                raise ScriptError(0x0007, number, col)
            for a, c in zip(args[:n_out], arg_cols, strict=False):
                scope.check_output(a, number, c)
            for a, c in zip(args[n_out:], arg_cols[n_out:], strict=False):
                scope.check_value(a, number, c)
            meas = MeasLoop(kind, args, [], number, options)
            stack[-1][2].append(meas)
            stack.append(("meas", meas, meas.body))
            in_meas += 1
            continue
        if name == "loop":
            cond = _parse_cond(args, scope, arg_cols, number, col)
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
            cond = _parse_cond(args, scope, arg_cols, number, col)
            branch = If([(cond, [])], number)
            stack[-1][2].append(branch)
            stack.append(("if", branch, branch.branches[0][1]))
            continue
        if name in ("elseif", "else"):
            if stack[-1][0] != "if":
                raise ScriptError(0x400C, number, col)
            _, node, _ = stack.pop()
            branch_cond = _parse_cond(args, scope, arg_cols, number, col) if name == "elseif" else None
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
        spec_cmd = COMMANDS.get(name)
        if spec_cmd is None:
            raise ScriptError(0x4001, number, col)
        if not spec_cmd.min_args <= len(args) <= spec_cmd.max_args:
            raise ScriptError(0x0007, number, col)
        if name == "breakloop" and not any(k in ("loop", "meas") for k, _, _ in stack):
            raise ScriptError(0x400C, number, col)
        _check_args(name, spec_cmd, args, scope, arg_cols, number)
        if name == "var":
            scope.vars.add(args[0])
        elif name == "array":
            scope.arrays.add(args[0])
        stack[-1][2].append(Cmd(name, args, number))
    if len(stack) != 1:
        raise ScriptError(0x4018, len(lines) + 1, 1)
    return Program(root, on_finished)


def _parse_send_string(raw: str, scope: _Scope, number: int) -> Cmd:
    start = raw.find("send_string")
    body = raw[start + len("send_string") :].strip()
    col = start + 13
    fmt = body.startswith('f"')
    text = body[1:] if fmt else body
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ScriptError(0x4039, number, col)
    text = text[1:-1]
    if fmt:
        for m in _FIELD.finditer(text):
            scope.check_value(m[1].strip(), number, col + 2 + m.start())
    return Cmd("send_string", [text, "f" if fmt else ""], number)


def _check_option(name: str, values: list[str], scope: _Scope, number: int, col: int) -> None:
    if name == "nscans":
        if len(values) != 1:
            raise ScriptError(0x4008, number, col)
        scope.check_value(values[0], number, col)
    elif name == "eis_tdd":
        if len(values) != 5:
            raise ScriptError(0x4008, number, col)
        scope.check_array(values[0], number, col)
        scope.check_array(values[1], number, col)
        scope.check_output(values[2], number, col)
        scope.check_output(values[3], number, col)
        scope.check_value(values[4], number, col)


def _parse_cond(
    args: list[str], scope: _Scope, cols: list[int], number: int, col: int
) -> tuple[str, str, str]:
    if len(args) != 3 or args[1] not in _OPS:
        raise ScriptError(0x0007, number, cols[0] if cols else col)
    scope.check_value(args[0], number, cols[0])
    scope.check_value(args[2], number, cols[2])
    return args[0], args[1], args[2]


def _check_args(
    name: str, spec: CommandSpec, args: list[str], scope: _Scope, cols: list[int], number: int
) -> None:
    if name in ("var", "array"):
        if not _NAME.match(args[0]):
            raise ScriptError(0x4004, number, cols[0])
        if args[0] in scope.vars or args[0] in scope.arrays:
            raise ScriptError(0x4026, number, cols[0])
        if name == "array":
            scope.check_value(args[1], number, cols[1])
        return
    if name == "cell_on" and args:
        inner = args[0][4:-1].strip() if args[0].startswith("ocp(") and args[0].endswith(")") else ""
        if not inner:
            raise ScriptError(0x4008, number, cols[0])
        scope.check_value(inner, number, cols[0] + 4)
        return
    arrays = _ARRAY_ARGS.get(name, ())
    for pos, a in enumerate(args):
        col = cols[pos]
        if pos in spec.vartype_args:
            if not _VARTYPE.match(a):
                raise ScriptError(0x0007, number, col)
        elif pos in arrays or name == "smooth" and (pos == 0 or pos == len(args) - 2):
            scope.check_array(a, number, col)
        elif pos in spec.outputs:
            scope.check_output(a, number, col)
        else:
            scope.check_value(a, number, col)
    if name == "meas" and args[2] not in MEAS_TYPES:
        raise ScriptError(0x001B, number, cols[2])  # a quantity this unit has no sensor for
    if name == "hibernate":
        lit = parse_literal(args[0])
        if lit is not None and to_int(lit[0]) != HIBERNATE_TIMER:
            raise ScriptError(0x001B, number, cols[0])  # a wake-up source needing hardware
    if name == "set_pgstat_mode":
        lit = parse_literal(args[0])
        if lit is not None and int(lit[0]) not in (0, *POTENTIOSTAT_MODES, GALVANOSTAT_MODE):
            raise ScriptError(0x0021, number, cols[0])


# ----------------------------------------------------------------------------- execution


class _Break(Exception):
    pass


class _Abort(Exception):
    pass


#: Loop iterations between checkpoints at which a tight loop lets commands (Z) in.
SPIN_CHECKPOINT = 4096
_SAMPLE = object()  # a technique generator's "outputs are set: run the loop body"
_SCAN_START = object()  # ... "a scan of a multi-scan CV starts" (C<scan>)
_SCAN_END = object()  # ... "that scan has ended" (-)


class Interpreter:
    """Runs one parsed :class:`Program` on ``hw`` (the simulated EmStat4 front end).

    ``hw`` offers ``advance(to_s)`` (simulate the cell up to a script time under the present
    setting), ``measure()`` -> (voltage_V, current_A), ``read_current(current_A)`` ->
    (reported, status, range index), ``impedance(f_Hz)`` -> complex ohm, ``mode``,
    ``cell_is_on``, ``apply_current``/``apply_voltage``/``rest`` and ``command``.
    Output lines go to ``emit``.
    """

    def __init__(self, program: Program, hw: Any, emit: Callable[[str], None], t0: float) -> None:
        self.program = program
        self.hw = hw
        self._emit = emit
        self.t = t0
        self.timer0 = t0
        self.vals: dict[str, float] = {}
        self.types: dict[str, str] = {}
        self.ints: set[str] = set()
        self.meta: dict[str, tuple[int, int]] = {}
        self.arrays: dict[str, list[float]] = {}
        self.array_types: dict[str, str] = {}
        self.array_ints: dict[str, set[int]] = {}
        self.pck: list[str] | None = None
        self.in_meas = False
        self.scopes: list[str] = []  # closers of the open scopes: "+", "*", "-"
        self.spins = 0  # loop iterations (a checkpoint is yielded every SPIN_CHECKPOINT)
        self.output_enabled = True
        self.line = 0  # script line being executed (for runtime errors)
        self._handler_map = self._handlers
        self.int_period: float | None = None
        self.int_next = 0.0

    def emit(self, line: str) -> None:
        if self.output_enabled or line[:1] not in ("P", "T"):
            self._emit(line)

    # -- values
    def value(self, token: str, line: int) -> float:
        v = self.vals.get(token)
        if v is not None:
            return v
        element = split_element(token)
        if element is not None:
            array, index = self._element(element, line)
            return array[index]
        lit = parse_literal(token)
        if lit is None:  # pragma: no cover - parse() already checked
            raise ScriptError(0x420B, line)
        return lit[0]

    def _element(self, element: tuple[str, str], line: int) -> tuple[list[float], int]:
        array = self.arrays.get(element[0])
        if array is None:
            raise ScriptError(0x420B, line)  # declared later in the script than used
        index = to_int(self.value(element[1], line))
        if not 0 <= index < len(array):
            raise ScriptError(0x4205, line)
        return array, index

    def _is_int(self, token: str) -> bool:
        if token in self.vals:
            return token in self.ints
        element = split_element(token)
        if element is not None:
            ints = self.array_ints.get(element[0])
            return ints is not None and self._element(element, self.line)[1] in ints
        lit = parse_literal(token)
        return bool(lit and lit[1])

    def _type_of(self, token: str) -> str:
        vtype = self.types.get(token)
        if vtype is not None:
            return vtype
        element = split_element(token)
        if element is not None:
            return self.array_types.get(element[0], "aa")
        return self.types.get(token, "aa")

    def _set(self, name: str, value: float, integer: bool | None = None, vtype: str | None = None) -> None:
        if value - value != 0.0:  # nan or inf
            raise ValueError("non-finite")
        if name in self.vals or split_element(name) is None:
            self.vals[name] = value
            if integer is True:
                self.ints.add(name)
            elif integer is False:
                self.ints.discard(name)
            if vtype is not None:
                self.types[name] = vtype
            self.meta.pop(name, None)
            return
        element = split_element(name)
        assert element is not None
        array, index = self._element(element, self.line)
        array[index] = value
        ints = self.array_ints.setdefault(element[0], set())
        if integer is True:
            ints.add(index)
        elif integer is False:
            ints.discard(index)
        if vtype is not None:
            self.array_types[element[0]] = vtype

    def cond(self, c: tuple[str, str, str], line: int) -> bool:
        return _OPS[c[1]](self.value(c[0], line), self.value(c[2], line))

    # -- running
    def run(self) -> Generator[float, None, None]:
        """Yield script times to wait for; returns when the main block is done."""
        try:
            yield from self.block(self.program.main)
        except _Abort:
            self.close_scopes()
        except _Break:  # pragma: no cover - parse() rejects breakloop outside loops
            pass

    def run_on_finished(self) -> None:
        """Run the ``on_finished:`` block now (no waiting inside it)."""
        self.in_meas = False
        gen = self.block(self.program.on_finished)
        try:
            for _ in gen:  # a measurement loop here would need time: skip its samples
                pass
        except (_Break, _Abort):
            pass

    def close_scopes(self) -> None:
        """After an abort or an error: close every open scan, measurement loop and loop."""
        while self.scopes:
            self._emit(self.scopes.pop())
        self.in_meas = False

    def block(self, nodes: list[Any]) -> Iterator[float]:
        for node in nodes:
            if type(node) is Cmd:
                if node.name == "wait":
                    yield from self._wait(self.t + self._nonneg(node.args[0], node.line), node.line)
                elif node.name == "hibernate":
                    if to_int(self.value(node.args[0], node.line)) != HIBERNATE_TIMER:
                        raise ScriptError(0x001B, node.line)
                    yield from self._wait(self.t + self._nonneg(node.args[1], node.line), node.line)
                elif node.name == "await_int":
                    yield from self._await_int(node.line)
                else:
                    self.command(node)
            elif type(node) is If:
                for cond, body in node.branches:
                    if cond is None or self.cond(cond, node.line):
                        yield from self.block(body)
                        break
            elif type(node) is Loop:
                self.emit("L")
                self.scopes.append("+")
                try:
                    while self.cond(node.cond, node.line):
                        yield from self.block(node.body)
                        self.spins += 1
                        if self.spins % SPIN_CHECKPOINT == 0:
                            yield self.t  # lets the instrument read a Z during a tight loop
                except _Break:
                    pass
                self.scopes.pop()
                self.emit("+")
            else:
                yield from self.meas_loop(node)

    def _nonneg(self, token: str, line: int) -> float:
        value = self.value(token, line)
        if value < 0:
            raise ScriptError(0x4200, line)
        return value

    def _wait(self, until: float, line: int) -> Iterator[float]:
        if until > self.t:
            yield until
            self.hw.advance(until)
            self.t = until

    def _await_int(self, line: int) -> Iterator[float]:
        if self.int_period is None:
            raise ScriptError(0x400C, line)
        yield from self._wait(self.int_next, line)
        while self.int_next <= self.t + 1e-12:
            self.int_next += self.int_period

    # -- measurement loops
    def meas_loop(self, node: MeasLoop) -> Iterator[float]:
        hw, line, kind = self.hw, node.line, node.kind
        self.line = line
        spec = MEAS_LOOPS[kind]
        n_out = len(spec.outputs)
        params = [self.value(a, line) for a in node.args[n_out:]]
        if spec.mode == "ocp":
            if hw.cell_is_on:
                raise ScriptError(0x0014, line)
        else:
            allowed = POTENTIOSTAT_MODES if spec.mode == "potentiostat" else (GALVANOSTAT_MODE,)
            if hw.mode not in allowed:
                raise ScriptError(0x0023, line)
            if not hw.cell_is_on:
                raise ScriptError(0x4027, line)
        technique = getattr(self, "_t_" + kind)(node, params, line)
        first = next(technique, None)  # argument errors are raised before M is sent
        self.emit("M" + spec.technique_id)
        self.scopes.append("*")
        self.in_meas = True
        scan = 0
        try:
            for item in itertools.chain(() if first is None else (first,), technique):
                if item is _SAMPLE:
                    yield from self.block(node.body)
                    self.line = line
                elif item is _SCAN_START:
                    self.emit(f"C{scan:04X}")
                    self.scopes.append("-")
                    scan += 1
                elif item is _SCAN_END:
                    self.emit(self.scopes.pop())
                else:
                    item = max(item, self.t)  # a wait in the body delays the next sample
                    yield item
                    hw.advance(item)
                    self.t = item
        except _Break:
            pass
        finally:
            hw.end_loop()
        if self.scopes[-1] == "-":  # a breakloop inside a scan
            self.emit(self.scopes.pop())
        self.in_meas = False
        self.emit(self.scopes.pop())

    def _out(self, node: MeasLoop, values: list[float], metas: list[tuple[int, int] | None]) -> None:
        spec = MEAS_LOOPS[node.kind]
        for token, vtype, value, meta in zip(node.args, spec.outputs, values, metas, strict=False):
            self._set(token, value, False, vtype)
            if meta is not None and token in self.vals:
                self.meta[token] = meta

    def _current(self, current_A: float) -> tuple[float, tuple[int, int]]:
        reported, status, index = self.hw.read_current(current_A)
        return reported, (status, index)

    def _potential_meta(self, voltage: float) -> tuple[int, int]:
        """Status of a measured potential: overload at the instrument's compliance."""
        return (STATUS_OVERLOAD if abs(voltage) >= self.hw.max_potential_V else 0), 0

    def _timed(self, dt: float, run: float, line: int) -> Iterator[float]:
        if dt <= 0 or run <= 0:
            raise ScriptError(0x4204, line)
        start = self.t
        n = int(math.floor(run / dt + 1e-9))
        for k in range(1, n + 1):
            yield start + k * dt

    def _t_cp(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        current, dt, run = p
        if abs(current) > self.hw.max_current_A:
            raise ScriptError(0x4205, line)
        for when in self._timed(dt, run, line):
            self.hw.apply_current(current)
            yield when
            voltage, measured = self.hw.measure()
            self._out(
                node, [voltage, measured], [self._potential_meta(voltage), self.hw.applied_metadata(measured)]
            )
            yield _SAMPLE

    def _t_ocp(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        dt, run = p
        for when in self._timed(dt, run, line):
            self.hw.rest()
            yield when
            voltage = self.hw.measure()[0]
            self._out(node, [voltage], [self._potential_meta(voltage)])
            yield _SAMPLE

    def _t_ca(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        e, dt, run = p
        self.hw.check_potential(e, line)
        for when in self._timed(dt, run, line):
            self.hw.apply_voltage(e)
            yield when
            current, meta = self._current(self.hw.measure()[1])
            self._out(node, [e, current], [None, meta])
            yield _SAMPLE

    def _sweep_points(self, vertices: list[float], step: float) -> list[float]:
        points: list[float] = []
        for i, (a, b) in enumerate(zip(vertices[:-1], vertices[1:], strict=True)):
            n = max(1, int(round(abs(b - a) / step)))
            points += [a + (b - a) * k / n for k in range(0 if i == 0 else 1, n + 1)]
        return points

    def _check_sweep(self, vertices: list[float], step: float, rate: float, line: int) -> None:
        if step <= 0 or rate <= 0:
            raise ScriptError(0x4204, line)
        for v in vertices:
            self.hw.check_potential(v, line)

    def _t_lsv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, rate = p
        yield from self._t_scans(node, [begin, end], step, rate, 1, False, line)

    def _t_cv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, v1, v2, step, rate = p
        nscans_token = node.nscans
        nscans = 1 if nscans_token is None else int(self.value(nscans_token, line))
        if nscans < 1:
            raise ScriptError(0x4204, line)
        yield from self._t_scans(node, [begin, v1, v2, begin], step, rate, nscans,
                                 nscans_token is not None, line)  # fmt: skip

    def _t_scans(
        self, node: MeasLoop, vertices: list[float], step: float, rate: float, nscans: int,
        framed: bool, line: int,
    ) -> Iterator[Any]:  # fmt: skip
        self._check_sweep(vertices, step, rate, line)
        dt = step / rate
        points = self._sweep_points(vertices, step)
        t = self.t
        for _ in range(nscans):
            if framed:
                yield _SCAN_START
            for e in points:
                t += dt
                self.hw.apply_voltage(e)
                yield t
                current, meta = self._current(self.hw.measure()[1])
                self._out(node, [e, current], [None, meta])
                yield _SAMPLE
            if framed:
                yield _SCAN_END

    def _t_lsp(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, rate = p
        if step <= 0 or rate <= 0:
            raise ScriptError(0x4204, line)
        if max(abs(begin), abs(end)) > self.hw.max_current_A:
            raise ScriptError(0x4205, line)
        t = self.t
        for current in self._sweep_points([begin, end], step):
            t += step / rate
            self.hw.apply_current(current)
            yield t
            voltage, measured = self.hw.measure()
            self._out(
                node, [voltage, measured], [self._potential_meta(voltage), self.hw.applied_metadata(measured)]
            )
            yield _SAMPLE

    def _staircase(self, begin: float, end: float, step: float, line: int) -> list[float]:
        if step <= 0:
            raise ScriptError(0x4204, line)
        self.hw.check_potential(begin, line)
        self.hw.check_potential(end, line)
        return self._sweep_points([begin, end], step)

    def _hold(self, e: float, until: float) -> Iterator[float]:
        """Apply ``e`` until script time ``until`` (then the caller measures)."""
        self.hw.apply_voltage(e)
        yield until

    def _t_dpv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, e_pulse, t_pulse, rate = p
        levels = self._staircase(begin, end, step, line)
        if rate <= 0 or t_pulse <= 0:
            raise ScriptError(0x4204, line)
        period = step / rate
        if t_pulse >= period:
            raise ScriptError(0x4205, line)
        t = self.t
        for e in levels:
            yield from self._hold(e, t + period - t_pulse)
            before = self.hw.measure()[1]
            t += period
            yield from self._hold(e + e_pulse, t)
            current, meta = self._current(self.hw.measure()[1] - before)
            self._out(node, [e, current], [None, meta])
            yield _SAMPLE

    def _t_npv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, t_pulse, rate = p
        levels = self._staircase(begin, end, step, line)
        if rate <= 0 or t_pulse <= 0:
            raise ScriptError(0x4204, line)
        period = step / rate
        if t_pulse >= period:
            raise ScriptError(0x4205, line)
        t = self.t
        for e in levels:
            yield from self._hold(begin, t + period - t_pulse)
            t += period
            yield from self._hold(e, t)
            current, meta = self._current(self.hw.measure()[1])
            self._out(node, [e, current], [None, meta])
            yield _SAMPLE

    def _t_swv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, amplitude, freq = p
        levels = self._staircase(begin, end, step, line)
        if freq <= 0:
            raise ScriptError(0x4204, line)
        half = 0.5 / freq
        t = self.t
        for e in levels:
            t += half
            yield from self._hold(e + amplitude, t)
            forward = self.hw.measure()[1]
            t += half
            yield from self._hold(e - amplitude, t)
            reverse = self.hw.measure()[1]
            diff, meta = self._current(forward - reverse)
            fwd, meta_f = self._current(forward)
            rev, meta_r = self._current(reverse)
            self._out(node, [e, diff, fwd, rev], [None, meta, meta_f, meta_r])
            yield _SAMPLE

    def _t_pad(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        e_dc, e_pulse, t_pulse, dt, run, mode = p
        if int(mode) not in (1, 2, 3):
            raise ScriptError(0x0007, line)
        if t_pulse <= 0 or t_pulse >= dt:
            raise ScriptError(0x4205, line)
        self.hw.check_potential(e_dc, line)
        self.hw.check_potential(e_pulse, line)
        for when in self._timed(dt, run, line):
            yield from self._hold(e_dc, when - t_pulse)
            i_dc = self.hw.measure()[1]
            yield from self._hold(e_pulse, when)
            i_pulse = self.hw.measure()[1]
            raw = {1: i_dc, 2: i_pulse, 3: i_pulse - i_dc}[int(mode)]
            current, meta = self._current(raw)
            self._out(node, [e_pulse if int(mode) == 2 else e_dc, current], [None, meta])
            yield _SAMPLE
        self.hw.apply_voltage(e_dc)

    def _frequencies(self, f_start: float, f_end: float, n: float, line: int) -> list[float]:
        count = int(n)
        if f_start <= 0 or f_end <= 0 or count < 1:
            raise ScriptError(0x4204, line)
        if count == 1:
            return [f_start]
        ratio = math.log(f_end / f_start) / (count - 1)
        return [f_start * math.exp(ratio * k) for k in range(count)]

    @staticmethod
    def _eis_time(f: float) -> float:
        """Seconds one frequency takes: three periods, at least 0.1 s (simulator's choice)."""
        return max(3.0 / f, 0.1)

    def _t_eis(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        amplitude, f_start, f_end, n, e_dc = p
        self.hw.check_potential(e_dc, line)
        yield from self._impedance_scan(node, amplitude, f_start, f_end, n, line,
                                        lambda: self.hw.apply_voltage(e_dc))  # fmt: skip

    def _t_geis(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        amplitude, f_start, f_end, n, i_dc = p
        if abs(i_dc) + abs(amplitude) > self.hw.max_current_A:
            raise ScriptError(0x4205, line)
        yield from self._impedance_scan(node, amplitude, f_start, f_end, n, line,
                                        lambda: self.hw.apply_current(i_dc))  # fmt: skip

    def _impedance_scan(
        self, node: MeasLoop, amplitude: float, f_start: float, f_end: float, n: float, line: int,
        dc: Callable[[], None],
    ) -> Iterator[Any]:  # fmt: skip
        tdd = node.options.get("eis_tdd")
        t = self.t
        for f in self._frequencies(f_start, f_end, n, line):
            dc()
            t += self._eis_time(f)
            yield t
            z = self.hw.impedance(f)
            self._out(node, [f, z.real, z.imag], [None, None, None])
            if tdd is not None:
                self._fill_tdd(tdd, f, amplitude, z, node.kind == "geis", line)
            yield _SAMPLE

    def _fill_tdd(self, tdd: list[str], f: float, amplitude: float, z: complex, galvanostatic: bool,
                  line: int) -> None:  # fmt: skip
        e_name, i_name, n_out, fs_out, _ = tdd
        e_arr, i_arr = self.arrays[e_name], self.arrays[i_name]
        n = min(len(e_arr), len(i_arr), 64)
        fs = n * f  # one period in n samples (simulator's choice)
        peak = amplitude * math.sqrt(2.0)
        for k in range(n):
            phase = 2 * math.pi * k / n
            if galvanostatic:
                i_t = peak * math.sin(phase)
                e_t = abs(z) * peak * math.sin(phase + cmath.phase(z))
            else:
                e_t = peak * math.sin(phase)
                i_t = peak / abs(z) * math.sin(phase - cmath.phase(z))
            e_arr[k], i_arr[k] = e_t, i_t
        self.array_types[e_name], self.array_types[i_name] = "ce", "cf"
        self._set(n_out, float(n), True)
        self._set(fs_out, fs, False, "cg")

    def _t_acv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, rate, amplitude, freq = p
        levels = self._staircase(begin, end, step, line)
        if rate <= 0 or freq <= 0:
            raise ScriptError(0x4204, line)
        t = self.t
        for e in levels:
            t += step / rate
            yield from self._hold(e, t)
            dc_current, meta = self._current(self.hw.measure()[1])
            z = self.hw.impedance(freq)
            self._out(node, [e, dc_current, amplitude, amplitude / abs(z), z.real, z.imag],
                      [None, meta, None, None, None, None])  # fmt: skip
            yield _SAMPLE

    # -- simple commands
    def command(self, node: Cmd) -> None:
        self.line = node.line
        try:
            handler = self._handler_map.get(node.name)
            if handler is not None:
                handler(node.args, node.line)
            else:
                a, line = node.args, node.line
                if node.name in ("set_range", "set_autoranging", "set_range_minmax"):
                    values: list[Any] = [a[0], *(self.value(x, line) for x in a[1:])]
                elif node.name == "cell_on":
                    values = [self.value(x[4:-1].strip(), line) for x in a]
                else:
                    values = [self.value(x, line) for x in a]
                self.hw.command(node.name, values, line)
        except ValueError as exc:
            raise ScriptError(0x0010 if "non-finite" in str(exc) else 0x0007, node.line) from exc
        except (OverflowError, ZeroDivisionError) as exc:
            raise ScriptError(0x0010, node.line) from exc

    @property
    def _handlers(self) -> dict[str, Callable[[list[str], int], None]]:
        try:
            return self.__handlers
        except AttributeError:
            self.__handlers: dict[str, Callable[[list[str], int], None]] = {
                "var": self._var, "array": self._array, "store_var": self._store_var,
                "copy_var": self._copy_var, "div_var": self._div_var,
                "log_var": self._log_var, "float_to_int": self._float_to_int,
                "int_to_float": self._int_to_float, "bit_inv_var": self._bit_inv,
                "alter_vartype": self._alter_vartype, "array_set": self._array_set,
                "array_get": self._array_get, "mean": self._mean, "linear_fit": self._linear_fit,
                "smooth": self._smooth, "peak_detect": self._peak_detect,
                "pck_start": self._pck_start, "pck_add": self._pck_add, "pck_end": self._pck_end,
                "send_string": self._send_string, "timer_start": self._timer_start,
                "timer_get": self._timer_get, "breakloop": self._breakloop, "abort": self._abort,
                "set_int": self._set_int, "set_script_output": self._set_script_output,
                "meas": self._meas, "notify_led": self._notify_led,
            }  # fmt: skip
            for name in self._ARITH:
                self.__handlers[name] = functools.partial(self._binary, name)
            for name in self._BITS:
                self.__handlers[name] = functools.partial(self._bitop, name)
            return self.__handlers

    def _var(self, a: list[str], line: int) -> None:
        self.vals[a[0]] = 0.0
        self.types[a[0]] = "aa"

    def _array(self, a: list[str], line: int) -> None:
        size = to_int(self.value(a[1], line))
        if size <= 0:
            raise ScriptError(0x4204, line)
        if size > 1 << 16:
            raise ScriptError(0x4205, line)
        self.arrays[a[0]] = [0.0] * size
        self.array_types[a[0]] = "aa"
        self.array_ints[a[0]] = set()

    def _store_var(self, a: list[str], line: int) -> None:
        self._set(a[0], self.value(a[1], line), self._is_int(a[1]), a[2] if len(a) == 3 else None)

    def _copy_var(self, a: list[str], line: int) -> None:
        self._set(a[1], self.value(a[0], line), self._is_int(a[0]), self._type_of(a[0]))

    _ARITH: dict[str, Callable[[float, float], float]] = {
        "add_var": lambda x, y: x + y, "sub_var": lambda x, y: x - y,
        "mul_var": lambda x, y: x * y, "pow_var": lambda x, y: float(x**y),
    }  # fmt: skip

    def _binary(self, name: str, a: list[str], line: int) -> None:
        x, y = self.value(a[0], line), self.value(a[1], line)
        result = self._ARITH[name](x, y)
        if isinstance(result, complex):
            raise ValueError("non-finite")
        integer = self._is_int(a[0]) and self._is_int(a[1]) and name != "pow_var"
        self._set(a[0], float(int(result)) if integer else result, integer)

    def _div_var(self, a: list[str], line: int) -> None:
        divisor = self.value(a[1], line)
        if divisor == 0:
            raise ScriptError(0x0028, line)
        if self._is_int(a[0]) and self._is_int(a[1]):
            self._set(a[0], float(int(self.value(a[0], line) / divisor)), True)
        else:
            self._set(a[0], self.value(a[0], line) / divisor, False)

    def _log_var(self, a: list[str], line: int) -> None:
        x = self.value(a[0], line)
        if x <= 0:
            raise ValueError("non-finite")
        self._set(a[0], math.log(x), False)

    def _float_to_int(self, a: list[str], line: int) -> None:
        self._set(a[0], float(to_int(self.value(a[0], line))), True)

    def _int_to_float(self, a: list[str], line: int) -> None:
        self._set(a[0], self.value(a[0], line), False)

    _BITS: dict[str, Callable[[int, int], int]] = {
        "bit_and_var": lambda x, y: x & y, "bit_or_var": lambda x, y: x | y,
        "bit_xor_var": lambda x, y: x ^ y, "bit_lsl_var": lambda x, y: (x << y) & 0xFFFFFFFF,
        "bit_lsr_var": lambda x, y: x >> y,
    }  # fmt: skip

    def _bitop(self, name: str, a: list[str], line: int) -> None:
        x, y = int(self.value(a[0], line)), int(self.value(a[1], line))
        if y < 0 and name in ("bit_lsl_var", "bit_lsr_var"):
            raise ScriptError(0x4200, line)
        self._set(a[0], float(self._BITS[name](x, y)), True)

    def _bit_inv(self, a: list[str], line: int) -> None:
        self._set(a[0], float(~int(self.value(a[0], line)) & 0xFFFFFFFF), True)

    def _alter_vartype(self, a: list[str], line: int) -> None:
        element = split_element(a[0])
        if element is not None:
            self.array_types[element[0]] = a[1]
        else:
            self.types[a[0]] = a[1]
            self.meta.pop(a[0], None)

    def _array_set(self, a: list[str], line: int) -> None:
        self._set(f"{a[0]}[{a[1]}]", self.value(a[2], line), self._is_int(a[2]), self._type_of(a[2]))

    def _array_get(self, a: list[str], line: int) -> None:
        token = f"{a[0]}[{a[1]}]"
        self._set(a[2], self.value(token, line), self._is_int(token), self._type_of(token))

    def _mean(self, a: list[str], line: int) -> None:
        values = self.arrays[a[0]]
        self._set(a[1], sum(values) / len(values), False, self.array_types.get(a[0]))

    def _linear_fit(self, a: list[str], line: int) -> None:
        xs, ys = self.arrays[a[0]], self.arrays[a[1]]
        n = min(len(xs), len(ys))
        mx, my = sum(xs[:n]) / n, sum(ys[:n]) / n
        sxx = sum((x - mx) ** 2 for x in xs[:n])
        if sxx == 0:
            raise ScriptError(0x0028, line)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs[:n], ys[:n], strict=True)) / sxx
        self._set(a[2], slope, False)
        self._set(a[3], my - slope * mx, False)

    def _smooth(self, a: list[str], line: int) -> None:
        src = self.arrays[a[0]]
        dst_name, level = a[-2], int(self.value(a[-1], line))
        n = len(src) if len(a) == 3 else int(self.value(a[1], line))
        dst = self.arrays[dst_name]
        if level < 0 or not 0 <= n <= min(len(src), len(dst)):
            raise ScriptError(0x4205, line)
        window = src[:n]
        out = [sum(window[max(0, k - level) : k + level + 1]) / len(window[max(0, k - level) : k + level + 1])
               for k in range(n)]  # fmt: skip
        dst[:n] = out
        self.array_types[dst_name] = self.array_types.get(a[0], "aa")

    def _peak_detect(self, a: list[str], line: int) -> None:
        y = self.arrays[a[0]][: int(self.value(a[1], line))]
        idx_arr, h_arr = self.arrays[a[2]], self.arrays[a[3]]
        sign = -1.0 if int(self.value(a[4], line)) else 1.0
        min_height = self.value(a[5], line)
        peaks: list[tuple[float, int]] = []
        for k in range(1, len(y) - 1):
            v = sign * y[k]
            if v > sign * y[k - 1] and v >= sign * y[k + 1]:
                left = min(sign * y[j] for j in range(0, k + 1))
                right = min(sign * y[j] for j in range(k, len(y)))
                prominence = v - max(left, right)
                if prominence >= min_height:
                    peaks.append((prominence, k))
        peaks.sort(reverse=True)
        for j in range(len(idx_arr)):
            if j < len(peaks):
                idx_arr[j], h_arr[j] = float(peaks[j][1]), sign * peaks[j][0]
            else:
                idx_arr[j], h_arr[j] = -1.0, 0.0
        self.array_ints.setdefault(a[2], set()).update(range(len(idx_arr)))
        self.array_types[a[3]] = self.array_types.get(a[0], "aa")

    def _pck_start(self, a: list[str], line: int) -> None:
        if self.pck is not None:
            raise ScriptError(0x401B, line)
        self.pck = []

    def _pck_add(self, a: list[str], line: int) -> None:
        if self.pck is None:
            raise ScriptError(0x401B, line)
        self.pck.append(self._encode_var(a[0], line))

    def _pck_end(self, a: list[str], line: int) -> None:
        if not self.pck:
            raise ScriptError(0x401B, line)
        self.emit("P" + ";".join(self.pck))
        self.pck = None

    def _send_string(self, a: list[str], line: int) -> None:
        text, fmt = a
        if fmt:

            def field_text(m: re.Match[str]) -> str:
                token = m[1].strip()
                return format_number(self.value(token, line), self._is_int(token))

            text = _FIELD.sub(field_text, text)
        self.emit("T" + text)

    def _notify_led(self, a: list[str], line: int) -> None:
        self.value(a[0], line)  # the LED state: nothing to simulate

    def _timer_start(self, a: list[str], line: int) -> None:
        self.timer0 = self.t

    def _timer_get(self, a: list[str], line: int) -> None:
        self._set(a[0], self.t - self.timer0, False, "eb")

    def _breakloop(self, a: list[str], line: int) -> None:
        raise _Break

    def _abort(self, a: list[str], line: int) -> None:
        raise _Abort

    def _set_int(self, a: list[str], line: int) -> None:
        period = self.value(a[0], line)
        if period <= 0:
            raise ScriptError(0x4204, line)
        self.int_period = period
        self.int_next = self.t + period

    def _set_script_output(self, a: list[str], line: int) -> None:
        target = int(self.value(a[0], line))
        if target & 2:
            raise ScriptError(0x001B, line)  # file storage is not simulated
        if target not in (0, 1):
            raise ScriptError(0x0007, line)
        self.output_enabled = bool(target)

    def _meas(self, a: list[str], line: int) -> None:
        duration = self.value(a[0], line)
        if duration <= 0:
            raise ScriptError(0x4204, line)
        voltage, current = self.hw.measure()
        if a[2] == "ab":
            self._set(a[1], voltage, False, "ab")
            self.meta[a[1]] = self._potential_meta(voltage)
        elif a[2] == "ba":
            self._set(a[1], self._current(current)[0], False, "ba")
        else:
            raise ScriptError(0x0007, line)

    def _encode_var(self, token: str, line: int) -> str:
        value = self.vals.get(token)
        if value is not None:  # a scalar (the common case)
            vtype = self.types.get(token, "aa")
            text = vtype + encode_value(value, token in self.ints)
        else:
            value = self.value(token, line)
            vtype = self._type_of(token)
            text = vtype + encode_value(value, self._is_int(token))
        if vtype == "ba":
            meta = self.meta.get(token)
            if meta is None:
                meta = self.hw.applied_metadata(value)
            text += f",1{meta[0]:X},2{meta[1]:02X}"
        elif vtype == "ab":
            meta = self.meta.get(token)
            text += f",1{meta[0] if meta else 0:X}"
        return text


def command_table() -> list[tuple[str, str, str]]:
    """``(command, arguments, what the simulator does)`` for the docs table."""
    rows: list[tuple[str, str, str]] = []
    for name, spec in COMMANDS.items():
        n = f"{spec.min_args}" if spec.min_args == spec.max_args else f"{spec.min_args}-{spec.max_args}"
        rows.append((name, n, spec.doc))
    for name, doc in BLOCK_COMMANDS.items():
        rows.append((name, "", doc))
    for kind, mspec in MEAS_LOOPS.items():
        outs = " ".join(f"out:{t}" for t in mspec.outputs)
        opts = "".join(f" [{o}(...)]" for o in mspec.options)
        rows.append((f"meas_loop_{kind}", f"{outs} {' '.join(mspec.inputs)}{opts}",
                     f"M{mspec.technique_id}: {mspec.doc} ({mspec.mode})"))  # fmt: skip
    return rows
