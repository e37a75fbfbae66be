"""A half cell vs Li around a :class:`~simulators.sample.Sample`: state, voltage, persistence, substep.

The terminal voltage is ``E_rest + g_fast + g_slow + i * r_ohm`` where ``E_rest = E_eq + s f_Ni + M
psi`` and the two overpotential states follow the driven branch under current (lag ``tau_on``) and
relax with ``tau_fast``/``tau_slow`` at open circuit (docs/model.md). :class:`CellCore` holds that
state and advances it: one exact substep at constant current (:meth:`CellCore._sub`) and an exact
rest of any length (:meth:`CellCore.rest`); the techniques built on them are in
:mod:`simulators.cell_cc` and :mod:`simulators.cell`.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Self

import numpy as np

from simulators.electrode import BranchSet, solve
from simulators.material import Material
from simulators.sample import Chem, ModelConstants, Sample, lmct_relax

REASONS = ("time", "v_upper", "v_lower", "capacity", "current", "dvdt")


class Advance(NamedTuple):
    """Result of advancing a cell.

    Attributes
    ----------
    elapsed_s : float
        Time advanced in this call.
    reason : str
        One of ``"time", "v_upper", "v_lower", "capacity", "current", "dvdt"``.
    voltage_V : float
        Terminal voltage at the end.
    current_A : float
        Current at the end.
    charge_mAh_g : float
        Signed specific charge passed during the call.
    """

    elapsed_s: float
    reason: str
    voltage_V: float
    current_A: float
    charge_mAh_g: float


class SampledCurve(NamedTuple):
    """Points of :meth:`Cell.constant_current_sampled` (times relative to the call start)."""

    time_s: np.ndarray
    voltage_V: np.ndarray
    current_A: np.ndarray
    charge_mAh_g: np.ndarray


@dataclass(frozen=True)
class CellVariation:
    """How one real cell differs from the nominal one (seeded per cell, see :meth:`draw`).

    Attributes
    ----------
    capacity_factor : float
        Share of the weighed active mass that is electrochemically active (1 = all of it).
    mass_error : float
        Relative error of the weighed (recorded) mass: recorded = true * (1 + mass_error).
    impedance_factor : float
        Factor on the ohmic and RC resistances.
    """

    capacity_factor: float = 1.0
    mass_error: float = 0.0
    impedance_factor: float = 1.0

    def __post_init__(self) -> None:
        if not (
            0.1 <= self.capacity_factor <= 2.0 and -0.5 < self.mass_error < 0.5 and self.impedance_factor > 0
        ):
            raise ValueError(
                "CellVariation: capacity_factor in 0.1..2, mass_error in -0.5..0.5, impedance_factor > 0, "
                "e.g. CellVariation(capacity_factor=0.99, mass_error=0.004, impedance_factor=1.1)"
            )

    @classmethod
    def draw(cls, material: Material, seed: int) -> CellVariation:
        """Draw a cell's variation from the material's ``[variation]`` spreads; same seed, same cell."""
        v = material.variation
        rng = random.Random(seed)
        cap = min(max(1.0 + rng.gauss(0.0, v.capacity_rel_sd), 0.5), 1.5)
        mass = min(max(rng.gauss(0.0, v.mass_rel_sd), -0.2), 0.2)
        imp = math.exp(rng.gauss(0.0, v.impedance_rel_sd))
        return cls(cap, mass, imp)

    def metadata(self, material: Material, active_mass_g: float) -> dict[str, float]:
        """Plain-data record for run metadata (``r_ohm_ohm`` is the cell's ohmic resistance at 25 C)."""
        r_ohm = (
            material.kinetics.r_ohm_V_per_mA_g
            * self.impedance_factor
            / (active_mass_g * self.capacity_factor * 1e-3)
        )
        return {
            "capacity_factor": round(self.capacity_factor, 6),
            "mass_error": round(self.mass_error, 6),
            "impedance_factor": round(self.impedance_factor, 6),
            "r_ohm_ohm": round(r_ohm, 3),
        }


class CellCore:
    """State and exact steps of a half cell vs Li built from a :class:`Sample`.

    A fresh cell: new electrolyte, new Li, no overpotential. :class:`simulators.cell.Cell` adds
    the techniques.

    Parameters
    ----------
    sample : Sample
        Powder inside; its state is advanced in place.
    active_mass_g : float
        Active material mass (g); converts A to mA/g.
    temperature_C : float
        Cell temperature; change later with ``cell.temperature_C = ...``.
    noise_seed : int, optional
        Seed for measurement noise; ``None`` means noiseless measurements.
    variation : CellVariation, optional
        This cell's departure from the nominal cell (active share, resistances); nominal if None.
    """

    def __init__(
        self,
        sample: Sample,
        active_mass_g: float = 0.007,
        temperature_C: float = 25.0,
        noise_seed: int | None = None,
        variation: CellVariation | None = None,
    ) -> None:
        if not active_mass_g > 0:
            raise ValueError("active_mass_g must be > 0")
        self.sample = sample
        self.material = sample.material
        self.active_mass_g = float(active_mass_g)
        self.variation = variation
        var = variation or CellVariation()
        self._m_eff = self.active_mass_g * var.capacity_factor  # electrochemically active mass
        self._r_scale = var.impedance_factor
        self._dis_ref: tuple[float, float] | None = None  # what Ni and O held as the discharge began
        self._plan: list[Any] | None = None  # see _planned
        self._plan_len = 1000  # how far ahead the next plan goes (see _planned)
        self._chunk_ok = 1000  # points in the last planned chunk that passed its check (see _chunk)
        self._plans = True  # constant_current may plan ahead (off while a vectorised path runs)
        self._cv_h, self._cv_v = 1.0, -1.0  # constant_voltage step size and the voltage it was for
        self._cv_slope = 0.0  # dV/d(mA/g) seen by the last constant-voltage solve
        self._cv_sol, self._cv_di = 0.0, 0.0  # its current (mA/g) and that current's rate of change (mA/g/s)
        self._md = ModelConstants.of(self.material)
        self.g_fast_V = 0.0
        self.g_slow_V = 0.0
        self._i_sp = 0.0  # mA/g
        self.time_s = 0.0
        self.noise_seed = noise_seed
        self._rng = random.Random(noise_seed) if noise_seed is not None else None
        self.temperature_C = temperature_C

    # -- properties ---------------------------------------------------------------------------
    @property
    def temperature_C(self) -> float:
        """Cell (and sample) temperature; applies from now on."""
        return self.sample.state.temperature_C

    @temperature_C.setter
    def temperature_C(self, value: float) -> None:
        self.sample.state.temperature_C = float(value)
        self._fpol = self._md.f_pol(float(value)) * self._r_scale

    @property
    def current_A(self) -> float:
        """Present current (A); 0 at open circuit."""
        return self._i_sp * self._m_eff * 1e-3

    def _e_rest(self) -> float:
        s = self.sample.state
        return self._md.e_rest(s.h_ni_mAh_g, s.h_o_mAh_g, s.psi)

    def set_current_A(self, current_A: float) -> None:
        """Switch the current now (the ohmic step is instantaneous; nothing else moves)."""
        self._i_sp = current_A * 1e3 / self._m_eff

    def voltage_V(self) -> float:
        """Terminal voltage now under the present current (no noise)."""
        return self._e_rest() + self.g_fast_V + self.g_slow_V + self._i_sp * self._md.r_ohm * self._fpol

    def measured_voltage_V(self) -> float:
        """Terminal voltage with seeded Gaussian noise (noiseless without a seed)."""
        v = self.voltage_V()
        if self._rng is None:
            return v
        return v + self._rng.gauss(0.0, self.material.noise.voltage_rms_V)

    def measured_current_A(self, range_A: float) -> float:
        """Present current with noise proportional to the instrument range ``range_A``."""
        i = self.current_A
        if self._rng is None:
            return i
        return i + self._rng.gauss(0.0, self.material.noise.current_rel_of_range * abs(range_A))

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Full cell state (chemistry, overpotentials, current, noise generator) as plain data."""
        rng = None
        if self._rng is not None:
            ver, internal, gauss_next = self._rng.getstate()
            rng = [ver, list(internal), gauss_next]
        return {
            "version": 1,
            "active_mass_g": self.active_mass_g,
            "variation": None if self.variation is None else asdict(self.variation),
            "discharge_ref_mAh_g": None if self._dis_ref is None else list(self._dis_ref),
            "cv_step": [self._cv_h, self._cv_v],
            "cv_solver": [self._cv_sol, self._cv_di, self._cv_slope],
            "g_fast_V": self.g_fast_V,
            "g_slow_V": self.g_slow_V,
            "current_mA_g": self._i_sp,
            "time_s": self.time_s,
            "noise_seed": self.noise_seed,
            "rng_state": rng,
            "sample": self.sample.state.to_dict(),
        }

    @classmethod
    def from_dict(cls, material: Material, d: dict[str, Any]) -> Self:
        """Rebuild a cell from :meth:`to_dict` output; the physics continues exactly."""
        sample = Sample.from_dict(material, d["sample"])
        var = d.get("variation")
        cell = cls(
            sample,
            d["active_mass_g"],
            sample.state.temperature_C,
            d.get("noise_seed"),
            None if var is None else CellVariation(**var),
        )
        cell._cv_h, cell._cv_v = (float(v) for v in d.get("cv_step", (1.0, -1.0)))
        cell._cv_sol, cell._cv_di, cell._cv_slope = (float(v) for v in d.get("cv_solver", (0.0, 0.0, 0.0)))
        ref = d.get("discharge_ref_mAh_g")
        cell._dis_ref = None if ref is None else (float(ref[0]), float(ref[1]))
        cell.g_fast_V = float(d["g_fast_V"])
        cell.g_slow_V = float(d["g_slow_V"])
        cell._i_sp = float(d["current_mA_g"])
        cell.time_s = float(d["time_s"])
        if d.get("rng_state") is not None and cell._rng is not None:
            ver, internal, gauss_next = d["rng_state"]
            cell._rng.setstate((ver, tuple(internal), gauss_next))
        return cell

    # -- core substep -------------------------------------------------------------------------
    def _sub_start(self, c: Chem, up: bool) -> tuple[BranchSet, float, float]:
        """What :meth:`_sub` needs of its start state alone: (branches, branch and rest potential)."""
        md = self._md
        if up:
            bs, x0 = md.charge, [c[0], c[1], c[2]]
        else:
            bs, x0 = self._discharge_branches(c), [c[0], c[1]]
        e_b0 = solve(bs, x0, 1e-9, up)[0]  # 1e-9: the potential just as filling starts
        return bs, e_b0, md.e_rest(c[0], c[1], c[4])

    def _sub(
        self,
        c: Chem,
        g1: float,
        g2: float,
        i_sp: float,
        h: float,
        k: float,
        start: tuple[BranchSet, float, float] | None = None,
    ) -> tuple[Chem, float, float, float, float]:
        """Advance chemistry and overpotentials by ``h`` s at constant specific current ``i_sp``.

        ``start`` is :meth:`_sub_start` of ``c`` for this direction, when the caller steps the
        same start state many times (a root search over ``h``). Returns (chem, g_fast, g_slow,
        terminal voltage, branch potential at the end).
        """
        md = self._md
        up = i_sp > 0.0
        bs, e_b0, er0 = self._sub_start(c, up) if start is None else start
        c = lmct_relax(md, c, k * h)
        x = [c[0], c[1], c[2]] if up else [c[0], c[1]]
        dq = abs(i_sp) * h / 3600.0
        e_b1, xn = solve(bs, x, dq, up)
        h_o = xn[1]
        if up:
            q_act = xn[2]
            d_o = (h_o - c[1]) + (q_act - c[2])
            tgt = 1.0
            r = c[5]
        else:
            q_act = c[2]
            d_o = c[1] - h_o
            tgt = -1.0
            r = c[5] * (h_o / c[1]) if c[1] > 0.0 else c[5]
        psi = tgt - (tgt - c[4]) * math.exp(-d_o / md.q_psi) if d_o > 0.0 else c[4]
        c = (xn[0], h_o, q_act, c[3], psi, r, c[6])
        er1 = md.e_rest(xn[0], h_o, psi)
        fp = self._fpol
        a = md.a_fast
        irc = i_sp * md.r_rc * fp
        # under charge the driven branch never sits below the rest potential (nor above on discharge)
        if up:
            gap0, gap1 = max(e_b0 - er0, 0.0), max(e_b1 - er1, 0.0)
        else:
            gap0, gap1 = min(e_b0 - er0, 0.0), min(e_b1 - er1, 0.0)
        t0a, t1a = a * gap0 + irc, a * gap1 + irc
        t0b, t1b = (1.0 - a) * gap0, (1.0 - a) * gap1
        tau = md.tau_on
        e = math.exp(-h / tau)
        cc = tau / h * (1.0 - e) if h > 0 else 1.0
        g1 = t1a + (g1 - t0a) * e - (t1a - t0a) * cc
        g2 = t1b + (g2 - t0b) * e - (t1b - t0b) * cc
        v = er1 + g1 + g2 + i_sp * md.r_ohm * fp
        return c, g1, g2, v, e_b1

    def _discharge_branches(self, c: Chem) -> BranchSet:
        """Discharge branches scaled to what Ni and O held when this discharge began."""
        ref = self._dis_ref
        # LMCT adds a little O during a discharge: the reference follows only when it grows by 1 %
        if ref is None or c[0] > 1.01 * ref[0] or c[1] > 1.01 * ref[1]:
            if ref is None:
                ref = (c[0], c[1])
            ref = (max(ref[0], c[0], 1e-3), max(ref[1], c[1], 1e-3))
            self._dis_ref = ref
        return self._md.discharge(ref)

    def _constants_for(self, duration_s: float) -> tuple[ModelConstants, float]:
        """The model constants and the LMCT rate constant now, for a step of ``duration_s`` (>= 0)."""
        if duration_s < 0:
            raise ValueError("duration_s must be >= 0")
        md = self._md
        return md, md.k(self.sample.state.temperature_C)

    def _commit(self, c: Chem, g1: float, g2: float, i_sp: float, dt: float) -> None:
        if i_sp > 0.0:
            self._dis_ref = None
        self.sample.set_chem(c)
        self.g_fast_V, self.g_slow_V, self._i_sp = g1, g2, i_sp
        self.time_s += dt

    def rest(self, duration_s: float, dvdt_stop_V_s: float | None = None) -> Advance:
        """Open circuit for ``duration_s`` (exact, O(1) for any duration).

        Parameters
        ----------
        duration_s : float
            Maximum rest time (s).
        dvdt_stop_V_s : float, optional
            Stop as soon as ``|dV/dt|`` falls to this value (root-found).

        Returns
        -------
        Advance
        """
        md, k = self._constants_for(duration_s)
        c0 = self.sample.chem()
        g1, g2 = self.g_fast_V, self.g_slow_V
        ts = md.tau_scale(c0)  # LMCT-invariant, so the same for the whole rest
        tau_f, tau_s = md.tau_f * ts, md.tau_s * ts
        de_dh = md.de_rest_dh_ni(c0[4])
        t_end, reason = duration_s, "time"
        if dvdt_stop_V_s is not None:

            def slope(tt: float) -> float:
                cc = lmct_relax(md, c0, k * tt)
                u = cc[0] / md.h_ref
                dh = -md.h_ref * k * math.exp(-md.beta * (1.0 - u)) * u if u > 0 else 0.0
                return (
                    abs(-g1 / tau_f * math.exp(-tt / tau_f) - g2 / tau_s * math.exp(-tt / tau_s) + de_dh * dh)
                    - dvdt_stop_V_s
                )

            if slope(0.0) <= 0.0:
                t_end, reason = 0.0, "dvdt"
            else:
                grid = [0.0] + list(np.geomspace(1e-3, max(duration_s, 1e-3), 80))
                prev = 0.0
                for tt in grid[1:]:
                    if tt > duration_s:
                        break
                    if slope(tt) <= 0.0:
                        from scipy.optimize import brentq  # here: scipy.optimize is slow to import

                        t_end = brentq(slope, prev, tt, xtol=1e-9)
                        reason = "dvdt"
                        break
                    prev = tt
        c = lmct_relax(md, c0, k * t_end)
        g1 *= math.exp(-t_end / tau_f)
        g2 *= math.exp(-t_end / tau_s)
        self._commit(c, g1, g2, 0.0, t_end)
        return Advance(t_end, reason, self.voltage_V(), 0.0, 0.0)
