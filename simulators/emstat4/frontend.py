"""The analog front end of the simulated EmStat4: what the MethodSCRIPT interpreter drives
(cell on/off, potentiostat or galvanostat, applied potential or current, current ranges and
autoranging, readings clipped at full scale, the cell's impedance)."""

from __future__ import annotations

import math
from typing import Any

from simulators.emstat4.methodscript import (
    CURRENT_RANGES,
    GALVANOSTAT_MODE,
    MAX_POTENTIAL_V,
    POTENTIOSTAT_MODES,
    STATUS_OVERLOAD,
    ScriptError,
)

_R_J_MOL_K = 8.314462618


class _FrontEnd:
    """Cell, mode, applied setting and current ranges of one EmStat4 channel (the base of
    :class:`simulators.emstat4.SimulatedEmStat4`)."""

    def __init__(self, cell: Any, model: str, t0_s: float) -> None:
        self.cell = cell
        self.model = model
        self.ranges = CURRENT_RANGES[model]
        self.max_current_A = self.ranges[-1][0]
        self.max_potential_V = MAX_POTENTIAL_V[model]
        self._t_cell = t0_s
        self.mode = 0
        self.cell_is_on = False
        self.set_current_A = 0.0
        self.applied_voltage_V = 0.0
        # current range indices (into self.ranges): start range and autorange bounds
        self._range_start = len(self.ranges) - 1
        self._auto = (0, len(self.ranges) - 1)
        self._range_now = self._range_start
        self._applied: tuple[str, float] = ("rest", 0.0)

    def _sync(self) -> None:  # pragma: no cover - SimulatedEmStat4's
        """Bring the cell up to the running script's time before a setting changes."""
        raise NotImplementedError

    def _advance(self, to_s: float) -> None:
        dt = to_s - self._t_cell
        if dt <= 0:
            return
        kind, level = self._applied if self.cell_is_on else ("rest", 0.0)
        if kind == "cc":
            self.cell.constant_current(level, dt)
        elif kind == "cv":
            self.cell.constant_voltage(level, dt)
        else:
            self.cell.rest(dt)
        self._t_cell = to_s

    def measure(self) -> tuple[float, float]:
        """(potential, current) now; the potential saturates at the compliance (+-6 V HR)."""
        kind, level = self._applied if self.cell_is_on else ("rest", 0.0)
        if kind != "cv":  # a new current setting shows at once (the ohmic step)
            self.cell.set_current_A(level if kind == "cc" else 0.0)
        current = self.cell.current_A if self.cell_is_on else 0.0
        voltage = self.cell.measured_voltage_V()
        limit = self.max_potential_V
        return min(max(voltage, -limit), limit), current

    def rest(self) -> None:
        self._applied = ("rest", 0.0)

    def apply_current(self, current_A: float) -> None:
        self._applied = ("cc", current_A)

    def apply_voltage(self, voltage_V: float) -> None:
        self.applied_voltage_V = voltage_V
        self._applied = ("cv", voltage_V)

    def end_loop(self) -> None:
        """After a measurement loop the galvanostat returns to ``set_i``'s current."""
        if self.mode == GALVANOSTAT_MODE:
            self._applied = ("cc", self.set_current_A)

    def check_potential(self, voltage_V: float, line: int) -> None:
        if abs(voltage_V) > self.max_potential_V:
            raise ScriptError(0x4205, line)

    def read_current(self, current_A: float) -> tuple[float, int, int]:
        """(reported current, status nibble, range index) of a measured current.

        Autoranging picks the smallest range within the bounds that holds the current (the
        upper bound when none does); the reading is clipped at that range's full scale and
        flagged overload.
        """
        lo, hi = self._auto
        level = abs(current_A)
        chosen = hi
        for k in range(lo, hi + 1):
            if level <= self.ranges[k][0]:
                chosen = k
                break
        self._range_now = chosen
        full_scale, index = self.ranges[chosen]
        if level > full_scale:
            return math.copysign(full_scale, current_A), STATUS_OVERLOAD, index
        return current_A, 0, index

    def applied_metadata(self, current_A: float) -> tuple[int, int]:
        """(status, range index) of an applied (galvanostatic) current: the range holding it."""
        for rng, index in self.ranges:
            if abs(current_A) <= rng * (1 + 1e-9):
                return 0, index
        return STATUS_OVERLOAD, self.ranges[-1][1]

    def impedance(self, frequency_Hz: float) -> complex:
        """The cell's Randles circuit: R_ohm + R_rc / (1 + j w R_rc C), C = tau_fast / R_rc."""
        kinetics = self.cell.material.kinetics
        t_k = self.cell.temperature_C + 273.15
        f_pol = math.exp(kinetics.Ea_polarisation_kJ_mol * 1e3 / _R_J_MOL_K * (1.0 / t_k - 1.0 / 298.15))
        ohm_per_mA_g = f_pol / (self.cell.active_mass_g * 1e-3)  # V per (mA/g) -> ohm
        r_s = kinetics.r_ohm_V_per_mA_g * ohm_per_mA_g
        r_ct = kinetics.r_rc_V_per_mA_g * ohm_per_mA_g
        if r_ct == 0:
            return complex(r_s, 0.0)
        capacitance = kinetics.tau_fast_s / r_ct
        return r_s + r_ct / (1 + 2j * math.pi * frequency_Hz * r_ct * capacitance)

    def command(self, name: str, args: list[Any], line: int) -> None:
        self._sync()
        if name == "set_pgstat_chan":
            if int(args[0]) != 0:
                raise ScriptError(0x4205, line)
        elif name == "set_pgstat_mode":
            mode = int(args[0])
            if mode not in (0, *POTENTIOSTAT_MODES, GALVANOSTAT_MODE):
                raise ScriptError(0x0021, line)
            self.mode = mode
            self._applied = ("cc", self.set_current_A) if mode == GALVANOSTAT_MODE else (
                "cv", self.applied_voltage_V)  # fmt: skip
        elif name in ("set_max_bandwidth", "set_acquisition_frac_autoadjust"):
            if args[0] <= 0:
                raise ScriptError(0x4204, line)
        elif name in ("set_range", "set_autoranging", "set_range_minmax"):
            self._range(name, args, line)
        elif name == "set_e":
            self.check_potential(args[0], line)
            if self.mode == GALVANOSTAT_MODE:
                raise ScriptError(0x0023, line)
            self.apply_voltage(args[0])
        elif name == "set_i":
            if self.mode != GALVANOSTAT_MODE:
                raise ScriptError(0x0023, line)
            if abs(args[0]) > self.max_current_A:
                raise ScriptError(0x4205, line)
            self.set_current_A = args[0]
            self._applied = ("cc", args[0])
        elif name == "cell_on":
            if self.mode == 0:
                raise ScriptError(0x0023, line)
            if args and self.mode != GALVANOSTAT_MODE:  # cell_on ocp(v): switch on at E = v
                self.check_potential(args[0], line)
                self.apply_voltage(args[0])
            self.cell_is_on = True
        elif name == "cell_off":
            self.cell_is_on = False

    def _range_index(self, value: float) -> int:
        """The smallest range holding ``value`` (the largest if none does)."""
        for k, (rng, _) in enumerate(self.ranges):
            if value <= rng * (1 + 1e-9):
                return k
        return len(self.ranges) - 1

    def _range(self, name: str, args: list[Any], line: int) -> None:
        vtype, values = args[0], [float(v) for v in args[1:]]
        if vtype in ("ba", "db"):
            if any(v < 0 for v in values):
                raise ScriptError(0x4200, line)
            if name == "set_range_minmax":
                return
            indices = [self._range_index(v) for v in values]
            if name == "set_range":
                self._range_start = indices[0]
                if vtype == "ba":
                    lo, hi = self._auto
                    self._range_now = min(max(indices[0], lo), hi)
            else:
                if values[0] > values[1]:
                    raise ScriptError(0x0007, line)
                if vtype == "ba":
                    self._auto = (indices[0], indices[1])
        elif vtype not in ("ab", "da"):
            raise ScriptError(0x0007, line)
