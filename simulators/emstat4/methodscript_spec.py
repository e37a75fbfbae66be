"""The MethodSCRIPT the simulated EmStat4 accepts, declared as data: error codes, measurement
loops (:data:`MEAS_LOOPS`), commands (:data:`COMMANDS`), what needs hardware it lacks
(:data:`DEVICE_SPECIFIC`), number literals and their encoding, and the parsed program's nodes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: The error codes the simulated EmStat4 sends, and when it sends each (their meanings as the
#: MethodSCRIPT manual, appendix A, gives them are the driver's business: it decodes replies).
ERROR_CODES: dict[int, str] = {
    0x0003: "an online command it does not know (answered `<first char>!0003`)",
    0x0006: "`Z`, `h` or `H` with no script running; a second client on the port",
    0x0007: "a wrong number of arguments, a bad option value, a range whose low end is above its high end",
    0x0008: "a line longer than the longest line taken",
    0x000C: "`r` or `Fmscr` with no script loaded, `Lmscr` with nothing in flash",
    0x0010: "a computed value that is NaN or infinite",
    0x0014: "meas_loop_ocp while the cell is on",
    0x001B: "a command or sensor needing hardware it lacks; file storage",
    0x0021: "a PGStat mode it does not have",
    0x0023: "a measurement loop, range or bandwidth that the present PGStat mode forbids",
    0x0028: "a division by zero; a linear fit over points that all share one x",
    0x4001: "an unknown command or measurement loop",
    0x4004: "a token that is neither a name, a literal nor an array element",
    0x4005: "a script larger than its script memory",
    0x4008: "an option a measurement loop does not take, or with the wrong number of values",
    0x400B: "a measurement loop inside another",
    0x400C: "endloop/else/endif out of place, a misplaced on_finished:, awaiting an interval never set",
    0x4018: "a script that ends inside an open loop or if",
    0x401B: "pck_add or pck_end without pck_start, or a second pck_start",
    0x4026: "a variable declared twice",
    0x4027: "a potentiostatic or galvanostatic measurement loop while the cell is off",
    0x4039: "a number literal that does not parse",
    0x4200: "a negative argument where only zero or more is allowed",
    0x4204: "a zero or negative argument where only a positive one is allowed",
    0x4205: "an argument out of its bounds, an array index out of range",
    0x420B: "a variable used before it is declared",
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
