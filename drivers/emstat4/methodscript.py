"""MethodSCRIPT for the host: literals, reply parsing, error codes and the technique compiler.

Written from the PalmSens MethodSCRIPT manual (v1.x):

* Script literals are an integer with an optional SI prefix (``500m``, ``-2``, ``140u``) or an
  integer with ``i`` (``10i``).
* A data package is ``P`` then ``;``-separated variables: 2-letter type, 7 hex digits, SI
  prefix character; value = (int(hex, 16) - 2**27) * prefix. Metadata follow after ``,``:
  ``1x`` status nibble (1 timing error, 2 overload, 4 underload, 8 overload warning) and
  ``2xx`` current (or potential) range index.
* Other reply lines: ``e`` script accepted, ``M<id>`` measurement loop start, ``*`` its end,
  ``L``/``+`` loop start/end, ``C<4 hex>``/``-`` start/end of one scan of a multi-scan CV,
  ``T<text>`` from ``send_string``,
  ``!XXXX[: Line L[, Col C]]`` an error, an empty line: the script has finished.

:func:`compile_step` turns a :mod:`drivers.techniques` step into a script whose cut-offs are
evaluated ON the instrument (``if ... breakloop ... endif`` inside the measurement loops),
which integrates the step's capacity itself (``q += I * dt / (3.6 * mass)`` every sample)
and sends one package per record interval plus one at every cut-off.

The wire format (literals, packages, error replies) is :mod:`drivers.emstat4.format`,
re-exported here; this module is the compiler.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from drivers.emstat4.format import (
    ERROR_CODES as ERROR_CODES,
)
from drivers.emstat4.format import (
    SI_PREFIX as SI_PREFIX,
)
from drivers.emstat4.format import (
    STATUS_FLAGS as STATUS_FLAGS,
)
from drivers.emstat4.format import (
    ErrorReply as ErrorReply,
)
from drivers.emstat4.format import (
    Variable as Variable,
)
from drivers.emstat4.format import (
    decode_value as decode_value,
)
from drivers.emstat4.format import (
    error_meaning as error_meaning,
)
from drivers.emstat4.format import (
    format_int as format_int,
)
from drivers.emstat4.format import (
    format_literal as format_literal,
)
from drivers.emstat4.format import (
    parse_error as parse_error,
)
from drivers.emstat4.format import (
    parse_package as parse_package,
)
from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Cutoffs, Loop, Rest, Sweep

# ----------------------------------------------------------------------------- compiler

#: Package layout of every relaxlab script: time, potential, current, capacity, substep, seq.
PACKAGE_VARS = ("t", "e", "i", "q", "s", "n")
IDENT_PREFIX = "relaxlab:"
CUT_PREFIX = "cut:"


@dataclass(frozen=True)
class Limits:
    """What the EmStat4 can do (``HR``: 100 nA-100 mA, +-6 V; ``LR``: 1 nA-10 mA, +-3 V)."""

    current_ranges_A: tuple[float, ...]
    max_potential_V: float

    @classmethod
    def for_model(cls, model: str) -> Limits:
        if model == "HR":
            return cls((100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3), 6.0)
        if model == "LR":
            return cls((1e-9, 10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3), 3.0)
        raise ValueError(f"EmStat4 model must be 'HR' or 'LR', got {model!r}")

    @property
    def max_current_A(self) -> float:
        return self.current_ranges_A[-1]

    def current_range_for(self, current_A: float) -> float:
        """Smallest range holding ``|current_A|``; raises ValueError outside the instrument."""
        level = abs(current_A)
        if not math.isfinite(level) or level == 0:
            raise ValueError(f"current must be finite and non-zero, got {current_A!r} A")
        if level > self.max_current_A:
            raise ValueError(
                f"{level:.4g} A exceeds this EmStat4's largest current range "
                f"({self.max_current_A:g} A); lower the current or the active mass"
            )
        if level < self.current_ranges_A[0] * 1e-3:
            raise ValueError(
                f"{level:.4g} A is below what this EmStat4 can set (smallest range "
                f"{self.current_ranges_A[0]:g} A, 0.1 % resolution)"
            )
        return next(r for r in self.current_ranges_A if level <= r)

    def check_potential(self, voltage_V: float, what: str) -> None:
        if abs(voltage_V) > self.max_potential_V:
            raise ValueError(f"{what} {voltage_V:g} V is outside this EmStat4's +-{self.max_potential_V:g} V")


@dataclass(frozen=True)
class CompiledStep:
    """A step turned into MethodSCRIPT lines (without ``e`` and the closing empty line)."""

    lines: tuple[str, ...]
    ident: str
    default_end_reason: str
    sample_interval_s: float
    #: Whether a ``cut:`` marker ends the whole step (not so inside a Loop's substeps).
    cuts_end_step: bool = True

    def text(self) -> str:
        return "e\n" + "".join(line + "\n" for line in self.lines) + "\n"


class _Builder:
    def __init__(self, limits: Limits, mass_g: float, sample_interval_s: float) -> None:
        self.limits = limits
        self.mass_g = mass_g
        self.sample_s = sample_interval_s
        self.body: list[str] = []
        self.depth = 0
        self.vars: list[str] = []
        self.constants: dict[str, str] = {}

    def var(self, *names: str) -> None:
        for name in names:
            if name not in self.vars:
                self.vars.append(name)

    def add(self, *lines: str) -> None:
        self.body += ["  " * self.depth + line for line in lines]

    def indent(self, delta: int) -> None:
        self.depth += delta

    def store(self, name: str, value: float | int, vtype: str, integer: bool = False) -> None:
        self.var(name)
        literal = format_int(int(value)) if integer else format_literal(float(value))
        self.add(f"store_var {name} {literal} {vtype}")

    def package(self) -> None:
        """Send the current sample (and restart the decimation counter)."""
        self.add("add_var n 1i", "pck_start", *[f"  pck_add {v}" for v in PACKAGE_VARS])
        self.add("pck_end", "store_var c 0i ja")

    def if_block(self, a: str, op: str, b: str, lines: list[str] | None = None) -> None:
        self.add(f"if {a} {op} {b}")
        self.indent(1)
        for line in lines or []:
            self.add(line)

    def end(self, word: str) -> None:
        self.indent(-1)
        self.add(word)

    def cut(self, a: str, op: str, b: str, reason: str, flag: bool = False) -> None:
        self.if_block(a, op, b)
        self.package()
        self.add(f'send_string "{CUT_PREFIX}{reason}"')
        if flag:
            self.add("store_var f 1i ja")
        self.add("breakloop")
        self.end("endif")

    def prime(self, record_interval_s: float, sample_s: float) -> None:
        """Before a loop: make its first sample send a package, so every step's data start
        where the step starts (plateau splits and curves need the first voltage)."""
        n = max(1, int(round(record_interval_s / sample_s)))
        self.store_const("nd", n, "ja", integer=True)
        self.add("copy_var nd c")

    def every_n(self, record_interval_s: float, sample_s: float) -> None:
        """Count samples; send a package every record interval."""
        n = max(1, int(round(record_interval_s / sample_s)))
        self.add("add_var c 1i")
        self.store_const("nd", n, "ja", integer=True)
        self.if_block("c", ">=", "nd")
        self.package()
        self.end("endif")

    def store_const(self, name: str, value: float | int, vtype: str, integer: bool = False) -> None:
        """Constants are stored once in the preamble (referenced by name in conditions)."""
        literal = format_int(int(value)) if integer else format_literal(float(value))
        previous = self.constants.get(name)
        if previous is not None and previous != f"{literal} {vtype}":
            raise AssertionError(f"constant {name} redefined")  # pragma: no cover
        self.constants[name] = f"{literal} {vtype}"
        self.var(name)

    def flush_tail(self) -> None:
        """After a measurement loop: send the last sample if it was not sent."""
        self.if_block("c", ">", "zi")
        self.package()
        self.end("endif")

    def charge_factor(self, dt_s: float, name: str) -> str:
        """``k`` with ``I[A] * k`` = mAh/g passed in one sample of ``dt_s``."""
        self.store_const(name, dt_s / (3.6 * self.mass_g), "aa")
        return name

    # -- blocks ------------------------------------------------------------------------
    def cc(self, step: ConstantCurrent, gitt_flag: bool = False, tag: str = "") -> None:
        current_A = step.current_mA_g * self.mass_g / 1000.0
        rng = self.limits.current_range_for(current_A)
        cut = step.cutoffs
        if cut.voltage_V is not None:
            self.limits.check_potential(cut.voltage_V, "the voltage cut-off")
        dt = min(step.record_interval_s, self.sample_s)
        run = cut.duration_s if cut.duration_s is not None else 30 * 86400.0
        k = self.charge_factor(dt, f"k{tag}")
        self.add("set_pgstat_mode 6", "set_max_bandwidth 10")
        self.add(f"set_range ab {format_literal(self.limits.max_potential_V)}")
        self.add(f"set_range db {format_literal(rng)}")
        self.add(f"set_autoranging db {format_literal(rng)} {format_literal(rng)}")
        self.add("set_i 0", "cell_on")
        self.open_loop(f"meas_loop_cp e i {format_literal(current_A)}", step.record_interval_s, dt, run, k)
        if cut.voltage_V is not None:
            self.store_const(f"vc{tag}", cut.voltage_V, "ab")
            op = ">=" if current_A > 0 else "<="
            self.cut("e", op, f"vc{tag}", "voltage", flag=gitt_flag)
        if cut.capacity_mAh_g is not None:
            sign = 1.0 if current_A > 0 else -1.0
            self.store_const(f"qc{tag}", sign * cut.capacity_mAh_g, "ja")
            self.cut("q", ">=" if sign > 0 else "<=", f"qc{tag}", "capacity")
        self.every_n(step.record_interval_s, dt)
        self.end("endloop")
        self.flush_tail()
        self.add("cell_off")

    def open_loop(self, loop: str, record_interval_s: float, dt: float, run: float, k: str) -> None:
        """Prime the recording, open ``loop`` (its interval ``dt`` and run length appended) and
        count the charge that flows in it (``q``, through the factor ``k``)."""
        self.prime(record_interval_s, dt)
        self.add(f"{loop} {format_literal(dt)} {format_literal(run)}")
        self.indent(1)
        self.add("timer_get t", "copy_var i x", f"mul_var x {k}", "add_var q x")

    def cv(self, step: ConstantVoltage, tag: str = "") -> None:
        self.limits.check_potential(step.voltage_V, "the hold voltage")
        cut = step.cutoffs
        dt = min(step.record_interval_s, self.sample_s)
        run = cut.duration_s if cut.duration_s is not None else 30 * 86400.0
        k = self.charge_factor(dt, f"k{tag}")
        self.add("set_pgstat_mode 3", "set_max_bandwidth 10")
        self.add(f"set_range_minmax da {format_literal(step.voltage_V)} "
                 f"{format_literal(step.voltage_V)}")  # fmt: skip
        top = format_literal(self.limits.max_current_A)
        self.add(f"set_range ba {top}", f"set_autoranging ba "
                 f"{format_literal(self.limits.current_ranges_A[0])} {top}")  # fmt: skip
        self.add(f"set_e {format_literal(step.voltage_V)}", "cell_on")
        self.open_loop(
            f"meas_loop_ca e i {format_literal(step.voltage_V)}", step.record_interval_s, dt, run, k
        )
        if cut.current_mA_g is not None:
            limit_A = cut.current_mA_g * self.mass_g / 1000.0
            self.limits.current_range_for(limit_A)
            self.store_const(f"il{tag}", limit_A, "ba")
            self.store_const("m1", -1, "aa")
            self.var("a")
            self.add("copy_var i a")
            self.if_block("a", "<", "zr", ["mul_var a m1"])
            self.end("endif")
            self.cut("a", "<", f"il{tag}", "current")
        self.every_n(step.record_interval_s, dt)
        self.end("endloop")
        self.flush_tail()
        self.add("cell_off")

    def rest(self, duration_s: float, interval_s: float, dvdt_V_s: float | None, tag: str = "") -> None:
        self.add("cell_off", "store_var i 0 ba")
        self.add(f"meas_loop_ocp e {format_literal(interval_s)} {format_literal(duration_s)}")
        self.indent(1)
        self.add("timer_get t")
        if dvdt_V_s is not None:
            self.store_const(f"dd{tag}", dvdt_V_s * interval_s, "ab")
            self.store_const("m1", -1, "aa")
            self.store_const("big", 1000, "ab")
            self.var("d", "ep")
            self.add("copy_var e d", "sub_var d ep")
            self.if_block("d", "<", "zr", ["mul_var d m1"])
            self.end("endif")
            self.add("copy_var e ep")
            self.cut("d", "<", f"dd{tag}", "dvdt")
        self.package()
        self.end("endloop")
        if dvdt_V_s is not None:
            self.add("copy_var big ep")

    def sweep(self, step: Sweep, tag: str = "") -> None:
        for name in ("start_V", "vertex1_V", "vertex2_V"):
            self.limits.check_potential(getattr(step, name), f"the sweep's {name}")
        rate = step.scan_rate_mV_s / 1000.0
        e_step = rate * step.record_interval_s
        k = self.charge_factor(step.record_interval_s, f"k{tag}")
        lo = min(step.start_V, step.vertex1_V, step.vertex2_V)
        hi = max(step.start_V, step.vertex1_V, step.vertex2_V)
        top = format_literal(self.limits.max_current_A)
        self.add("set_pgstat_mode 3", "set_max_bandwidth 10")
        self.add(f"set_range_minmax da {format_literal(lo)} {format_literal(hi)}")
        self.add(f"set_range ba {top}", f"set_autoranging ba "
                 f"{format_literal(self.limits.current_ranges_A[0])} {top}")  # fmt: skip
        self.add(f"set_e {format_literal(step.start_V)}", "cell_on")
        if step.linear:
            self.add(f"meas_loop_lsv e i {format_literal(step.start_V)} "
                     f"{format_literal(step.vertex1_V)} {format_literal(e_step)} "
                     f"{format_literal(rate)}")  # fmt: skip
        else:
            scans = f" nscans({step.cycles})" if step.cycles > 1 else ""
            self.add(f"meas_loop_cv e i {format_literal(step.start_V)} "
                     f"{format_literal(step.vertex1_V)} {format_literal(step.vertex2_V)} "
                     f"{format_literal(e_step)} {format_literal(rate)}{scans}")  # fmt: skip
        self.indent(1)
        self.add("timer_get t", "copy_var i x", f"mul_var x {k}", "add_var q x")
        self.package()
        self.end("endloop")
        self.add("cell_off")


def _preamble(b: _Builder, ident: str) -> list[str]:
    names = dict.fromkeys(["t", "e", "i", "q", "s", "n", "c", "x", "zr", "zi", *b.vars])
    head = [f"var {name}" for name in names]
    head += [
        "store_var t 0 eb",
        "store_var q 0 ja",
        "store_var i 0 ba",
        "store_var s 0i jb",
        "store_var n 0i jc",
        "store_var c 0i ja",
        "store_var zr 0 aa",
        "store_var zi 0i aa",
    ]
    head += [f"store_var {name} {spec}" for name, spec in b.constants.items()]
    if "ep" in names:
        head.append("store_var ep 1k ab")
    head += ["set_pgstat_chan 0", f'send_string "{ident}"', "timer_start"]
    return head


def compile_step(
    step: ConstantCurrent | ConstantVoltage | Rest | Sweep | GITT | Loop,
    active_mass_g: float,
    step_index: int,
    *,
    model: str = "HR",
    sample_interval_s: float = 1.0,
    name: str = "emstat4",
) -> CompiledStep:
    """MethodSCRIPT for one step, with cut-offs evaluated on the instrument.

    Raises ValueError for currents or potentials the EmStat4 ``model`` cannot apply.
    """
    if not (math.isfinite(active_mass_g) and active_mass_g > 0):
        raise ValueError(f"active_mass_g must be > 0, got {active_mass_g!r}")
    if not sample_interval_s > 0:
        raise ValueError(f"sample_interval_s must be > 0, got {sample_interval_s!r}")
    limits = Limits.for_model(model)
    b = _Builder(limits, active_mass_g, sample_interval_s)
    default = "time"
    if isinstance(step, ConstantCurrent):
        b.cc(step)
    elif isinstance(step, ConstantVoltage):
        b.cv(step)
    elif isinstance(step, Rest):
        b.rest(step.duration_s, step.record_interval_s, step.dvdt_V_s)
    elif isinstance(step, Sweep):
        b.sweep(step)
        default = "count"
    elif isinstance(step, GITT):
        _gitt(b, step)
        default = "count"
    elif isinstance(step, Loop):
        _loop(b, step)
        default = "count"
    else:
        raise TypeError(f"the EmStat4 driver cannot run {type(step).__name__}")
    digest = zlib.crc32(f"{step!r}|{active_mass_g!r}|{step_index}|{model}".encode()) & 0xFFFFFFFF
    ident = f"{IDENT_PREFIX}{name}:{step_index}:{digest:08x}"
    lines = _preamble(b, ident) + b.body + ["on_finished:", "  cell_off"]
    return CompiledStep(tuple(lines), ident, default, sample_interval_s, not isinstance(step, Loop))


def _gitt(b: _Builder, step: GITT) -> None:
    b.store_const("mp", step.max_pulses, "ja", integer=True)
    b.var("p", "f")
    b.add("store_var p 0i ja", "store_var f 0i ja")
    b.add("loop p < mp")
    b.indent(1)
    cutoffs = Cutoffs(voltage_V=step.cutoff_voltage_V, duration_s=step.pulse_s)
    pulse = ConstantCurrent(step.current_mA_g, cutoffs, step.record_interval_s)
    b.cc(pulse, gitt_flag=True)
    b.if_block("f", ">", "zi", ["breakloop"])
    b.end("endif")
    b.add("add_var s 1i")
    b.rest(step.rest_s, step.record_interval_s, None)
    b.add("add_var s 1i", "add_var p 1i")
    b.end("endloop")


def _loop(b: _Builder, step: Loop) -> None:
    b.store_const("mp", step.count, "ja", integer=True)
    b.var("p")
    b.add("store_var p 0i ja")
    b.add("loop p < mp")
    b.indent(1)
    for j, inner in enumerate(step.steps):
        b.add("store_var q 0 ja")
        tag = str(j)
        if isinstance(inner, ConstantCurrent):
            b.cc(inner, tag=tag)
        elif isinstance(inner, ConstantVoltage):
            b.cv(inner, tag=tag)
        elif isinstance(inner, Rest):
            b.rest(inner.duration_s, inner.record_interval_s, inner.dvdt_V_s, tag=tag)
        elif isinstance(inner, Sweep):
            b.sweep(inner, tag=tag)
        else:
            raise TypeError(f"a Loop on the EmStat4 cannot contain {type(inner).__name__}")
        b.add("add_var s 1i")
    b.add("add_var p 1i")
    b.end("endloop")
