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

import math

from simulators.cell_cc import ConstantCurrentCell
from simulators.cell_core import REASONS, Advance, CellCore, CellVariation, SampledCurve
from simulators.electrode import BranchSet
from simulators.sample import Chem, Sample, SampleState, lmct_relax

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
        # a sweep's stairs hold nearly the same voltage call after call: keep the step size
        follows = abs(voltage_V - self._cv_v) < 0.005
        h = self._cv_h if follows else 1.0
        t, q = 0.0, 0.0
        i_prev = self._i_sp
        # Each substep's solve starts where the current is heading: the last solve's current
        # moved on at its last rate of change (a sweep's next stair, a hold's decay), not the current
        # the instrument's step to this level set (its ohmic jump), which is one evaluation
        # further from the root; held inside the hysteresis, at no current.
        start, trend = (self._cv_sol, self._cv_di) if follows else (i_prev, 0.0)
        reason = "time"
        h_nom = h
        while t < duration_s - 1e-12:
            left = duration_s - t
            h = left if left < 1.5 * h_nom else h_nom  # no sliver of a step at the end
            c, g1, g2 = self.sample.chem(), self.g_fast_V, self.g_slow_V
            guess = start + trend * h
            guess = guess if (guess > 0.0) == (start > 0.0) else start
            sol, end = self._cv_current(c, g1, g2, voltage_V, h, k, guess, r_eff)
            if lim_sp is not None and abs(sol) <= lim_sp and t > 0:
                # shorten the substep to where |I| reaches the limit (linear in time)
                frac = (abs(i_prev) - lim_sp) / max(abs(i_prev) - abs(sol), 1e-30)
                h = max(min(h * frac, h), 1e-6)
                sol, end = self._cv_current(c, g1, g2, voltage_V, h, k, i_prev, r_eff)
                reason = "current"
            self._commit(end[0], end[1], end[2], sol, h)
            t += h
            q += sol * h / 3600.0
            start, trend = sol, ((sol - start) / h if sol != 0.0 and start != 0.0 else 0.0)
            i_prev = sol
            if reason == "current":
                break
            h_nom = min(h_nom * 1.5, 300.0)
        self._cv_h, self._cv_v, self._cv_sol, self._cv_di = h_nom, voltage_V, start, trend
        return Advance(t, reason, self.voltage_V(), self.current_A, q)

    def _cv_current(
        self, c: Chem, g1: float, g2: float, vset: float, h: float, k: float, i0: float, r: float
    ) -> tuple[float, tuple[Chem, float, float, float, float]]:
        """The specific current (mA/g) that ends an ``h`` s substep at ``vset``, and the substep's end.

        The end voltage rises with the current on either side of zero (charge and discharge
        branches), with a step at zero where they differ: a set voltage between them is held
        with (almost) no current. The root is bracketed on its side of zero, starting from the
        last current with the last slope (a hold changes little from one substep to the next),
        then found by regula falsi (Illinois) to 1 uV.
        """
        starts: dict[bool, tuple[BranchSet, float, float]] = {}  # per direction, for every trial
        ends: dict[float, tuple[Chem, float, float, float, float]] = {}

        def f(i: float) -> float:
            up = i > 0.0
            st0 = starts.get(up)
            if st0 is None:
                st0 = starts[up] = self._sub_start(c, up)
            ends[i] = end = self._sub(c, g1, g2, i, h, k, st0)
            return end[3] - vset

        tiny, tol = 1e-9, 1e-6

        def done(i: float) -> tuple[float, tuple[Chem, float, float, float, float]]:
            return i, ends[i]

        a = i0
        if abs(a) <= 2.0 * tiny:  # held inside the hysteresis last time: start from there
            a = tiny if -(self.voltage_V() - vset) / r >= 0.0 else -tiny
        fa = f(a)
        if abs(fa) < tol:
            return done(a)
        side = 1.0 if a > 0.0 else -1.0
        if (fa > 0.0) == (side > 0.0):  # the root is nearer zero current than ``a``
            z = side * tiny
            fz = fa if a == z else f(z)
            if abs(fz) < tol:
                return done(z)
            if (fz > 0.0) != (side > 0.0):
                lo, flo, hi, fhi = (z, fz, a, fa) if side > 0 else (a, fa, z, fz)
                return self._cv_bracketed(f, done, lo, flo, hi, fhi, tol)
            o = -z  # not on this side even at no current: inside the hysteresis, or the other side
            fo = f(o)
            if abs(fo) < tol:
                return done(o)
            if (fo > 0.0) != (fz > 0.0):
                return 0.0, self._cv_between(c, g1, g2, vset, h, k, ends[tiny], ends[-tiny])
            a, fa, side = o, fo, -side
        # the root lies farther from zero than ``a``: step out along the last slope until passed
        slope = self._cv_slope if self._cv_slope > 0.0 else r  # dV/dI of the last solve
        step = -fa / slope
        for _ in range(200):
            b = a + step
            if (b > 0.0) != (side > 0.0):
                b = side * tiny
            fb = f(b)
            if abs(fb) < tol:
                self._cv_slope = max((fb - fa) / (b - a), 1e-9) if b != a else self._cv_slope
                return done(b)
            if (fb > 0.0) != (fa > 0.0):
                self._cv_slope = max((fb - fa) / (b - a), 1e-9)
                lo, flo, hi, fhi = (a, fa, b, fb) if a < b else (b, fb, a, fa)
                return self._cv_bracketed(f, done, lo, flo, hi, fhi, tol)
            if fb != fa:
                step = max(-fb * (b - a) / (fb - fa), 0.0) if step > 0 else min(-fb * (b - a) / (fb - fa), 0.0)
            step = step * 2.0 if abs(step) < abs(b - a) else step * 1.5
            a, fa = b, fb
        return done(a)

    def _cv_between(
        self,
        c: Chem,
        g1: float,
        g2: float,
        vset: float,
        h: float,
        k: float,
        up: tuple[Chem, float, float, float, float],
        down: tuple[Chem, float, float, float, float],
    ) -> tuple[Chem, float, float, float, float]:
        """The end of an ``h`` s substep held at ``vset`` between the branches: no current flows.

        Neither branch takes charge at ``vset`` (``up`` and ``down``, the ends with a vanishing
        charge and discharge current, lie above and below it), yet the source holds the terminal
        there. The overpotentials then move as a mixture of the open-circuit relaxation and the
        vanishing-current drift towards the branch on the other side of ``vset``, in the share
        that ends the substep at ``vset`` (the sliding regime of a source that switches between
        the two without passing charge): the terminal stays at the level, the current is zero,
        and the chemistry moves by LMCT alone.
        """
        md = self._md
        ts = md.tau_scale(c)
        cr = lmct_relax(md, c, k * h)
        g1r, g2r = g1 * math.exp(-h / (md.tau_f * ts)), g2 * math.exp(-h / (md.tau_s * ts))
        er = md.e_rest(cr[0], cr[1], cr[4])
        v_rest = er + g1r + g2r
        other = down if v_rest > vset else up
        v_other = er + other[1] + other[2]
        share = (v_rest - vset) / (v_rest - v_other) if v_rest != v_other else 0.0
        share = min(max(share, 0.0), 1.0)
        g1n = g1r + share * (other[1] - g1r)
        g2n = g2r + share * (other[2] - g2r)
        return cr, g1n, g2n, er + g1n + g2n, other[4]

    def _cv_bracketed(self, f, done, lo: float, flo: float, hi: float, fhi: float, tol: float):  # type: ignore[no-untyped-def]
        """Illinois regula falsi on ``[lo, hi]`` (``f(lo) < 0 < f(hi)``, one side of zero)."""
        last = 0
        for _ in range(100):
            m = hi - fhi * (hi - lo) / (fhi - flo)
            if not lo < m < hi:
                m = 0.5 * (lo + hi)
            fm = f(m)
            if abs(fm) < tol or hi - lo <= 1e-15 * max(abs(lo), abs(hi), 1e-30):
                self._cv_slope = max((fhi - flo) / (hi - lo), 1e-9)
                return done(m)
            if fm < 0.0:
                lo, flo = m, fm
                if last < 0:
                    fhi *= 0.5
                last = -1
            else:
                hi, fhi = m, fm
                if last > 0:
                    flo *= 0.5
                last = 1
        return done(m)
