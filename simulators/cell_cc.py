"""Constant current on a :class:`~simulators.cell_core.CellCore`: exact, planned ahead, vectorised.

:meth:`ConstantCurrentCell.constant_current` steps the cell with adaptive substeps and finds a
voltage cut-off's crossing by false position inside the substep that passes it. A host polling
every few seconds calls it again and again with the same current and limits: those calls are
served from a plan of points computed ahead, vectorised (:meth:`ConstantCurrentCell._chunk`), as
is :meth:`ConstantCurrentCell.constant_current_sampled`, a whole curve with a point every interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulators.cell_core import Advance, CellCore, SampledCurve
from simulators.electrode import BranchSet, solve, solve_many
from simulators.sample import Chem

_PLAN_MAX = 1000  # points planned ahead for polling-size constant-current calls
_PLAN_MIN = 16  # ... at the least, when calls of other sizes keep interrupting the plans
_CHUNK_S = 7200.0  # longest stretch computed in one vectorised chunk
_CHUNK_LMCT = 0.01  # at most ~1 % of the intermediate converted by LMCT within one chunk
_CHUNK_DRIFT_V = 5e-4  # a chunk's end within this of a fill from its last state as it is (see _chunk)
_CHUNK_MIN = 16  # ... unless it is already this short
_CROSSING_TOL_V = 1e-10  # a cut-off crossing is found to within this voltage
_ADVANCE_NEW = tuple.__new__  # builds an Advance without the NamedTuple's Python-level __new__


def _first_stop(v: Any, v_upper_V: float | None, v_lower_V: float | None, more: Any = None) -> int:
    """Index of the first point of a chunk at a voltage limit (or flagged in ``more``); its length if none."""
    bad = np.zeros(len(v), bool) if more is None else more
    if v_upper_V is not None:
        bad = bad | (v >= v_upper_V)
    if v_lower_V is not None:
        bad = bad | (v <= v_lower_V)
    return int(np.argmax(bad)) if bad.any() else len(v)


def _lag(u: Any, e: float, y0: float) -> Any:
    """``y[n] = e * y[n-1] + u[n]`` from ``y[-1] = y0`` (a first-order lag), vectorised.

    ``y[n] = e^(n+1) (y0 + sum_{j<=n} e^-(j+1) u[j])``, in blocks short enough that
    ``e^-(j+1)`` stays far from overflow.
    """
    n = len(u)
    y = np.empty(n)
    if e <= 1e-200:  # the lag forgets everything within one step
        y[:] = u
        return y
    rate = -math.log(e)
    span = max(1, int(600.0 / rate)) if rate > 0.0 else n
    start, carry = 0, y0
    while start < n:
        stop = min(n, start + span)
        grow = np.exp(rate * np.arange(1.0, stop - start + 1.0))
        block = (carry + np.cumsum(u[start:stop] * grow)) / grow
        y[start:stop] = block
        carry = block[-1]
        start = stop
    return y


class ConstantCurrentCell(CellCore):
    """A cell that also runs constant-current steps (see the module docstring)."""

    def constant_current(
        self,
        current_A: float,
        duration_s: float,
        v_upper_V: float | None = None,
        v_lower_V: float | None = None,
        capacity_limit_mAh_g: float | None = None,
        plan: bool = True,
    ) -> Advance:
        """Apply a constant current until the time, a voltage or a capacity limit is reached.

        Parameters
        ----------
        current_A : float
            Current (A), positive = charge.
        duration_s : float
            Maximum time (s).
        v_upper_V, v_lower_V : float, optional
            Voltage limits; the call returns at the (root-found) crossing moment.
        capacity_limit_mAh_g : float, optional
            Stop when ``|charge passed in this call|`` reaches this value.
        plan : bool
            Serve repeated polling-size calls from a plan computed ahead (default); ``False``
            for a caller whose calls do not repeat (a source hunting for its level), for which
            planning ahead is wasted work.

        Returns
        -------
        Advance
        """
        if duration_s < 0:
            raise ValueError("duration_s must be >= 0")
        i_sp = current_A * 1e3 / self._m_eff
        if i_sp == 0.0:
            adv = self.rest(duration_s)
            return adv
        if capacity_limit_mAh_g is None and self._plans and plan:
            fast = self._planned(current_A, i_sp, duration_s, v_upper_V, v_lower_V)
            if fast is not None:
                return fast
        md = self._md
        k = md.k(self.sample.state.temperature_C)
        c = self.sample.chem()
        g1, g2 = self.g_fast_V, self.g_slow_V
        # voltage right after switching on (ohmic jump only)
        v0 = md.e_rest(c[0], c[1], c[4]) + g1 + g2 + i_sp * md.r_ohm * self._fpol
        if (v_upper_V is not None and v0 >= v_upper_V) or (v_lower_V is not None and v0 <= v_lower_V):
            self._i_sp = i_sp
            return Advance(
                0.0,
                "v_upper" if (v_upper_V is not None and v0 >= v_upper_V) else "v_lower",
                v0,
                current_A,
                0.0,
            )
        rate = abs(i_sp) / 3600.0  # mAh/g per s
        t_end = duration_s
        reason_end = "time"
        if capacity_limit_mAh_g is not None:
            t_cap = capacity_limit_mAh_g / rate
            if t_cap <= t_end:
                t_end, reason_end = t_cap, "capacity"
        h_max = min(600.0, 0.5 / rate)
        t = 0.0
        e_prev = None
        h_next = h_max
        v = v0
        up = i_sp > 0.0
        while t < t_end:
            h = min(h_next, t_end - t)
            if t_end - t - h < 1e-9 * max(1.0, t_end):
                h = t_end - t
            st = self._sub_start(c, up)
            v_start = v
            cn, g1n, g2n, v, e_b = self._sub(c, g1, g2, i_sp, h, k, st)
            hit = None
            if v_upper_V is not None and v >= v_upper_V:
                hit, lim = "v_upper", v_upper_V
            elif v_lower_V is not None and v <= v_lower_V:
                hit, lim = "v_lower", v_lower_V
            if hit is not None:
                ts, (cn, g1n, g2n, v, _) = self._crossing(c, g1, g2, i_sp, k, st, lim, h, v_start, v)
                t += ts
                self._commit(cn, g1n, g2n, i_sp, ts)
                return Advance(t, hit, v, current_A, math.copysign(rate * t, i_sp))
            c, g1, g2 = cn, g1n, g2n
            self._commit(c, g1, g2, i_sp, h)
            t += h
            if e_prev is not None:
                de = abs(e_b - e_prev)
                h_next = h_max if de <= 0.0 else min(h_max, max(1.0, h * 0.01 / de))
            e_prev = e_b
        return Advance(t, reason_end, v, current_A, math.copysign(rate * t, i_sp))

    def _crossing(
        self,
        c: Chem,
        g1: float,
        g2: float,
        i_sp: float,
        k: float,
        st: tuple[BranchSet, float, float],
        lim: float,
        h: float,
        v0: float,
        vh: float,
    ) -> tuple[float, tuple[Chem, float, float, float, float]]:
        """The time within a substep of ``h`` s from ``c`` at which the voltage reaches ``lim``.

        ``v0`` and ``vh`` are the voltages at the start and at the end of the substep, on either
        side of ``lim``. The voltage is nearly linear in time within a substep, so false position
        (Illinois) from the two ends converges in two or three substeps where a bracketing
        search from scratch needs six; it stops within 1e-12 V of the limit or 1e-12 s of the
        crossing. Returns (time, :meth:`_sub` result at that time).
        """
        a, fa = 0.0, v0 - lim  # the bracket
        b, fb = h, vh - lim
        x0, f0, x1, f1 = a, fa, b, fb  # the last two points, for the secant
        res = None
        while f1 != 0.0 and abs(b - a) > 1e-12 + 4e-16 * b and f1 != f0:
            t = x1 - f1 * (x1 - x0) / (f1 - f0)
            if not a < t < b:  # the secant left the bracket: false position on it instead
                t = a - fa * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
                if not a < t < b:
                    t = 0.5 * (a + b)
            res = self._sub(c, g1, g2, i_sp, t, k, st)
            ft = res[3] - lim
            if (ft > 0.0) == (fb > 0.0):
                b, fb = t, ft
            else:
                a, fa = t, ft
            x0, f0, x1, f1 = x1, f1, t, ft
            if abs(ft) <= _CROSSING_TOL_V:
                break
        if res is None or x1 != t:
            res = self._sub(c, g1, g2, i_sp, x1, k, st)
        return x1, res

    def _planned(
        self, current_A: float, i_sp: float, dt: float, v_upper_V: float | None, v_lower_V: float | None
    ) -> Advance | None:
        """Serve a short constant-current call from a plan computed for many such calls at once.

        A host polling every ``dt`` calls again and again with the same current and limits; the
        next points are computed vectorised (:meth:`_chunk`, as :meth:`constant_current_sampled`)
        up to the point before a limit would be crossed, and each call then just takes its
        point. Any other call, or a state changed from outside, drops the plan; the crossing
        itself is always root-found by the exact path.
        """
        st = self.sample.state
        key = (current_A, dt, v_upper_V, v_lower_V, st.temperature_C)
        plan = self._plan
        if plan is not None:
            steps, j = plan[1], plan[2]
            if (
                plan[0] == key
                and st.h_ni_mAh_g == plan[3]
                and st.h_o_mAh_g == plan[4]
                and self.g_slow_V == plan[5]
            ):
                if not steps:
                    return None  # nothing to plan from here (a limit is next): the exact path
                if j < len(steps):
                    (
                        st.h_ni_mAh_g,
                        st.h_o_mAh_g,
                        st.q_act_mAh_g,
                        st.q_irr_mAh_g,
                        st.psi,
                        st.r_conv_mAh_g,
                        st.converted_total_mAh_g,
                        g1,
                        g2,
                        v,
                    ) = steps[j]
                    plan[2] = j + 1
                    plan[3], plan[4], plan[5] = st.h_ni_mAh_g, st.h_o_mAh_g, g2
                    self.g_fast_V, self.g_slow_V, self._i_sp = g1, g2, i_sp
                    if i_sp > 0.0:
                        self._dis_ref = None
                    self.time_s += dt
                    return _ADVANCE_NEW(Advance, (dt, "time", v, current_A, i_sp * dt / 3600.0))
            if plan[2] < len(plan[1]):  # interrupted: plan no further than twice what it served
                self._plan_len = max(_PLAN_MIN, min(_PLAN_MAX, 2 * plan[2]))
            else:  # used up
                self._plan_len = _PLAN_MAX
            self._plan = None
        rate = abs(i_sp) / 3600.0
        if dt <= 0.0 or rate * dt > 1.0:  # only for polling-size calls
            return None
        md = self._md
        k = md.k(st.temperature_C)
        c = self.sample.chem()
        m = min(self._plan_len, _PLAN_MAX, self._chunk_len(c, k, dt))
        if m < 8:
            return None
        ref = self._dis_ref
        dq, h_ni, h_o, q_act, q_irr, psi, r, conv, g1a, g2a, v = self._chunk(c, i_sp, dt, m, k)
        # the last mAh/g before empty runs down a steep tail: the exact path
        stop = _first_stop(v, v_upper_V, v_lower_V, h_ni + h_o < 1.0 if i_sp < 0.0 else None)
        if stop < 2:
            self._dis_ref = ref
            self._plan = [key, [], 0, c[0], c[1], self.g_slow_V]
            return None
        # one row per point: the seven chemistry fields, g_fast, g_slow, voltage (plain floats)
        rows = np.column_stack([a[:stop] for a in (h_ni, h_o, q_act, q_irr, psi, r, conv, g1a, g2a, v)])
        steps = list(map(tuple, rows.tolist()))
        self._plan = [key, steps, 0, c[0], c[1], self.g_slow_V]
        return self._planned(current_A, i_sp, dt, v_upper_V, v_lower_V)

    def _chunk_len(self, c: Chem, k: float, interval_s: float) -> int:
        """How many points ``interval_s`` apart one vectorised chunk from ``c`` may hold.

        LMCT is applied along a chunk from its start state, so a chunk converts at most
        :data:`_CHUNK_LMCT` of the intermediate (and lasts at most :data:`_CHUNK_S`).
        """
        md = self._md
        u = c[0] / md.h_ref
        k_eff = k * math.exp(-md.beta * (1.0 - min(u, 1.0))) if u > 0 else 0.0
        chunk_t = min(_CHUNK_S, _CHUNK_LMCT / k_eff if k_eff > 0 else _CHUNK_S)
        return int(chunk_t / interval_s)

    def _chunk(self, c: Chem, i_sp: float, interval_s: float, m: int, k: float) -> tuple[Any, ...]:
        """``m`` points ``interval_s`` apart at constant ``i_sp`` from chemistry ``c`` (vectorised).

        Returns ``(dq, h_ni, h_o, q_act, q_irr, psi, r_conv, converted, g_fast, g_slow, v)``.
        """
        md = self._md
        up = i_sp > 0.0
        rate = abs(i_sp) / 3600.0
        a = md.a_fast
        tau = md.tau_on
        e = math.exp(-interval_s / tau)
        cc = tau / interval_s * (1.0 - e)
        fp = self._fpol
        irc = i_sp * md.r_rc * fp
        ir0 = i_sp * md.r_ohm * fp
        bs = md.charge if up else self._discharge_branches(c)
        x0 = [c[0], c[1], c[2]] if up else [c[0], c[1]]
        e_b0 = solve(bs, x0, 1e-9, up)[0]  # 1e-9: the potential just as filling starts
        er0 = md.e_rest(c[0], c[1], c[4])
        act = (0, 1, 2) if up else (0, 1)
        m = min(m, max(2 * self._chunk_ok, _CHUNK_MIN))  # start from twice the last chunk that passed
        while True:
            dq = rate * interval_s * np.arange(1, m + 1)
            eb, xn = solve_many(bs, x0, dq, up, act)
            # LMCT along the way (small within a chunk): its rate follows the intermediate as the
            # current fills or empties it
            dh = np.zeros(m)
            for _ in range(2):  # the second pass sees the intermediate LMCT has already taken
                u = np.clip((xn[0] - dh) / md.h_ref, 0.0, None)
                rate_u = np.exp(-md.beta * (1.0 - np.minimum(u, 1.0))) * u
                dh = np.cumsum(k * interval_s * md.h_ref * rate_u) - 0.5 * k * interval_s * md.h_ref * rate_u
            dh = np.minimum(dh, max(md.o_max - (c[1] + c[2] + c[3]), 0.0))
            h_ni = xn[0] - dh
            if not up:
                h_ni = np.where(xn[0] > 0.0, np.maximum(h_ni, 0.0), xn[0])
                dh = np.where(xn[0] > 0.0, xn[0] - h_ni, 0.0)
            h_o = xn[1] + (1.0 - md.phi) * dh
            # The branches were filled as if LMCT had not moved charge meanwhile. Check the last
            # point against a fill from the state before it as it really is (LMCT included):
            # shorten the chunk while they differ by more than _CHUNK_DRIFT_V, then spread the
            # difference along the chunk in proportion to the charge LMCT moved
            if m < 2:
                drift = 0.0
                break
            x_prev = [float(h_ni[-2]), float(h_o[-2])] + ([float(xn[2][-2])] if up else [])
            drift = solve(bs, x_prev, float(dq[0]), up)[0] - float(eb[-1])
            if abs(drift) <= _CHUNK_DRIFT_V or m <= _CHUNK_MIN:
                break
            m = max(_CHUNK_MIN, min(m // 2, int(m * _CHUNK_DRIFT_V / abs(drift))))
        self._chunk_ok = m
        if drift and dh[-1] > 0.0:
            eb = eb + drift * (dh / dh[-1])
        q_irr = c[3] + md.phi * dh
        conv = c[6] + dh
        r = c[5] + dh
        if up:
            q_act = xn[2]
            d_o = (xn[1] - c[1]) + (q_act - c[2])
            psi = 1.0 - (1.0 - c[4]) * np.exp(-d_o / md.q_psi)
        else:
            q_act = np.full(m, c[2])
            d_o = c[1] - xn[1]
            psi = -1.0 - (-1.0 - c[4]) * np.exp(-d_o / md.q_psi)
            if c[1] > 0:
                r = r * xn[1] / c[1]
        er = md.e_rest_np(h_ni, h_o, psi)
        gap = np.concatenate(([e_b0 - er0], eb - er))
        gap = np.maximum(gap, 0.0) if up else np.minimum(gap, 0.0)
        ta = a * gap + irc
        tb = (1.0 - a) * gap
        ua = (1.0 - cc) * ta[1:] - (e - cc) * ta[:-1]
        ub = (1.0 - cc) * tb[1:] - (e - cc) * tb[:-1]
        g1 = _lag(ua, e, self.g_fast_V)
        g2 = _lag(ub, e, self.g_slow_V)
        v = er + g1 + g2 + ir0
        return dq, h_ni, h_o, q_act, q_irr, psi, r, conv, g1, g2, v

    # -- vectorised path ----------------------------------------------------------------------
    def constant_current_sampled(
        self,
        current_A: float,
        interval_s: float,
        max_duration_s: float,
        v_upper_V: float | None = None,
        v_lower_V: float | None = None,
        capacity_limit_mAh_g: float | None = None,
    ) -> tuple[Advance, SampledCurve]:
        """Constant current with a data point every ``interval_s`` (vectorised).

        Equivalent to calling :meth:`constant_current` repeatedly with ``interval_s`` and the same
        limits, except that LMCT is applied along each chunk of points from its start state
        (operator splitting, its effect on the potential corrected so that each chunk ends on
        its end state's potential: see :meth:`_chunk`). The crossing point is root-found
        exactly as in :meth:`constant_current` and is the last sample.

        Returns
        -------
        (Advance, SampledCurve)
        """
        if interval_s <= 0 or max_duration_s < 0:
            raise ValueError("interval_s must be > 0 and max_duration_s >= 0")
        self._plans, self._plan = False, None  # this path steps in chunks itself
        try:
            return self._sampled(
                current_A, interval_s, max_duration_s, v_upper_V, v_lower_V, capacity_limit_mAh_g
            )
        finally:
            self._plans = True

    def _sampled(
        self,
        current_A: float,
        interval_s: float,
        max_duration_s: float,
        v_upper_V: float | None,
        v_lower_V: float | None,
        capacity_limit_mAh_g: float | None,
    ) -> tuple[Advance, SampledCurve]:
        i_sp = current_A * 1e3 / self._m_eff
        md = self._md
        k = md.k(self.sample.state.temperature_C)
        ts, vs, qs = [], [], []
        t_done, q_done = 0.0, 0.0
        n_total = int(math.floor(max_duration_s / interval_s + 1e-9))
        n_done = 0
        cap_left = None if capacity_limit_mAh_g is None else capacity_limit_mAh_g
        reason, final = "time", None

        def exact(duration_s: float) -> Advance:
            """The exact path for ``duration_s`` (up to a crossing); its end is the next point."""
            nonlocal t_done, q_done
            adv = self.constant_current(current_A, duration_s, v_upper_V, v_lower_V, cap_left)
            t_done += adv.elapsed_s
            q_done += abs(adv.charge_mAh_g)
            ts.append(np.array([t_done]))
            vs.append(np.array([adv.voltage_V]))
            qs.append(np.array([q_done]))
            return adv

        while n_done < n_total and i_sp != 0.0:
            c = self.sample.chem()
            m = max(1, min(n_total - n_done, self._chunk_len(c, k, interval_s)))
            dq, h_ni, h_o, q_act, q_irr, psi, r, conv, g1, g2, v = self._chunk(c, i_sp, interval_s, m, k)
            m = len(v)  # the chunk may have been shortened
            stop = _first_stop(v, v_upper_V, v_lower_V, None if cap_left is None else dq >= cap_left - 1e-12)
            if stop > 0:
                j = stop - 1
                self._commit(
                    (
                        float(h_ni[j]),
                        float(h_o[j]),
                        float(q_act[j]),
                        float(q_irr[j]),
                        float(psi[j]),
                        float(r[j]),
                        float(conv[j]),
                    ),
                    float(g1[j]),
                    float(g2[j]),
                    i_sp,
                    0.0,
                )
                self.time_s += stop * interval_s
                ts.append(t_done + interval_s * np.arange(1, stop + 1))
                vs.append(v[:stop])
                qs.append(q_done + dq[:stop])
                t_done += stop * interval_s
                q_done += float(dq[j])
                n_done += stop
                if cap_left is not None:
                    cap_left -= float(dq[j])
            if stop < m:
                adv = exact(interval_s)
                n_done += 1
                if cap_left is not None:
                    cap_left -= abs(adv.charge_mAh_g)
                if adv.reason != "time":
                    reason, final = adv.reason, adv
                    break
        if i_sp == 0.0 and n_total > 0:
            self.rest(n_total * interval_s)
            t_done = n_total * interval_s
            ts.append(interval_s * np.arange(1, n_total + 1))
            vs.append(np.full(n_total, self.voltage_V()))
            qs.append(np.zeros(n_total))
        rest_t = max_duration_s - t_done
        if final is None and rest_t > 1e-9 and i_sp != 0.0:
            reason = exact(rest_t).reason
        t_arr = np.concatenate(ts) if ts else np.zeros(0)
        v_arr = np.concatenate(vs) if vs else np.zeros(0)
        q_arr = np.concatenate(qs) if qs else np.zeros(0)
        q_arr = np.copysign(q_arr, i_sp) if i_sp != 0 else q_arr
        i_arr = np.full_like(t_arr, current_A)
        adv = Advance(
            t_done,
            reason,
            self.voltage_V(),
            current_A,
            math.copysign(q_done, i_sp) if i_sp else 0.0,
        )
        return adv, SampledCurve(t_arr, v_arr, i_arr, q_arr)
