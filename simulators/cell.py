"""Sample (powder chemistry) and half-cell model of a Li-rich DRX cathode vs Li.

Physics (docs/model.md): the charge held by the Ni intermediate (``h_Ni``), by reversibly
oxidised oxygen (``h_O``) and by the first-charge activation (``q_act``) follow parallel redox
branches (:mod:`simulators.electrode`); LMCT converts ``h_Ni`` into ``h_O`` and lost charge at all
times with the closed-form kinetics of :mod:`simulators.lmct`. The terminal voltage is
``E_rest + g_fast + g_slow + i * r_ohm`` where ``E_rest = E_eq + s f_Ni + M psi`` and the two
overpotential states follow the driven branch under current (lag ``tau_on``) and relax with
``tau_fast``/``tau_slow`` at open circuit.

The model is split by idea: :mod:`simulators.sample` (the powder and its chemistry),
:mod:`simulators.cell_core` (a cell's state, voltage, persistence, substep and rest),
:mod:`simulators.cell_cc` (constant current) and this module (constant voltage, and the
:class:`Cell` users import, with the names above re-exported).
"""

from __future__ import annotations

from scipy.optimize import brentq

from simulators.cell_cc import ConstantCurrentCell
from simulators.cell_core import REASONS, Advance, CellCore, CellVariation, SampledCurve
from simulators.electrode import BranchSet
from simulators.sample import Chem, Sample, SampleState

__all__ = ["REASONS", "Advance", "Cell", "CellCore", "CellVariation", "SampledCurve", "Sample", "SampleState"]


class Cell(ConstantCurrentCell):
    """Half cell vs Li: constant current, constant voltage and rest (parameters: :class:`CellCore`)."""

    def constant_voltage(
        self, voltage_V: float, duration_s: float, current_limit_A: float | None = None
    ) -> Advance:
        """Hold the terminal voltage; the current is solved per substep.

        Parameters
        ----------
        voltage_V : float
            Set point (V).
        duration_s : float
            Maximum time (s).
        current_limit_A : float, optional
            Stop when ``|I|`` falls to this value (reason ``"current"``).

        Returns
        -------
        Advance
        """
        md, k = self._constants_for(duration_s)
        r_eff = (md.r_ohm + md.r_rc) * self._fpol
        lim_sp = None if current_limit_A is None else abs(current_limit_A) * 1e3 / self._m_eff
        # a host stepping a sweep holds nearly the same voltage call after call: keep the step size
        h = self._cv_h if abs(voltage_V - self._cv_v) < 0.005 else 1.0
        t, q = 0.0, 0.0
        i_prev = self._i_sp
        reason = "time"
        h_nom = h
        while t < duration_s - 1e-12:
            left = duration_s - t
            h = left if left < 1.5 * h_nom else h_nom  # no sliver of a step at the end
            c, g1, g2 = self.sample.chem(), self.g_fast_V, self.g_slow_V
            sol = self._cv_current(c, g1, g2, voltage_V, h, k, i_prev, r_eff)
            if lim_sp is not None and abs(sol) <= lim_sp and t > 0:
                # shorten the substep to where |I| reaches the limit (linear in time)
                frac = (abs(i_prev) - lim_sp) / max(abs(i_prev) - abs(sol), 1e-30)
                h = max(min(h * frac, h), 1e-6)
                sol = self._cv_current(c, g1, g2, voltage_V, h, k, i_prev, r_eff)
                reason = "current"
            cn, g1n, g2n, _, _ = self._sub(c, g1, g2, sol, h, k)
            self._commit(cn, g1n, g2n, sol, h)
            t += h
            q += sol * h / 3600.0
            i_prev = sol
            if reason == "current":
                break
            h_nom = min(h_nom * 1.5, 300.0)
        self._cv_h, self._cv_v = h_nom, voltage_V
        return Advance(t, reason, self.voltage_V(), self.current_A, q)

    def _cv_current(
        self, c: Chem, g1: float, g2: float, vset: float, h: float, k: float, i0: float, r: float
    ) -> float:
        starts: dict[bool, tuple[BranchSet, float, float]] = {}  # per direction, for every trial

        def f(i: float) -> float:
            if i == 0.0:
                i = 1e-12
            up = i > 0.0
            st0 = starts.get(up)
            if st0 is None:
                st0 = starts[up] = self._sub_start(c, up)
            return self._sub(c, g1, g2, i, h, k, st0)[3] - vset

        tiny = 1e-9
        if abs(i0) <= 2.0 * tiny:  # held inside the hysteresis last time: still there?
            fp, fm = f(tiny), f(-tiny)
            if fp * fm <= 0.0:
                return tiny if abs(fp) < abs(fm) else -tiny
        a = i0 if i0 != 0.0 else -(self.voltage_V() - vset) / r
        if a == 0.0:
            a = 1e-9
        fa = f(a)
        if abs(fa) < 1e-6:
            return a
        slope = self._cv_slope if self._cv_slope > 0.0 else r  # dV/dI of the last solve
        b = a - fa / slope
        for _ in range(8):
            fb = f(b)
            if abs(fb) < 1e-6 or fb == fa:
                if fb != fa and b != a:
                    self._cv_slope = max((fb - fa) / (b - a), 1e-9)
                return b
            a, b, fa = b, b - fb * (b - a) / (fb - fa), fb
        # the secant stalls where the current changes sign: charge and discharge branches differ,
        # so inside the hysteresis the set voltage is held with (almost) no current
        if f(-tiny) * f(tiny) <= 0.0:
            return tiny if abs(f(tiny)) < abs(f(-tiny)) else -tiny
        # otherwise bracket the root and bisect it safely
        d = max(abs(b) * 1e-3, 1e-6)
        lo, hi = b - d, b + d
        flo, fhi = f(lo), f(hi)
        for _ in range(60):
            if flo * fhi <= 0.0:
                break
            d *= 4.0
            lo, hi = b - d, b + d
            flo, fhi = f(lo), f(hi)
        else:
            return b
        return float(brentq(f, lo, hi, xtol=1e-12, rtol=1e-10, maxiter=100))
